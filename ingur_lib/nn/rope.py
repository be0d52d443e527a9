"""Rotary position embedding (RoPE; Su et al. 2021), the position scheme of Transformer++ / LLaMA.

Each pair of features (i, i + d/2) of a query or key at position p is rotated by the angle p * theta_i,
theta_i = base^(-2i/d). The dot product q_m . k_n then depends on m - n only, so attention sees relative
positions, and nothing is added to the token embeddings.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import IngurError


def rope_angles(n: int, d: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (n, d): angle p * theta_i for position p, repeated for both halves of the features."""
    if d % 2:
        raise IngurError(f"head dimension {d} is odd: RoPE rotates feature pairs, choose an even head size.")
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = torch.arange(n, dtype=torch.float32)[:, None] * theta
    ang = torch.cat([ang, ang], -1)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., n, d) by the angles: x * cos + rotate_half(x) * sin, rotate_half(a, b) = (-b, a)."""
    a, b = x.chunk(2, -1)
    return x * cos + torch.cat([-b, a], -1) * sin


class Rotary(nn.Module):
    """Precomputed RoPE angles up to `max_len` positions; `forward(q, k)` rotates both (..., n, d)."""

    def __init__(self, head_dim: int, max_len: int = 1024, base: float = 10000.0):
        super().__init__()
        cos, sin = rope_angles(max_len, head_dim, base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, q, k):
        n = q.shape[-2]
        if n > self.cos.shape[0]:
            raise IngurError(f"sequence of {n} tokens exceeds max_len={self.cos.shape[0]}: raise max_len.")
        cos, sin = self.cos[:n].to(q.dtype), self.sin[:n].to(q.dtype)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin)
