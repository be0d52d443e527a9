"""Class-attention (Touvron et al. 2021, "Going deeper with image transformers", Sec. 3, Eqs. 5-7, Fig. 2).

CaiT keeps the class token out of the self-attention stack, which then processes patches only. After
it, a few class-attention layers (2 in CaiT) gather the patches into the class token:

    z = [x_class; x_patches]                                    (the patches are not updated)
    Q = W_q x_class + b_q,  K = W_k z + b_k,  V = W_v z + b_v    (Eq. 5; per head)
    A = softmax(Q K^T / sqrt(d_head)),  out_CA = W_o A V + b_o   (Eqs. 6-7)

and each class-attention block is pre-LN with (optional) LayerScale, like a self-attention block:
    x_class <- x_class + diag(lambda) CA(LN(z));   x_class <- x_class + diag(lambda') FFN(LN(x_class)).
The query is one token, so the cost is linear in the number of patches.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import scaled_dot_product
from .blocks import DropPath, Mlp
from .layer_scale import LayerScale


class ClassAttention(nn.Module):
    """Multi-head attention of the class token (query) over [class; patches] (keys and values)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=qkv_bias) for _ in range(3))
        self.proj = nn.Linear(dim, dim)
        self.capture: list | None = None  # set by capture_attention(): (B, H, 1, 1 + N) weights

    def heads_of(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)  # (B, H, n, d_head)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, 1 + N, dim), class token first -> the class token's update, (B, 1, dim)."""
        q, k, v = self.heads_of(self.q(z[:, :1])), self.heads_of(self.k(z)), self.heads_of(self.v(z))
        out, w = scaled_dot_product(q, k, v, need_weights=self.capture is not None)
        if w is not None:
            self.capture.append(w.detach())
        return self.proj(out.transpose(1, 2).reshape(z.shape[0], 1, -1))


class ClassAttentionBlock(nn.Module):
    """One class-attention layer: only the class token changes (its attention and its FFN)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, qkv_bias: bool = True,
                 layer_scale: float | None = None, drop_path: float = 0.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), ClassAttention(dim, heads, qkv_bias)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio))
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        z = torch.cat([cls, patches], dim=1)
        cls = cls + self.drop_path(self.ls1(self.attn(self.norm1(z))))
        return cls + self.drop_path(self.ls2(self.mlp(self.norm2(cls))))
