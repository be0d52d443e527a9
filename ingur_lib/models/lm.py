"""Decoder-only language models for chapter 09 [9], built from one skeleton so they differ only in their
token mixer and their linear layers:

    x_0 = Embed(ids)                                   (full precision in both models)
    x'_l = x_{l-1} + TokenMixer(RMSNorm(x_{l-1}))      (causal self-attention with RoPE, or MLGRU)
    x_l  = x'_l + GLU(RMSNorm(x'_l))                   (SwiGLU with Linear, or with BitLinear)
    logits = Head(RMSNorm(x_L))

`TransformerPP` (this file) is the paper's baseline "Transformer++" (LLaMA-style: RoPE, SwiGLU, RMSNorm, no
biases); `ingur_lib.models.mlgru.MatMulFreeLM` is the paper's model. `build(cfg)` picks one by `cfg.arch`.
The shared skeleton (`LMConfig`, `CausalLM`, `lm_loss`, `generate`) lives in `ingur_lib.models.decoder`
and is re-exported here.
"""
from __future__ import annotations

from torch import nn

from ..measure import count_params  # noqa: F401  (re-exported: notebooks count with it)
from ..nn.attention import scaled_dot_product
from ..nn.rope import Rotary
from .decoder import ARCHS, CausalLM, LMConfig, generate, lm_loss  # noqa: F401  (re-exported)
from .mlgru import MatMulFreeLM


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE on queries and keys, no biases (Transformer++).

    Both paths are `nn.attention.scaled_dot_product(causal=True)`: the fused kernel with its causal flag, or,
    inside `capture_attention`, the explicit one that records the (B, H, N, N) weights.
    """

    def __init__(self, dim: int, heads: int, max_len: int = 512):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.rotary = Rotary(self.head_dim, max_len)
        self.capture: list | None = None  # set by capture_attention()

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, self.head_dim).transpose(1, 2) for p in (self.q, self.k, self.v))
        q, k = self.rotary(q, k)
        out, w = scaled_dot_product(q, k, v, need_weights=self.capture is not None, causal=True)
        if w is not None:
            self.capture.append(w.detach())
        return self.o(out.transpose(1, 2).reshape(b, n, d))


class TransformerPP(CausalLM):
    """Transformer++: causal attention with RoPE, SwiGLU, RMSNorm, no biases, full precision."""

    def make_mixer(self, i):
        return CausalSelfAttention(self.cfg.dim, self.cfg.heads, self.cfg.max_len)


def build(cfg: LMConfig) -> CausalLM:
    """The model named by `cfg.arch`."""
    if cfg.arch == "matmulfree":
        return MatMulFreeLM(cfg)
    return TransformerPP(cfg)


