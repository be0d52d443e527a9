"""Locality Self-Attention (LSA; Lee, Lee & Song 2021, "Vision Transformer for Small-Size Datasets", Sec. 3.3,
Eqs. 5-8).

    R^M_{ij} = R_{ij} if i != j else -inf,    R = (x E_q)(x E_k)^T / tau,    LSA(x) = softmax(R^M) x E_v

Two changes to multi-head self-attention, both aimed at the smooth (high-entropy) attention a ViT
learns on little data:
* **learnable temperature**: one scale per head (the official code's `nn.Parameter(scale * ones(heads))`),
  initialised to the usual 1/sqrt(d_head), multiplying q k^T; training may make it larger (sharper).
* **diagonal masking**: a token may not attend to itself, so attention must go to *other* tokens;
  the official code masks the whole (N+1) x (N+1) diagonal, class token included.
Everything else is the library's `Attention`, so the fused (sdpa) path and the capture path both hold.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import ATTENTIONS, Attention


def diagonal_mask(n: int, device=None) -> torch.Tensor:
    """Boolean (n, n) mask of allowed pairs: every pair except a token with itself."""
    return ~torch.eye(n, dtype=torch.bool, device=device)


class LocalitySelfAttention(Attention):
    """MHSA with a learnable per-head temperature and the diagonal of the scores masked."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__(dim, heads, qkv_bias, attn_drop, proj_drop)
        self.temperature = nn.Parameter(torch.full((heads,), self.head_dim ** -0.5))

    def logit_scale(self) -> torch.Tensor:
        return self.temperature.view(1, -1, 1, 1)  # broadcasts over (B, H, N, N) scores / (B, H, N, d) queries

    def attn_mask(self, n: int, device) -> torch.Tensor:
        return diagonal_mask(n, device)


ATTENTIONS["lsa"] = LocalitySelfAttention
