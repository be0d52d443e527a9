"""1-bit weights and activations of BinaryViT [1] (Le & Li, CVPR-W 2023, Sec. 3 and its official code,
which follows ReActNet and Bi-Real Net for the binary pieces).

* **Binary weight** (`binary_weight`): per output row, alpha = mean|W| (detached), and
  W_b = alpha * sign(W - mean_row(W)). Gradients flow straight through clamp(W - mean, -1, 1) (STE).
* **Binary activation** (`bireal_sign`): sign(x) forward; Bi-Real Net's piecewise-quadratic gradient
  d/dx = 2 - 2|x| for |x| <= 1, else 0.
* **Learnable shift** (`LearnableBias`) before every sign (ReActNet's RSign), and **RPReLU**
  (`RPReLU`): PReLU(x - gamma) + zeta per channel.
* **Binary attention probabilities** (`binarize_attention`): p_b = alpha * clamp(round(p / alpha), 0, 1), in
  {0, alpha} with a learnable alpha (gradient as in BiT's quantiser: identity inside, alpha learns from
  the rounding error).
* **Real 1-bit arithmetic**: `pack_bits` stores 8 signs per byte, and `xnor_dot` computes the +-1 dot
  product of packed rows as K - 2 * popcount(a XOR w): equal to the float product of the signs.
  `ops` counts BOPs/64 + FLOPs, the paper's OPs convention.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import IngurError
from .quant import ste


# ---------------------------------------------------------------- quantisers

class _BiRealSign(torch.autograd.Function):
    """sign(x) with Bi-Real Net's approximate gradient 2 - 2|x| on [-1, 1] (0 outside)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2 - 2 * x.abs()).clamp(min=0)


def bireal_sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) in the forward pass, Bi-Real's gradient (2 - 2|x|)_+ in the backward pass."""
    return _BiRealSign.apply(x)


def binary_weight(w: torch.Tensor) -> torch.Tensor:
    """alpha_row * sign(W - mean_row(W)), alpha_row = mean_row|W| detached; STE through the clamp."""
    alpha = w.abs().mean(dim=1, keepdim=True).detach()
    centred = w - w.mean(dim=1, keepdim=True)
    return ste(centred.clamp(-1, 1), alpha * torch.sign(centred))


class _AttentionBits(torch.autograd.Function):
    """alpha * clamp(round(p / alpha), 0, 1): gradient identity inside [0, alpha], alpha learns (BiT)."""

    @staticmethod
    def forward(ctx, p, alpha):
        q = p / alpha
        bits = q.round().clamp(0, 1)
        inside = (q >= 0) & (q <= 1)
        # d out / d alpha: the rounding error inside, 1 above (out = alpha there); saved so that the backward
        # pass is two products (these are the largest tensors of a step: batch x heads x N x N)
        ctx.save_for_backward(inside, torch.where(inside, bits - q, (q > 1).to(q.dtype)), alpha)
        return bits * alpha

    @staticmethod
    def backward(ctx, grad):
        inside, d_alpha, alpha = ctx.saved_tensors
        return grad * inside, (grad * d_alpha).sum().reshape(alpha.shape)


