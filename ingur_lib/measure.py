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
* **comparisons** (`alternated`): several callables timed in rounds, the order reversed every other round
  (whoever goes first runs measurably slower, and the machine's drift then hits all alike); per callable the
  median of `repeats` calls in each round, and ratios taken within a round (`paired_ratio`).
* **peak memory** (`peak_bytes`): the most bytes that tensors created during one call hold at once (the
  profiler's memory timeline; inputs and weights that exist before the call are not counted).
* **where the time goes** (`op_times`): milliseconds per call of each ATen operator (self time, torch.profiler).
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


def in_rounds(fns: dict[str, Callable], rounds: int, take: Callable) -> dict[str, list]:
    """take(fn) for each callable in each of `rounds` rounds, the order reversed every other round."""
    out = {name: [] for name in fns}
    for r in range(rounds):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            out[name].append(take(fns[name]))
    return out


def alternated(fns: dict[str, Callable[[], object]], rounds: int = 5, warmup: int = WARMUP,
               repeats: int = REPEATS, device="cpu") -> dict[str, list[float]]:
    """Median seconds of each callable in each of `rounds` rounds (`in_rounds`: alternating order)."""
    return in_rounds(fns, rounds, lambda fn: statistics.median(timeit(fn, warmup, repeats, device)))


def paired_ratio(slow: list[float], fast: list[float]) -> dict:
    """slow / fast within each round (e.g. a speedup), its median and range over rounds."""
    ratios = [a / b for a, b in zip(slow, fast)]
    return {"median": statistics.median(ratios), "range": [min(ratios), max(ratios)]}


def peak_bytes(fn: Callable[[], object]) -> int:
    """The most bytes held at once by tensors that one call of `fn` creates (CPU; torch.profiler's memory
    timeline, which follows every tensor's creation and release; what exists before the call is not counted)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    now = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            now += size
        elif action == Action.DESTROY:
            now -= size
        peak = max(peak, now)
    return peak


def op_times(fn: Callable[[], object], warmup: int = WARMUP, repeats: int = REPEATS) -> dict[str, float]:
    """Self CPU milliseconds per call of `fn` spent in each ATen operator (torch.profiler over `repeats` calls
    after `warmup`), largest first: which kernels a model's time is made of."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            fn()
    times = {e.key: e.self_cpu_time_total / 1000 / repeats for e in prof.key_averages()}
    return dict(sorted(times.items(), key=lambda kv: -kv[1]))


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


def deployed_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a deployed copy of `model` keeps: every parameter and buffer as stored, except that the weight of a
    ternary `BitLinear` is kept as 2-bit codes packed 4 per byte plus its scale gamma (`quant.pack_ternary`), and
    that of a binary `BinaryLinear` as its signs packed 8 per byte plus one alpha per row (`BinaryLinear.packed`)."""
    from .nn.binary import BinaryLinear
    from .nn.quant import BitLinear, pack_ternary
    state, packed = {}, set()
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, BitLinear):
                codes, gamma = m.ternary()
                state[f"{name}.weight_codes"], state[f"{name}.weight_scale"] = pack_ternary(codes), gamma.reshape(1)
            elif isinstance(m, BinaryLinear):
                state[f"{name}.weight_signs"], state[f"{name}.weight_scale"] = m.packed()
            else:
                continue
            packed.add(f"{name}.weight")
        for k, v in model.state_dict().items():
            if k not in packed:
                state[k] = v.detach().clone()
    return state


def saved_bytes(model: nn.Module) -> int:
    """The size in bytes of the file `torch.save(deployed_state(model))` writes: the stored model measured, its
    container's overhead (names, headers) included."""
    import io
    buf = io.BytesIO()
    torch.save(deployed_state(model), buf)
    return buf.getbuffer().nbytes
