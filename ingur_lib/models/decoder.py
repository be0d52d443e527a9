"""The decoder skeleton both language models of chapter 09 [9] share, so they differ only in their token
mixer and their linear layers:

    x_0 = Embed(ids)                                   (full precision in both models)
    x'_l = x_{l-1} + TokenMixer(RMSNorm(x_{l-1}))      (causal self-attention with RoPE, or MLGRU)
    x_l  = x'_l + GLU(RMSNorm(x'_l))                   (SwiGLU with Linear, or with BitLinear)
    logits = Head(RMSNorm(x_L))

The models: `ingur_lib.models.lm.TransformerPP` and `ingur_lib.models.mlgru.MatMulFreeLM`; `lm.build(cfg)`
picks one by `cfg.arch`. Ids follow `ingur_lib.data.Vocab`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import IngurError
from ..nn.glu import GLU, glu_hidden
from ..nn.norms import RMSNorm

ARCHS = ("transformerpp", "matmulfree")


@dataclass
class LMConfig:
    arch: str = "transformerpp"    # one of ARCHS
    vocab: int = 0
    dim: int = 128
    depth: int = 2
    heads: int = 4                 # attention heads (Transformer++ only)
    hidden: int | None = None      # GLU width; None = 8/3 * dim rounded up to 16
    max_len: int = 512             # longest sequence (RoPE table)
    lower_bound: bool = True       # MLGRU: learned forget-gate lower bounds rising with depth
    ternary_head: bool = True      # MatMul-free: the output head is a BitLinear too, as in the official code
    glu_fused: bool = False        # gate and up as one projection (the official HGRNBitMLP: one ternary scale)
    official_gate: bool = False    # MLGRU output RMSNorm(g) * SiLU(h), the official code (paper: sigmoid(g) * h)
    init_std: float = 0.02

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise IngurError(f"Unknown arch {self.arch!r}: use one of {', '.join(ARCHS)}.")
        if self.dim % self.heads:
            raise IngurError(f"dim={self.dim} is not divisible by heads={self.heads}: choose heads that divide dim.")

    @property
    def glu_hidden(self) -> int:
        return self.hidden or glu_hidden(self.dim)

    def to_dict(self) -> dict:
        return asdict(self)


class Block(nn.Module):
    """Pre-RMSNorm residual block: x + mixer(norm(x)), then x + GLU(norm(x))."""

    def __init__(self, dim: int, mixer: nn.Module, glu: nn.Module):
        super().__init__()
        self.mixer_norm, self.mixer = RMSNorm(dim), mixer
        self.glu_norm, self.glu = RMSNorm(dim), glu

    def forward(self, x, **mixer_kwargs):
        x = x + self.mixer(self.mixer_norm(x), **mixer_kwargs)
        return x + self.glu(self.glu_norm(x))


class CausalLM(nn.Module):
    """The shared skeleton: subclasses give `make_mixer(i)`, the `linear` layer type, `head_linear()` and
    `mixer_kwargs()`."""

    def no_weight_decay(self) -> set[str]:
        """The token embedding is not decayed (besides biases and norm gains)."""
        return {"token_embed.weight"}

    linear = nn.Linear

    def __init__(self, cfg: LMConfig):
        super().__init__()
        if cfg.vocab <= 0:
            raise IngurError("LMConfig.vocab is 0: set it to the vocabulary size, e.g. len(vocab).")
        self.cfg = cfg
        self.token_embed = nn.Embedding(cfg.vocab, cfg.dim)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, self.make_mixer(i), GLU(cfg.dim, cfg.glu_hidden, self.linear, cfg.glu_fused))
            for i in range(cfg.depth))
        self.norm = RMSNorm(cfg.dim)
        self.head = self.head_linear()(cfg.dim, cfg.vocab, bias=False)
        self.reset_parameters()

    def make_mixer(self, i: int) -> nn.Module:
        raise NotImplementedError

    def head_linear(self):
        return nn.Linear

    def mixer_kwargs(self) -> list[dict]:
        return [{} for _ in self.blocks]

    @torch.no_grad()
    def reset_parameters(self):
        """N(0, init_std) for every weight matrix and the embedding; the residual branches' last projections
        (attention/MLGRU output, GLU down) scaled by 1/sqrt(2 * depth), as GPT-2 and the official code do."""
        for name, p in self.named_parameters():
            if p.ndim == 2 and "lower_bound" not in name:
                nn.init.normal_(p, 0.0, self.cfg.init_std)
                if name.endswith(("o.weight", "o_proj.weight", "down.weight")):
                    p /= math.sqrt(2 * self.cfg.depth)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> next-token logits (B, T, vocab)."""
        x = self.token_embed(ids)
        for block, kw in zip(self.blocks, self.mixer_kwargs()):
            x = block(x, **kw)
        return self.head(self.norm(x))


def lm_loss(model: nn.Module, batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy (nats per token) for `fit`: batch = (inputs (B, T), targets (B, T))."""
    x, y = batch[0], batch[1]
    logits = model(x)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten()), logits



@torch.no_grad()
def generate(model: CausalLM, prompt_ids: torch.Tensor, n: int, context: int, temperature: float = 0.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend `prompt_ids` (1-D) by `n` tokens, each predicted from the last `context` ones (greedy when
    temperature is 0, else sampled from softmax(logits / temperature)). No state cache: simple and short."""
    model.eval()
    ids = prompt_ids.clone()
    dev = next(model.parameters()).device
    for _ in range(n):
        logits = model(ids[-context:][None].to(dev))[0, -1].float().cpu()
        if temperature > 0:
            nxt = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)
        else:
            nxt = logits.argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt])
    return ids