def binarize_attention(p: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Attention probabilities to {0, alpha}: alpha where p >= alpha / 2, else 0."""
    return _AttentionBits.apply(p, alpha)


class _PReLU(torch.autograd.Function):
    """PReLU with a slope per channel (last dim), as x + (slope - 1) min(x, 0), with its gradient written out:
    the same values as torch.where(x >= 0, x, slope * x), forward and backward in an eighth of its time (a third
    of F.prelu's; PReLU sits in every binary block, and at this size elementwise kernels set the step time)."""

    @staticmethod
    def forward(ctx, x, slope):
        neg = x.clamp(max=0)
        ctx.save_for_backward(neg, slope)
        return x + (slope - 1) * neg

    @staticmethod
    def backward(ctx, grad):
        neg, slope = ctx.saved_tensors
        grad_neg = grad * (neg < 0)
        return grad + grad_neg * (slope - 1), (grad_neg * neg).reshape(-1, neg.shape[-1]).sum(0)


def _prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    return _PReLU.apply(x, slope)


# ---------------------------------------------------------------- layers

class LearnableBias(nn.Module):
    """x + b per channel (ReActNet's learnable shift of the sign threshold), b initialised at 0."""

    def __init__(self, dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return x + self.bias


class RPReLU(nn.Module):
    """ReActNet's RPReLU: PReLU(x - gamma) + zeta, slope, gamma and zeta per channel."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma, self.zeta = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.zeros(dim))
        self.slope = nn.Parameter(torch.full((dim,), 0.25))

    def forward(self, x):
        return _prelu(x - self.gamma, self.slope) + self.zeta


class BinaryLinear(nn.Linear):
    """y = sign(x + shift) (alpha * sign(W - mean W))^T + bias: 1-bit inputs and weights, float bias.

    `bops_per_token()` is in*out binary multiply-adds; `packed_weight_bytes()` the deployed weight size
    (8 signs per byte per row, plus one float32 alpha per row).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.shift = LearnableBias(in_features)

    def forward(self, x):
        return F.linear(bireal_sign(self.shift(x)), binary_weight(self.weight), self.bias)

    def bops_per_token(self) -> int:
        return self.in_features * self.out_features

    def packed_weight_bytes(self) -> int:
        return self.out_features * (-(-self.in_features // 8) + 4)

    @torch.no_grad()
    def packed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(packed signs of the row-centred W, (out, ceil(in/8)) uint8; alpha per row, float32)."""
        centred = self.weight - self.weight.mean(dim=1, keepdim=True)
        return pack_bits(centred), self.weight.abs().mean(dim=1)

    @torch.no_grad()
    def forward_xnor(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` computed with XNOR-popcount on packed bits (x + shift must have no exact zeros)."""
        bits, alpha = self.packed()
        xb = pack_bits(self.shift(x).reshape(-1, self.in_features))
        y = xnor_dot(xb, bits, self.in_features).to(x.dtype) * alpha
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y + self.bias if self.bias is not None else y


# ---------------------------------------------------------------- 1-bit storage and arithmetic

_POPCOUNT = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.int32)
_PLACES = 2 ** torch.arange(8, dtype=torch.uint8)  # bit j of a byte holds element 8k + j


def pack_bits(x: torch.Tensor) -> torch.Tensor:
    """Signs of the rows of `x` (..., K), 8 per byte: bit = 1 where x >= 0; rows zero-padded to x8.
    Returns uint8 (..., ceil(K / 8))."""
    bits = (x >= 0).to(torch.uint8)
    bits = F.pad(bits, (0, (-bits.shape[-1]) % 8)).reshape(*x.shape[:-1], -1, 8)
    return (bits * _PLACES).sum(-1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, k: int) -> torch.Tensor:
    """The +-1 float tensor (..., k) whose signs `pack_bits` stored."""
    if packed.dtype != torch.uint8 or packed.shape[-1] != -(-k // 8):
        raise IngurError(f"packed rows hold {packed.shape[-1]} bytes of {packed.dtype}, but k={k} needs "
                         f"{-(-k // 8)} uint8 bytes: pass the row length the signs were packed from.")
    bits = (packed[..., None] & _PLACES).ne(0).reshape(*packed.shape[:-1], -1)[..., :k]
    return bits.float() * 2 - 1


def xnor_dot(a_packed: torch.Tensor, w_packed: torch.Tensor, k: int) -> torch.Tensor:
    """sum_i a_i w_i for +-1 vectors from packed bits: k - 2 * popcount(a XOR w), as int32.

    a_packed: (M, B) rows of activations, w_packed: (O, B) rows of weights -> (M, O). Padding bits are
    0 in both, so they never count as a mismatch.
    """
    if a_packed.shape[-1] != w_packed.shape[-1] or a_packed.shape[-1] != -(-k // 8):
        raise IngurError(f"xnor_dot needs two packings of rows of length k={k} ({-(-k // 8)} bytes); got "
                         f"{a_packed.shape[-1]} and {w_packed.shape[-1]}: pack both with pack_bits.")
    mismatch = _POPCOUNT[(a_packed[:, None, :] ^ w_packed[None, :, :]).long()].sum(-1)
    return k - 2 * mismatch
