"""The gated linear unit channel mixer (Shazeer 2020, "GLU Variants Improve Transformer"):

    GLU(x) = W_down (SiLU(W_gate x) * (W_up x))

With `nn.Linear` it is Transformer++'s SwiGLU MLP; with `quant.BitLinear` it is the MatMul-free LM's
channel mixer [9] (Sec. 3.2.2): the three projections become ternary and the only products left are
the elementwise gate.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn


def glu_hidden(dim: int, ratio: float = 8 / 3, multiple: int = 16) -> int:
    """The usual SwiGLU width: ratio * dim (2/3 of a 4x MLP, so the parameters match), rounded up to `multiple`."""
    return multiple * -(-int(ratio * dim) // multiple)


class GLU(nn.Module):
    """down(SiLU(gate(x)) * up(x)); `linear` builds each projection (nn.Linear or BitLinear), without bias.

    `fused`: gate and up are one (2 hidden x dim) projection split in two, as the official MatMul-free code's
    `HGRNBitMLP.gate_proj`; with BitLinear the two halves then share one ternary scale and one RMSNorm gain.
    """

    def __init__(self, dim: int, hidden: int, linear=nn.Linear, fused: bool = False):
        super().__init__()
        if fused:
            self.gate_up = linear(dim, 2 * hidden, bias=False)
        else:
            self.gate, self.up = linear(dim, hidden, bias=False), linear(dim, hidden, bias=False)
        self.down = linear(hidden, dim, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, -1) if hasattr(self, "gate_up") else (self.gate(x), self.up(x))
        return self.down(F.silu(gate) * up)
