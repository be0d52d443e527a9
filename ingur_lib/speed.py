"""Does compression make a model faster on this CPU? Measured latency and memory, beside what the counts promise.

The compression chapters count their savings (parameters, FLOPs, OPs, packed bytes). These functions time
what a reader's CPU makes of them, with `measure`'s protocol (rounds in alternating order, medians of repeats,
ratios paired within a round, threads and load recorded), so a chapter's reproduce can record them:

* `int_kernels` (08 BinaryViT [1], 09 MatMul-free LM [9]): one linear layer (width -> width, `tokens` per
  item) three ways: **float32** (`F.linear` on full-precision weights, after the same RMSNorm for ternary),
  **as trained** (the layer's fake-quantised float forward, what the chapters run) and **int8** (the integer
  layer of `nn.int_infer` on `torch._int_mm`). Per width and batch: median milliseconds, speedup of int8 over
  float32, memory (weights + the most bytes its tensors hold at once during a call) and the int8 output's
  relative error against float32 (the quantisation's own error). `crossover` reads the width from which int8
  wins.
* `pruned_structures` (07 VTP [8]): the per-layer keep ratios that VTP learned on the book's small ViT, scaled
  onto a DeiT-Ti- or DeiT-S-size ViT (Touvron et al. 2021, Table 1: width 192 / 384, 12 blocks, MLP x4, 224 px,
  patch 16), widths rounded to a multiple the CPU's kernels like, slimmed with `prune.slim` (random weights:
  latency does not depend on their values). Speedup over the dense model beside the FLOPs bound 1 / (1 - cut).
"""
from __future__ import annotations

import os
import statistics

import torch
import torch.nn.functional as F

from . import measure
from .nn import prune
from .models.deit import deit_config
from .models.vit import ViT, ViTConfig
from .nn.binary import BinaryLinear
from .nn.int_infer import IntBinaryLinear, IntBitLinear
from .nn.quant import BitLinear


