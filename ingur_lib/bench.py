"""`python -m ingur_lib bench`: is the book's ViT as fast as a plain one?

Times the base ViT of chapter 00 (its standard dims, all tokens kept) beside `PlainViT`, a minimal ViT
written directly on `F.scaled_dot_product_attention` with the same dims and the same parameter count,
in the same process, alternating the two (`rounds` times) so that the machine's drift hits both alike.
Both are measured by `ingur_lib.measure` (warm-up, then `torch.utils.benchmark.Timer.blocked_autorange` on
the process's torch threads, median of its blocks); the ratio is book / plain within
each round (paired in time; the order within a round alternates too, since whoever goes first runs measurably
slower), its median over rounds reported with its range (above 1: the book's ViT is faster). On a shared
machine the range tells how far to trust it. `kernel_counts` shows what lies below the timing: the two
models run the same ATen kernels, the same number of times, so a ratio away from 1 is Python overhead or noise.
"""
from __future__ import annotations

import statistics
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from . import measure
from .errors import IngurError
from .models.vit import ViT, ViTConfig


class PlainBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.qkv, self.proj = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.norm2, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PlainViT(nn.Module):
    """The reference: conv patch embedding, class token, positions, pre-LN blocks, LayerNorm, linear head."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        n = (cfg.image_size // cfg.patch_size) ** 2
        self.embed = nn.Conv2d(cfg.in_chans, cfg.dim, cfg.patch_size, cfg.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, cfg.dim))
        self.blocks = nn.Sequential(*(PlainBlock(cfg.dim, cfg.heads, int(cfg.dim * cfg.mlp_ratio))
                                      for _ in range(cfg.depth)))
        self.norm, self.head = nn.LayerNorm(cfg.dim), nn.Linear(cfg.dim, cfg.num_classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


def base_config() -> ViTConfig:
    """Chapter 00's standard ViT dims (patch 7, dim 128, 3 blocks, 4 heads), every token kept."""
    from dataclasses import replace

    from .chapters.getting_started import CONFIGS
    return replace(CONFIGS["standard"].model, patch_keep=1.0)


def kernel_counts(model: nn.Module, x: torch.Tensor) -> Counter:
    """How many times each ATen operator runs in one inference forward pass: what the machine executes, below
    Python. Two models with the same counts differ only in Python-side overhead."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            counts[str(func.overloadpacket)] += 1
            return func(*args, **(kwargs or {}))
    counts: Counter = Counter()
    was = model.training
    model.eval()
    with torch.no_grad(), Count():
        model(x)
    model.train(was)
    return counts


def check_counts(**counts) -> None:
    """Each count a whole number >= 1 (a batch of 0 times nothing), else IngurError naming it."""
    for name, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise IngurError(f"bench {name}={n!r} measures nothing: use a whole number >= 1.")


def bench(batch: int = 128, rounds: int = 6, repeats: int = 10) -> dict:
    """Inference and training images/s of the book's ViT and the plain one, and their ratios."""
    check_counts(batch=batch, rounds=rounds, repeats=repeats)
    cfg = base_config()
    torch.manual_seed(0)
    models = {"book": ViT(cfg), "plain": PlainViT(cfg)}
    x = torch.randn(batch, cfg.in_chans, cfg.image_size, cfg.image_size)
    y = torch.randint(0, cfg.num_classes, (batch,))
    # alternate, so drift of the machine's speed hits both, and who goes first: that is worth ~10%
    runs = measure.in_rounds(models, rounds, lambda model: {
        "inference": measure.latency(model, x, 2, repeats)["items_per_s"],
        "training": measure.train_throughput(model, x, y, 2, repeats)["items_per_s"]})
    out = {"batch": batch, "threads": torch.get_num_threads(), "rounds": rounds, "repeats": repeats,
           "params": {n: measure.count_params(m) for n, m in models.items()},
           "kernels": {n: sum(kernel_counts(m, x).values()) for n, m in models.items()}}
    for kind in ("inference", "training"):
        book, plain = ([r[kind] for r in runs[name]] for name in ("book", "plain"))
        ratio = measure.paired_ratio(book, plain)  # paired: same round
        out[kind] = {"book": statistics.median(book), "plain": statistics.median(plain),
                     "ratio": ratio["median"], "ratio_range": ratio["range"]}
    return out


def report(r: dict) -> str:
    lines = [f"ViT of chapter 00 (standard dims) vs a plain SDPA ViT: batch {r['batch']}, {r['threads']} threads, "
             f"median of {r['rounds']} alternating rounds x {r['repeats']} repeats; params "
             f"{r['params']['book']:,} vs {r['params']['plain']:,}; ATen kernels per forward "
             f"{r['kernels']['book']} vs {r['kernels']['plain']}"]
    for kind in ("inference", "training"):
        k = r[kind]
        lines.append(f"{kind:9s}  book {k['book']:7.0f} img/s   plain {k['plain']:7.0f} img/s   "
                     f"ratio {k['ratio']:.3f} (rounds {k['ratio_range'][0]:.3f}-{k['ratio_range'][1]:.3f})")
    return "\n".join(lines)
