"""Talking-heads attention (Shazeer et al. 2020), as CaiT uses it in its self-attention layers
(Touvron et al. 2021, Sec. 4 "Architecture"; the official `Attention_talking_head`).

    S = Q K^T / sqrt(d_head)            (B, H, N, N), one score matrix per head
    S' = P_l S,  A = softmax(S'),  A' = P_w A,   out = A' V

P_l and P_w are (H x H) linear maps (with bias) that mix the heads' score matrices, before and after
the softmax: each head's attention becomes a learned blend of every head's. The rows of A' need not sum
to one. Only the explicit path exists (the fused kernel cannot mix heads), so weights are always formed;
`capture_attention` records A' (what multiplies V).
"""
from __future__ import annotations

from torch import nn

from .attention import ATTENTIONS, Attention


class TalkingHeadsAttention(Attention):
    """MHSA whose heads' scores are linearly mixed before (P_l) and after (P_w) the softmax."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__(dim, heads, qkv_bias, attn_drop, proj_drop)
        self.proj_l, self.proj_w = nn.Linear(heads, heads), nn.Linear(heads, heads)

    def mix(self, scores, proj: nn.Linear):
        """Apply an (H x H) map across the head axis of (B, H, N, M) scores."""
        return proj(scores.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.split_heads(x)
        scores = (q * self.logit_scale()) @ k.transpose(-2, -1)
        w = self.mix(self.mix(scores, self.proj_l).softmax(-1), self.proj_w)
        if self.capture is not None:
            self.capture.append(w.detach())
        w = nn.functional.dropout(w, self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj((w @ v).transpose(1, 2).reshape(b, n, self.heads * self.head_dim)))


ATTENTIONS["talking_heads"] = TalkingHeadsAttention
