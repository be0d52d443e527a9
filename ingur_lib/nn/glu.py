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
    """down(SiLU(gate(x)) * up(x)); `linear` builds each projection (nn.Linear or BitLinear), without bias."""

    def __init__(self, dim: int, hidden: int, linear=nn.Linear):
        super().__init__()
        self.gate, self.up = linear(dim, hidden, bias=False), linear(dim, hidden, bias=False)
        self.down = linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))
