"""The pre-LN transformer block of ViT: x = x + SA(LN(x)); x = x + MLP(LN(x)) (ViT, Eqs. 2-3).

With `layer_scale` (CaiT's LayerScale, `nn.layer_scale`) each branch's output is scaled per channel."""
from __future__ import annotations

import torch
from torch import nn

from .attention import ATTENTIONS
from .layer_scale import LayerScale


class Mlp(nn.Module):
    """Position-wise feed-forward: Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def check_rate(name: str, p) -> float:
    """A drop probability in [0, 1): at 1 every sample is dropped and the rescale 1 / (1 - p) divides by zero
    (NaN outputs), and above 1 it is no probability."""
    from ..errors import IngurError
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise IngurError(f"{name}={p!r} must be a probability in [0, 1): use 0 to turn it off.")
    return float(p)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a sample's whole residual branch with probability p."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = check_rate("drop_path", p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.ndim - 1)), device=x.device) >= self.p
        return x * keep / (1 - self.p)


class Block(nn.Module):
    """One pre-LN encoder block; `attention` names an entry of ATTENTIONS (e.g. "mhsa", "lsa")."""

    def __init__(self, dim, heads, mlp_ratio=2.0, drop=0.0, attn_drop=0.0, drop_path=0.0,
                 qkv_bias=True, attention="mhsa", layer_scale: float | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ATTENTIONS[attention](dim, heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        # LayerScale, or Identity (no parameters: a plain ViT stays bit-identical); hooks read branches here
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()

    def forward(self, x):
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