def _setting(rounds: int, warmup: int, repeats: int) -> dict:
    """How a table was measured: what a later, quieter recording must match or beat."""
    return {"threads": torch.get_num_threads(), "rounds": rounds, "warmup": warmup, "repeats": repeats,
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


# ---------------------------------------------------------------- low-bit layers on the int8 kernel

def _layer(kind: str, width: int):
    """(float32 forward, the tensors it reads, trained layer, int8 layer) of one width x width layer of `kind`
    (random weights)."""
    if kind == "ternary":
        layer = BitLinear(width, width)
        return (lambda x: F.linear(layer.norm(x), layer.weight)), (layer.norm.weight, layer.weight), layer, \
            IntBitLinear(layer)
    if kind == "binary":
        layer = BinaryLinear(width, width)
        return (lambda x: F.linear(x, layer.weight, layer.bias)), (layer.weight, layer.bias), layer, \
            IntBinaryLinear(layer)
    raise ValueError(f"kind {kind!r}: use 'ternary' or 'binary'")


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@torch.no_grad()
def _int_row(kind: str, width: int, batch: int, tokens: int, compiled: bool, rounds: int, warmup: int,
             repeats: int) -> dict:
    torch.manual_seed(0)
    dense, dense_weights, trained, fast = _layer(kind, width)
    x = torch.randn(batch, tokens, width)
    fns = {"float32": lambda: dense(x), "trained": lambda: trained(x), "int8": lambda: fast(x)}
    if compiled:  # the quantiser and rescale fused around the same int8 kernel (compiled once per shape)
        fused = torch.compile(fast)
        fns["int8_compiled"] = lambda: fused(x)
    times = measure.alternated(fns, rounds, warmup, repeats)
    ref = dense(x)
    weights = {"float32": _bytes(dense_weights), "int8": _bytes((*fast.parameters(), *fast.buffers()))}
    ints = [k for k in fns if k.startswith("int8")]
    return {"kind": kind, "width": width, "batch": batch, "tokens": tokens,
            **{f"{k}_ms": 1000 * statistics.median(v) for k, v in times.items()},
            "speedup": {k: measure.paired_ratio(times["float32"], times[k]) for k in ints},
            "memory_bytes": {k: weights["float32" if k == "float32" else "int8"] + measure.peak_bytes(fns[k])
                             for k in ("float32", *ints)},
            "weight_bytes": weights,
            "rel_error": float((fast(x) - ref).norm() / ref.norm()),  # what quantising costs (large for 1 bit)
            "vs_trained": float((fast(x) - trained(x)).abs().max() / trained(x).abs().max())}  # float rounding


def int_kernels(widths=(32, 64, 128, 192, 384, 768), batches=(1, 64), tokens: int = 64,
                kinds=("ternary", "binary"), compiled: bool = False, rounds: int = 3, warmup: int = 2,
                repeats: int = 10) -> dict:
    """Latency, memory and error of one width x width low-bit layer, float32 vs int8 (and int8 under
    torch.compile if `compiled`), for every kind x width x batch; `crossover` per kind and batch. Inputs:
    `batch` items of `tokens` tokens."""
    rows = [_int_row(k, w, b, tokens, compiled, rounds, warmup, repeats)
            for k in kinds for b in batches for w in widths]
    return {"setting": {**_setting(rounds, warmup, repeats), "kernel": "torch._int_mm (int8 x int8 -> int32)"},
            "rows": rows, "crossover": {f"{v} {k} batch {b}": crossover(rows, k, b, v)
                                        for v in rows[0]["speedup"] for k in kinds for b in batches}}


def crossover(rows: list[dict], kind: str, batch: int, variant: str = "int8") -> int | None:
    """The smallest measured width from which `variant` beats float32 (median speedup > 1) at every wider one;
    None if it loses at the widest."""
    found = None
    for r in sorted((r for r in rows if r["kind"] == kind and r["batch"] == batch), key=lambda r: -r["width"]):
        if r["speedup"][variant]["median"] <= 1:
            break
        found = r["width"]
    return found


def int_report(table: dict) -> str:
    """The table as text: one line per kind, batch and width."""
    s = table["setting"]
    ints = list(table["rows"][0]["speedup"])
    lines = [f"{s['kernel']}; {s['threads']} threads, {s['rounds']} rounds x {s['repeats']} repeats, load "
             f"{s['load_average']}",
             "kind    batch width | ms: " + " / ".join(["float32", "trained", *ints]) + " | speedup over float32 "
             "(range) | memory KiB: " + " / ".join(["float32", *ints]) + " | rel. error vs float32"]
    for r in table["rows"]:
        ms = " / ".join(f"{r[k + '_ms']:.3f}" for k in ("float32", "trained", *ints))
        up = "  ".join(f"{r['speedup'][k]['median']:.2f} ({r['speedup'][k]['range'][0]:.2f}-"
                       f"{r['speedup'][k]['range'][1]:.2f})" for k in ints)
        mem = " / ".join(f"{v / 1024:.1f}" for v in r["memory_bytes"].values())
        lines.append(f"{r['kind']:7s} {r['batch']:5d} {r['width']:5d} | {ms} | {up} | {mem} | {r['rel_error']:.3f}")
    lines.append("crossover width (faster than float32 from here up): " +
                 ", ".join(f"{k}: {v}" for k, v in table["crossover"].items()))
    return "\n".join(lines)


@torch.no_grad()
def int_model(model: torch.nn.Module, x, rounds: int = 3, warmup: int = 2, repeats: int = 10) -> dict:
    """A whole trained model as the chapters run it (fake-quantised float) against `nn.int_infer.to_int(model)`
    (every BitLinear / BinaryLinear on the int8 kernel; the rest, e.g. BinaryViT's attention products, stays
    float): milliseconds, speedup, memory (weights + peak bytes during a call), and the largest output
    difference relative to the largest output."""
    from .nn.int_infer import to_int
    model = model.eval()
    fast = to_int(model)
    fns = {"trained": lambda: model(x), "int8": lambda: fast(x)}
    times = measure.alternated(fns, rounds, warmup, repeats)
    weights = {"trained": _bytes((*model.parameters(), *model.buffers())),
               "int8": _bytes((*fast.parameters(), *fast.buffers()))}
    ref = model(x)
    return {"setting": _setting(rounds, warmup, repeats), "batch": len(x),
            **{f"{k}_ms": 1000 * statistics.median(v) for k, v in times.items()},
            "speedup": measure.paired_ratio(times["trained"], times["int8"]),
            "memory_bytes": {k: weights[k] + measure.peak_bytes(fns[k]) for k in fns}, "weight_bytes": weights,
            "max_rel_diff": float((fast(x) - ref).abs().max() / ref.abs().max())}


# ---------------------------------------------------------------- learned pruning on a DeiT-size structure

DEIT = {"DeiT-Ti": "tiny", "DeiT-S": "small"}  # names of models.deit.DEIT_CONFIGS


def keep_fractions(scores: dict[str, torch.Tensor], ratio: float) -> list[dict]:
    """Per block of the small model, the fractions of its attention (qkv input) and MLP hidden dimensions
    that VTP's global ranking keeps at `ratio` (`prune.global_masks`)."""
    masks = prune.global_masks({k: torch.as_tensor(v) for k, v in scores.items()}, ratio)
    depth = len(masks) // 2
    return [{kind: float(masks[f"block{i}.{kind}"].float().mean()) for kind in ("attn", "mlp")} for i in range(depth)]


def scaled_widths(fractions: list[dict], cfg: ViTConfig, multiple: int) -> list[dict]:
    """The small model's keep fractions on `cfg`'s blocks: block j takes the small block at the same relative
    depth (j * L_small // depth), each width rounded with `prune.round_width`."""
    full = {"attn": cfg.dim, "mlp": int(cfg.dim * cfg.mlp_ratio)}
    return [{k: prune.round_width(full[k], fractions[j * len(fractions) // cfg.depth][k] * full[k], multiple)
             for k in full}
            for j in range(cfg.depth)]


def slim_structure(cfg: ViTConfig, widths: list[dict]) -> torch.nn.Module:
    """A slim ViT of `cfg` whose blocks have `widths` (the first dimensions kept: latency ignores which)."""
    model = prune.add_gates(ViT(cfg))
    full = {"attn": cfg.dim, "mlp": int(cfg.dim * cfg.mlp_ratio)}
    masks = {f"block{i}.{k}": torch.arange(full[k]) < w[k] for i, w in enumerate(widths) for k in full}
    return prune.slim(model, masks).eval()


def structure_config(structure) -> ViTConfig:
    """A DeiT size at 224 px by name (`DEIT`), or a ViTConfig as given (e.g. the chapter's own small ViT, where
    `multiple=1` gives the widths it recorded)."""
    return structure if isinstance(structure, ViTConfig) else deit_config(DEIT[structure])


def _name(structure) -> str:
    return structure if isinstance(structure, str) else f"ViT {structure.dim}x{structure.depth}"


def _models(structure, fractions: dict, multiple: int) -> tuple[ViTConfig, dict, dict]:
    """(config, {"dense": ViT, ratio: slim ViT}, {ratio: widths}) of `structure` (`structure_config`)."""
    cfg = structure_config(structure)
    torch.manual_seed(0)
    widths = {r: scaled_widths(f, cfg, multiple) for r, f in fractions.items()}
    return cfg, {"dense": ViT(cfg).eval(), **{r: slim_structure(cfg, w) for r, w in widths.items()}}, widths


@torch.no_grad()
def _pruned_rows(structure, fractions: dict, batches, multiple: int, rounds: int, warmup: int, repeats: int):
    cfg, models, widths = _models(structure, fractions, multiple)
    shape = (cfg.in_chans, cfg.image_size, cfg.image_size)
    x1 = torch.randn(1, *shape)
    flops = {k: measure.count_flops(m, x1) for k, m in models.items()}
    rows = []
    for b in batches:
        x = torch.randn(b, *shape)
        times = measure.alternated({k: (lambda m=m: m(x)) for k, m in models.items()}, rounds, warmup, repeats)
        for r in fractions:
            bound = flops["dense"] / flops[r]
            speed = measure.paired_ratio(times["dense"], times[r])
            rows.append({"structure": _name(structure), "ratio": r, "multiple": multiple, "batch": b,
                         "widths": widths[r],
                         "flops_cut": 1 - 1 / bound, "bound": bound, "speedup": speed,
                         "of_bound": speed["median"] / bound, "dense_ms": 1000 * statistics.median(times["dense"]),
                         "pruned_ms": 1000 * statistics.median(times[r])})
    return rows


def pruned_structures(scores: dict, ratios=(0.4, 0.8), structures=("DeiT-Ti", "DeiT-S"), batches=(1, 64),
                      multiple: int = 16, rounds: int = 3, warmup: int = 1, repeats: int = 3) -> dict:
    """Speedup of the learned keep ratios (`scores`: VTP's |a| per gate, as chapter 07 records them) on DeiT-size
    structures (names of `DEIT`, or ViTConfigs) against the dense one, per ratio and batch, beside the FLOPs
    bound 1 / (1 - cut)."""
    fractions = {r: keep_fractions(scores, r) for r in ratios}
    rows = [row for structure in structures
            for row in _pruned_rows(structure, fractions, batches, multiple, rounds, warmup, repeats)]
    return {"setting": _setting(rounds, warmup, repeats), "fractions": fractions, "rows": rows}


@torch.no_grad()
def pruned_ops(scores: dict, structure, ratios=(0.2, 0.4, 0.8), batch: int = 256,
               multiple: int = 1, rounds: int = 2, warmup: int = 2, repeats: int = 5) -> dict:
    """Where the dense and the pruned models' time goes: per model, the median over `rounds` (alternating
    order) of the milliseconds per forward pass spent in each ATen operator (`measure.op_times`)."""
    cfg, models, widths = _models(structure, {r: keep_fractions(scores, r) for r in ratios}, multiple)
    x = torch.randn(batch, cfg.in_chans, cfg.image_size, cfg.image_size)
    runs = measure.in_rounds({k: (lambda m=m: m(x)) for k, m in models.items()}, rounds,
                             lambda fn: measure.op_times(fn, warmup, repeats))
    ops = {k: {op: statistics.median(r.get(op, 0.0) for r in v) for op in v[0]} for k, v in runs.items()}
    return {"setting": {**_setting(rounds, warmup, repeats), "structure": _name(structure), "batch": batch,
                        "multiple": multiple}, "widths": widths, "ms_per_op": ops}


def ops_report(table: dict, top: int = 8) -> str:
    """The dense model's `top` operators, with each model's milliseconds in them and in total."""
    ops = table["ms_per_op"]
    names = list(ops["dense"])[:top]
    lines = ["model    " + "".join(f"{n.removeprefix('aten::')[:16]:>17s}" for n in names) + "    total ms"]
    for k, v in ops.items():
        lines.append(f"{str(k):8s} " + "".join(f"{v.get(n, 0.0):17.2f}" for n in names) + f"{sum(v.values()):12.2f}")
    return "\n".join(lines)
