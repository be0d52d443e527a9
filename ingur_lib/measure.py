"""Measuring models, one way for the whole book: parameters, FLOPs, latency/throughput, storage.

A book about *efficient* transformers compares models by these four numbers, so every chapter, figure and
benchmark takes them from here, measured the same way:

* **parameters**: every element of `model.parameters()` (shared tensors once).
* **FLOPs**: one forward pass counted by `torch.utils.flop_counter` (a multiply-add counts 2), with
  attention routed through its explicit matmul path so QK^T and AV are counted too (the fused CPU kernel of
  `F.scaled_dot_product_attention` is invisible to the counter).
* **time**: `warmup` untimed calls, then `torch.utils.benchmark.Timer.blocked_autorange` (PyTorch's own
  timer: this process's torch threads, CUDA synchronised, calls grouped in blocks long enough for the clock)
  for about the time of `repeats` calls; the **median** per-call time of its blocks, with the torch thread
  count and batch size recorded beside the number.
* **storage**: bytes to store the weights: float32 and bfloat16 for everything, and `packed`, where a module
  that stores low-bit weights says how many bytes its packed weight takes (`packed_weight_bytes()`, e.g.
  2-bit ternary BitLinear, 1-bit binary linear) and everything else stays float32.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch import nn

WARMUP, REPEATS = 3, 20


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements), optionally only those that require gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, x, explicit_attention: bool = True) -> int:
    """FLOPs of one forward pass on `x` (eval mode, no gradients; a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    from .nn.attention import capture_attention
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            if explicit_attention:
                with capture_attention(model):
                    model(x)
            else:
                model(x)
    finally:
        model.train(was)
    return int(counter.get_total_flops())


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], object], warmup: int = WARMUP, repeats: int = REPEATS, device="cpu") -> list[float]:
    """Seconds per call of `fn`, one number per timed block: `warmup` untimed calls (at least one, which also
    says how long a call takes), then `Timer.blocked_autorange` on this process's torch threads for about the
    time of `repeats` calls."""
    from torch.utils import benchmark

    from . import dryrun
    for _ in range(0 if dryrun.active() else max(warmup - 1, 0)):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    one = time.perf_counter() - t0
    if dryrun.active():  # the code path, not a number: one call
        return [one]
    timer = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return list(timer.blocked_autorange(min_run_time=max(repeats * one, 0.01)).times)


def _report(times: list[float], batch: int, warmup: int) -> dict:
    med = statistics.median(times)
    return {"seconds": med, "items_per_s": batch / med, "batch": batch, "threads": torch.get_num_threads(),
            "warmup": warmup, "repeats": len(times), "spread": [min(times), max(times)]}


def latency(model: nn.Module, x: torch.Tensor, warmup: int = WARMUP, repeats: int = REPEATS) -> dict:
    """Inference time of one forward pass on the batch `x` (eval mode, no gradients, fast attention path):
    median seconds, items per second, and how it was measured (batch, threads, warmup, repeats, min/max)."""
    from .dryrun import active
    x = x[:1] if active() else x  # a dry run times one image once: DeiT-B at 224 px costs 17 GFLOPs each
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            times = timeit(lambda: model(x), warmup, repeats, x.device)
    finally:
        model.train(was)
    return _report(times, len(x), warmup)


def train_throughput(model: nn.Module, x: torch.Tensor, y: torch.Tensor, warmup: int = WARMUP,
                     repeats: int = REPEATS, lr: float = 1e-3) -> dict:
    """Training time of one step (forward, cross-entropy, backward, AdamW) on the batch (`x`, `y`), measured
    like `latency`. The model's weights change: pass a copy if they matter."""
    from .dryrun import active
    x, y = (x[:1], y[:1]) if active() else (x, y)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return _report(timeit(step, warmup, repeats, x.device), len(x), warmup)


def storage_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes to store `model`'s parameters: all float32, all bfloat16, and packed (modules with a
    `packed_weight_bytes()` method store their `weight` that way; every other parameter float32)."""
    total = count_params(model)
    low_bit, packed = 0, 0
    for m in model.modules():
        if hasattr(m, "packed_weight_bytes"):
            low_bit += m.weight.numel()
            packed += int(m.packed_weight_bytes())
    return {"params": total, "low_bit_params": low_bit, "float32": 4 * total, "bfloat16": 2 * total,
            "packed": packed + 4 * (total - low_bit)}
