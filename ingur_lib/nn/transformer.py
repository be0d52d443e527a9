"""The Transformer's layers (Vaswani et al. 2017, "Attention Is All You Need", Sec. 3).

* `MultiHeadAttention` (Sec. 3.2.2): separate W^Q, W^K, W^V projections so queries may come from
  one sequence and keys/values from another (cross-attention, Sec. 3.2.3), heads of size d_model/h,
  an output projection W^O. Built on `scaled_dot_product` (Eq. 1), so `capture_attention` records
  its (B, h, Nq, Nk) weights; `kind` ("self", "causal", "cross") says which attention a map is.
* Masks: `padding_mask` hides <pad> keys; `causal_mask` stops a decoder position from attending to
  later positions (Sec. 3.2.3, "masking out ... illegal connections").
* `sinusoidal_positions` (Sec. 3.5): PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...);
  `LearnedPositions` is the Table 3 (E) alternative.
* `EncoderLayer` / `DecoderLayer` (Sec. 3.1): **post-LN** as in the paper and tensor2tensor v1,
  LN(x + Dropout(Sublayer(x))); `norm_first=True` gives pre-LN, x + Dropout(Sublayer(LN(x))), which
  many rebuilds (e.g. the Annotated Transformer) use silently.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import IngurError
from .attention import causal_mask, scaled_dot_product  # noqa: F401  (causal_mask: the decoder's mask, Sec. 3.2.3)


def padding_mask(ids: torch.Tensor, pad: int = 0) -> torch.Tensor:
    """(B, 1, 1, N) boolean, True at real tokens: broadcasts over heads and queries."""
    return (ids != pad)[:, None, None, :]


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """(n, d) matrix of Sec. 3.5: even columns sin(pos * w_i), odd columns cos(pos * w_i), w_i = 10000^(-2i/d)."""
    if d % 2:
        raise IngurError(f"d_model={d} is odd: sinusoidal positions pair sin/cos columns, use an even d_model.")
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class SinusoidalPositions(nn.Module):
    """Adds the fixed sinusoidal table: no parameters, defined for any length up to `max_len`."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)

    def forward(self, x):
        if x.shape[1] > self.pe.shape[0]:
            raise IngurError(f"sequence of {x.shape[1]} tokens exceeds max_len={self.pe.shape[0]}: raise max_len.")
        return x + self.pe[: x.shape[1]]


class LearnedPositions(nn.Module):
    """Adds one learned vector per position (Table 3, row E)."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, x):
        if x.shape[1] > self.pos_embed.shape[0]:
            raise IngurError(f"sequence of {x.shape[1]} tokens exceeds max_len={self.pos_embed.shape[0]}: "
                             "raise max_len.")
        return x + self.pos_embed[: x.shape[1]]


POSITIONS = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions}


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, kind: str = "self"):
        super().__init__()
        if d_model % heads:
            raise IngurError(f"d_model={d_model} is not divisible by heads={heads}: choose heads that divide d_model.")
        self.heads, self.d_head, self.kind, self.dropout = heads, d_model // heads, kind, dropout
        self.q, self.k, self.v = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out = nn.Linear(d_model, d_model)
        self.capture: list | None = None  # set by capture_attention()

    def _split(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.d_head).transpose(1, 2)  # (B, h, N, d_head)

    def forward(self, query, context=None, mask=None):
        """query (B, Nq, d); context (B, Nk, d), default query itself; mask boolean, broadcastable to (B, h, Nq, Nk)."""
        context = query if context is None else context
        q, k, v = self._split(self.q(query)), self._split(self.k(context)), self._split(self.v(context))
        out, w = scaled_dot_product(q, k, v, mask, None, self.dropout if self.training else 0.0,
                                    need_weights=self.capture is not None)
        if w is not None:
            self.capture.append(w.detach())
        b, _, nq, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, nq, -1))


class FeedForward(nn.Sequential):
    """FFN(x) = max(0, x W1 + b1) W2 + b2 (Eq. 2), applied at each position."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))


class _Residual(nn.Module):
    """One sublayer with its residual and LayerNorm: post-LN (paper) or pre-LN (norm_first)."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool):
        super().__init__()
        self.norm, self.drop, self.norm_first = nn.LayerNorm(d_model), nn.Dropout(dropout), norm_first

    def forward(self, x, sublayer):
        if self.norm_first:
            return x + self.drop(sublayer(self.norm(x)))
        return self.norm(x + self.drop(sublayer(x)))


class EncoderLayer(nn.Module):
    """Self-attention over the source, then the FFN; each wrapped in residual + LayerNorm."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = False):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, heads, dropout, kind="self")
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.res1, self.res2 = _Residual(d_model, dropout, norm_first), _Residual(d_model, dropout, norm_first)

    def forward(self, x, mask=None):
        x = self.res1(x, lambda h: self.attn(h, mask=mask))
        return self.res2(x, self.ffn)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder's output, then the FFN."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, dropout, kind="causal")
        self.cross_attn = MultiHeadAttention(d_model, heads, dropout, kind="cross")
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.res = nn.ModuleList(_Residual(d_model, dropout, norm_first) for _ in range(3))

    def forward(self, y, memory, self_mask=None, memory_mask=None):
        y = self.res[0](y, lambda h: self.self_attn(h, mask=self_mask))
        y = self.res[1](y, lambda h: self.cross_attn(h, memory, mask=memory_mask))
        return self.res[2](y, self.ffn)


def attention_kinds(model: nn.Module) -> list[str]:
    """The `kind` of every MultiHeadAttention in forward order, to label `capture_attention`'s maps."""
    return [m.kind for m in model.modules() if isinstance(m, MultiHeadAttention)]
