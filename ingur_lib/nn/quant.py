"""Ternary weights, 8-bit activations and BitLinear, as in the MatMul-free LM [9] (Zhu et al. 2024, Sec. 3.1,
"MatMul-free Dense Layers with Ternary Weights", following BitNet b1.58).

* **Weights, per tensor, to ternary** (absmean): gamma = mean|W|,  W~ = RoundClip(W / gamma, -1, 1) in {-1, 0, 1}.
  The layer computes with gamma * W~ (`weight_quant`); gamma is one float per matrix.
* **Activations, per token, to int8** (absmax): s = 127 / max_i |x_i|,  x~ = Clip(Round(x * s), -128, 127).
  The layer computes with x~ / s (`activation_quant`).
* **Straight-through estimator** (`ste`): x + (q(x) - x).detach() is q(x) in the forward pass and has the
  gradient of the identity, so the latent full-precision W and x keep learning through the rounding.
* **BitLinear** = RMSNorm, then quantised activations times ternary weights (Sec. 3.1.1 fuses the three
  into one kernel; the official training code computes the product as a fake-quantised `F.linear`).

Why "MatMul-free": with W~ in {-1, 0, 1}, y_o = sum_i W~_oi x_i needs no multiplications, only additions of
the inputs where W~ = +1 and subtractions where W~ = -1 (`ternary_matmul`), then one rescale per output by
gamma / s. And a ternary weight needs less than 2 bits: `pack_ternary` stores four per byte, 16x smaller
than float32.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import IngurError
from .norms import RMSNorm

EPS = 1e-5  # floor of gamma and of max|x|, as in the official code


# ---------------------------------------------------------------- quantisers

def ternary_scale(w: torch.Tensor) -> torch.Tensor:
    """gamma = mean |W| over the whole tensor (absmean), floored at 1e-5."""
    return w.abs().mean().clamp(min=EPS)


def _ternary_codes(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(RoundClip(W / gamma, -1, 1) in W's dtype, gamma): what `ternarize` stores and `weight_quant` rescales."""
    gamma = ternary_scale(w)
    return (w / gamma).round().clamp(-1, 1), gamma


def ternarize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(W~, gamma): W~ = RoundClip(W / gamma, -1, 1) as int8 in {-1, 0, 1}, and the scale gamma."""
    codes, gamma = _ternary_codes(w)
    return codes.to(torch.int8), gamma


def weight_quant(w: torch.Tensor) -> torch.Tensor:
    """The fake-quantised weight gamma * W~ (same dtype and shape as `w`)."""
    codes, gamma = _ternary_codes(w)
    return codes * gamma


def _int8_codes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Clip(Round(x * s), -128, 127) in x's dtype, s = 127 / max|x| per token): shared by the two below."""
    s = 127.0 / x.abs().amax(-1, keepdim=True).clamp(min=EPS)
    return (x * s).round().clamp(-128, 127), s


def int8_tokens(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x~, s) per token (last axis): s = 127 / max|x|, x~ = Clip(Round(x * s), -128, 127) as int8."""
    codes, s = _int8_codes(x)
    return codes.to(torch.int8), s


def activation_quant(x: torch.Tensor) -> torch.Tensor:
    """The fake-quantised activation x~ / s (per-token absmax to 8 bits)."""
    codes, s = _int8_codes(x)
    return codes / s


def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Straight-through estimator: the value of `q`, the gradient of the identity in `x`."""
    return x + (q - x).detach()


# ---------------------------------------------------------------- the layer

class BitLinear(nn.Linear):
    """y = Q_a(RMSNorm(x)) (gamma W~)^T (+ bias): RMSNorm, int8 activations, ternary weights, STE for both.

    The latent weight `self.weight` stays full precision for training; `ternary()` returns what inference
    stores (W~ and gamma). Bias is off by default, as in the paper's models.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, eps: float = 1e-8):
        super().__init__(in_features, out_features, bias=bias)
        self.norm = RMSNorm(in_features, eps=eps)

    def packed_weight_bytes(self) -> int:
        """Deployed size of the weight (`ingur_lib.measure.storage_bytes`): 2-bit codes, 4 per byte, plus one
        float32 gamma."""
        return -(-self.weight.numel() // 4) + 4

    def forward(self, x):
        x = self.norm(x)
        x_q = ste(x, activation_quant(x))
        w_q = ste(self.weight, weight_quant(self.weight))
        return F.linear(x_q, w_q, self.bias)

    @torch.no_grad()
    def ternary(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W~ as int8 in {-1, 0, 1}, gamma): the weights an inference engine keeps."""
        return ternarize(self.weight)

    @torch.no_grad()
    def forward_additions(self, x: torch.Tensor) -> torch.Tensor:
        """The same output as `forward`, computed with additions and subtractions of int8 activations only,
        then one rescale per output (gamma / s); no matrix multiply. For inference and checks."""
        x_int, s = int8_tokens(self.norm(x))
        w_t, gamma = self.ternary()
        y = ternary_matmul(x_int, w_t).to(x.dtype) * (gamma / s)
        return y + self.bias if self.bias is not None else y


