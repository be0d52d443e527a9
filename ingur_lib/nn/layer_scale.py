"""LayerScale (Touvron et al. 2021, "Going deeper with image transformers", Sec. 2, Eq. 4, Fig. 1d).

    x'_l   = x_l  + diag(lambda_l,1 ... lambda_l,d)  SA(eta(x_l))
    x_l+1  = x'_l + diag(lambda'_l,1 ... lambda'_l,d) FFN(eta(x'_l))

One learnable vector per residual branch multiplies the branch's output channel by channel. It starts
small (epsilon), so every block begins close to the identity and a deep stack trains like a shallow one;
the weights then learn how much each channel of each branch contributes. The paper sets epsilon by depth:
0.1 up to 18 blocks, 1e-5 for 24, 1e-6 beyond (the official models: XXS24 1e-5, S36 1e-6).
"""
from __future__ import annotations

import torch
from torch import nn


def layer_scale_init(depth: int) -> float:
    """The paper's initial value epsilon for a network of `depth` blocks (Sec. 2)."""
    if depth <= 18:
        return 0.1
    return 1e-5 if depth <= 24 else 1e-6


class LayerScale(nn.Module):
    """y = gamma * x over the last (channel) axis, gamma a learnable vector initialised to `init`."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma

    def extra_repr(self) -> str:
        return f"{self.gamma.shape[0]}"
