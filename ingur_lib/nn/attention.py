"""Scaled dot-product attention and multi-head self-attention (Vaswani et al. 2017, Eq. 1; ViT, Sec. 3.1).

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Two paths give the same output: the fast one calls `F.scaled_dot_product_attention` (fused, no
weights kept); the explicit one forms the weight matrix, which `capture_attention` records for plots.
Variants (LSA, class-attention, ...) override `logit_scale()` and `attn_mask()` and keep both paths.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(n: int, device=None) -> torch.Tensor:
    """(n, n) boolean, True where query i may attend to key j, i.e. j <= i."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def scaled_dot_product(q, k, v, mask=None, scale=None, dropout_p: float = 0.0, need_weights: bool = False,
                       causal: bool = False):
    """softmax(q k^T * scale + mask) v over the last two dims.

    q: (..., Nq, d), k/v: (..., Nk, d). `mask` is boolean (True = may attend) or additive float,
    broadcastable to (..., Nq, Nk). `scale` is a float or a tensor broadcastable to the scores
    (e.g. one learnable temperature per head); default 1/sqrt(d). `causal` (instead of a mask): query i
    sees keys j <= i, through the fused kernel's own causal flag on the fast path. Returns (output, weights or None).
    """
    if causal and mask is not None:
        raise ValueError("scaled_dot_product takes causal=True or a mask, not both: fold one into the other.")
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if not need_weights:
        # Fold a tensor scale into q so the fused kernel can run (scale=1 inside it).
        if torch.is_tensor(scale):
            q, scale = q * scale, 1.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal,
                                             scale=scale)
        return out, None
    if causal:
        mask = causal_mask(q.shape[-2], q.device)
    scores = (q * scale) @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = scores.softmax(dim=-1)
    out = F.dropout(weights, dropout_p) @ v
    return out, weights


class Attention(nn.Module):
    """Multi-head self-attention as in ViT: fused qkv projection, heads, output projection."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % heads:
            from ..errors import IngurError
            raise IngurError(f"dim={dim} is not divisible by heads={heads}: choose heads that divide dim.")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop, self.proj_drop = attn_drop, nn.Dropout(proj_drop)
        self.capture: list | None = None  # set by capture_attention()

    def logit_scale(self):
        """The factor multiplying q k^T: 1/sqrt(d_head) here; LSA makes it learnable per head."""
        return self.head_dim ** -0.5

    def attn_mask(self, n: int, device) -> torch.Tensor | None:
        """A boolean (n, n) mask of allowed pairs, or None for all pairs."""
        return None

    def split_heads(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return q, k, v  # each (B, H, N, d_head)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.split_heads(x)
        out, w = scaled_dot_product(q, k, v, self.attn_mask(n, x.device), self.logit_scale(),
                                    self.attn_drop if self.training else 0.0,
                                    need_weights=self.capture is not None)
        if w is not None:
            self.capture.append(w.detach())
        # heads * head_dim, not x's width: a pruned qkv (VTP) may take fewer input features than it outputs.
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)))


@contextmanager
def recording(layers, attr: str = "capture"):
    """Point attribute `attr` of every layer in `layers` at one list for the duration of the block (the layers
    append what they record to it), then set it back to None. Yields the list."""
    out: list[torch.Tensor] = []
    for m in layers:
        setattr(m, attr, out)
    try:
        yield out
    finally:
        for m in layers:
            setattr(m, attr, None)


def capture_attention(model: nn.Module):
    """Record every attention layer's weights during the forward passes inside the block.

    Yields a list that fills with one (B, H, N, N) tensor per attention layer, in forward order.
    Inside the block attention takes the explicit path; the outputs equal the fast path's.
    """
    return recording([m for m in model.modules() if hasattr(m, "capture") and isinstance(m, nn.Module)])


@torch.no_grad()
def attention_weights(model: nn.Module, x) -> list[torch.Tensor]:
    """Every attention layer's (B, H, Nq, Nk) weights in one forward pass of `model` over `x`, in eval mode."""
    model.eval()
    with capture_attention(model) as maps:
        model(x)
    return maps


def attention_rollout(maps: list[torch.Tensor], head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each token draws on each input token.

    Per layer: fuse heads, add the identity for the residual path, renormalise rows; multiply the
    layers in order. Returns (B, N, N); row 0 is the class token's rollout.
    """
    result = None
    for w in maps:
        a = w.mean(1) if head_fusion == "mean" else w.amax(1)
        a = a + torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(-1, keepdim=True)
        result = a if result is None else a @ result
    return result


def attention_entropy(weights: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Shannon entropy (nats) of each attention row: weights (..., Nq, Nk) -> (..., Nq).

    0 means a query looks at one key only; log(Nk) means it spreads evenly over all keys.
    Masked keys carry weight 0 and add nothing.
    """
    return -(weights * (weights + eps).log()).sum(-1)


class WidthScaledAttention(Attention):
    """MHSA with q k^T scaled by 1/sqrt(dim), the model width, instead of 1/sqrt(d_head): the official CViT
    code's `Attention` (erprogs/CViT, model/cvit.py, `self.scale = dim ** -0.5`); sqrt(heads) times flatter."""

    def logit_scale(self):
        return (self.heads * self.head_dim) ** -0.5


ATTENTIONS = {"mhsa": Attention, "mhsa_width_scaled": WidthScaledAttention}