def bitlinears(model: nn.Module) -> dict[str, BitLinear]:
    """Every BitLinear of `model`, by name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, BitLinear)}


# ---------------------------------------------------------------- MatMul-free product

def ternary_matmul(x_int: torch.Tensor, w_ternary: torch.Tensor) -> torch.Tensor:
    """y[..., o] = sum_{i: W~_oi = +1} x[..., i] - sum_{i: W~_oi = -1} x[..., i], as int32.

    x_int: (..., K) integers (e.g. int8 activations); w_ternary: (O, K) in {-1, 0, 1}. Only gathers,
    additions and one subtraction: each output row gathers the inputs its +1 weights select (padded with a
    zero input) and sums them, then the same for the -1 weights. Equals x_int @ W~^T exactly.
    """
    if w_ternary.ndim != 2 or x_int.shape[-1] != w_ternary.shape[1]:
        raise IngurError(f"ternary_matmul needs x (..., K) and W (O, K); got {tuple(x_int.shape)} and "
                         f"{tuple(w_ternary.shape)}: pass the weight as (out_features, in_features).")
    if not bool(((w_ternary == -1) | (w_ternary == 0) | (w_ternary == 1)).all()):
        raise IngurError("ternary_matmul needs weights in {-1, 0, 1}: ternarize them first (quant.ternarize).")
    x = torch.cat([x_int.to(torch.int32), torch.zeros_like(x_int[..., :1], dtype=torch.int32)], -1)
    k = w_ternary.shape[1]                      # index k is the appended zero input

    def gathered_sum(sign: int) -> torch.Tensor:
        mask = w_ternary == sign                # (O, K)
        width = max(1, int(mask.sum(1).max()))
        # per output row: the input indices it selects, padded with k (the zero input)
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :width]
        idx = torch.where(torch.gather(mask, 1, order), order, torch.full_like(order, k))
        return x[..., idx].sum(-1, dtype=torch.int32)  # (..., O, width) -> (..., O): additions only

    return gathered_sum(1) - gathered_sum(-1)


# ---------------------------------------------------------------- 2-bit storage

CODE = {-1: 0, 0: 1, 1: 2}  # two bits per weight; the code 3 is unused


def pack_ternary(w_ternary: torch.Tensor) -> torch.Tensor:
    """Four ternary weights per byte (2 bits each: -1 -> 0, 0 -> 1, +1 -> 2), flattened, zero-padded to x4.

    Returns a uint8 tensor of ceil(numel / 4) bytes; `unpack_ternary(packed, shape)` inverts it.
    """
    flat = w_ternary.flatten().to(torch.int16)
    if not bool(((flat >= -1) & (flat <= 1)).all()):
        raise IngurError("pack_ternary needs weights in {-1, 0, 1}: ternarize them first (quant.ternarize).")
    codes = (flat + 1).to(torch.uint8)
    codes = torch.cat([codes, torch.ones((-len(codes)) % 4, dtype=torch.uint8)]).view(-1, 4)
    return codes[:, 0] | (codes[:, 1] << 2) | (codes[:, 2] << 4) | (codes[:, 3] << 6)


def unpack_ternary(packed: torch.Tensor, shape) -> torch.Tensor:
    """The int8 ternary tensor of `shape` that `pack_ternary` stored in `packed`."""
    n = math.prod(shape)
    if packed.dtype != torch.uint8 or packed.numel() != -(-n // 4):
        raise IngurError(f"packed weights hold {packed.numel()} bytes of {packed.dtype}, but shape {tuple(shape)} "
                         f"needs {-(-n // 4)} uint8 bytes: pass the shape the weights were packed from.")
    codes = torch.stack([(packed >> (2 * j)) & 3 for j in range(4)], 1).flatten()[:n]
    return (codes.to(torch.int8) - 1).view(*shape)

