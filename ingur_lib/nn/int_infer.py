"""Integer inference for ternary (MatMul-free LM [9], BitNet b1.58) and binary (BinaryViT [1]) linear layers.

Training keeps full-precision latent weights and runs the quantised product as a float matrix multiply
(`quant.BitLinear`, `binary.BinaryLinear`). A deployed model keeps only the low-bit codes, and runs them on
an integer kernel. This module does that with `torch._int_mm`, PyTorch's int8 x int8 -> int32 matrix multiply
(measured on the book's AVX512-VNNI CPU, loaded: 3-5x float32 sgemm's rate at 4096 x 384-768; `speed.int_kernels`):

* **Ternary** (`IntBitLinear`, [9] Sec. 3.1, BitNet b1.58 Eq. 1-3): the weights W~ = RoundClip(W / gamma, -1, 1)
  are held exactly as int8 in {-1, 0, 1}; each token's RMS-normalised input is quantised as the paper
  prescribes (absmax, per token, 8 bits: x~ = Clip(Round(x * 127 / max|x|), -128, 127)); then
  y = (x~ W~^T) * gamma / s, one int32 product and one rescale per output.
* **Binary** (`IntBinaryLinear`, [1] Sec. 3): the weights sign(W - mean_row W) as int8 in {-1, 1} and the
  activations sign(x + shift) as int8 in {-1, 1}; y = (x_b W_b^T) * alpha_row + bias.

The integer products are exact, so each layer returns bit for bit what the additions-only / XNOR-popcount
paths of `quant` and `binary` return (the same integers, rescaled by the same floats), and equals the
fake-quantised float path up to float32 rounding. Packed 2-bit / 1-bit storage stays `pack_ternary` /
`pack_bits`: the kernel needs one byte per weight, 4x smaller than float32.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import IngurError
from .binary import BinaryLinear
from .quant import BitLinear, int8_tokens


def int8_matmul(x_int: torch.Tensor, w_int: torch.Tensor) -> torch.Tensor:
    """x_int (..., K) int8 times w_int (O, K) int8 transposed -> (..., O) int32, on `torch._int_mm`."""
    lead = x_int.shape[:-1]
    y = torch._int_mm(x_int.reshape(-1, x_int.shape[-1]), w_int.t())
    return y.reshape(*lead, w_int.shape[0])


class IntBitLinear(nn.Module):
    """A trained `BitLinear` for inference: RMSNorm, per-token int8 activations, int8 ternary weights,
    one int32 product (`int8_matmul`), rescale by gamma / s."""

    def __init__(self, layer: BitLinear):
        super().__init__()
        self.norm = copy.deepcopy(layer.norm)
        codes, gamma = layer.ternary()
        self.register_buffer("codes", codes.contiguous())   # (out, in) int8 in {-1, 0, 1}
        self.register_buffer("gamma", gamma.detach().clone())
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone(), requires_grad=False)

    @torch.no_grad()
    def forward(self, x):
        x_int, s = int8_tokens(self.norm(x))
        # same order of float operations as BitLinear.forward_additions: the two agree bit for bit
        y = int8_matmul(x_int, self.codes).to(x.dtype).mul_(self.gamma / s)  # in place: one float output lives
        return y.add_(self.bias) if self.bias is not None else y


class IntBinaryLinear(nn.Module):
    """A trained `BinaryLinear` for inference: sign(x + shift) and sign(W - mean_row W) as int8, one int32
    product, rescale by alpha per output row, plus the float bias."""

    def __init__(self, layer: BinaryLinear):
        super().__init__()
        w = layer.weight.detach()
        # torch.sign as in binary_weight: an exactly-zero centred weight stays 0, as in the float path
        self.register_buffer("codes", torch.sign(w - w.mean(dim=1, keepdim=True)).to(torch.int8).contiguous())
        self.register_buffer("alpha", w.abs().mean(dim=1).clone())
        self.register_buffer("shift", layer.shift.bias.detach().clone())
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone(), requires_grad=False)

    @torch.no_grad()
    def forward(self, x):
        y = int8_matmul(torch.sign(x + self.shift).to(torch.int8), self.codes).to(x.dtype).mul_(self.alpha)
        return y.add_(self.bias) if self.bias is not None else y


CONVERSIONS = {BitLinear: IntBitLinear, BinaryLinear: IntBinaryLinear}


def to_int(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval mode) with every BitLinear / BinaryLinear replaced by its integer layer."""
    model = copy.deepcopy(model).eval()
    converted = 0
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            kind = CONVERSIONS.get(type(child))
            if kind is not None:
                setattr(parent, name, kind(child))
                converted += 1
    if not converted:
        raise IngurError("to_int found no BitLinear or BinaryLinear in the model: it converts trained ternary "
                         "(quant.BitLinear) and binary (binary.BinaryLinear) layers only.")
    return model

