"""Where `fit` runs: one process, or one of several (CPU processes, GPUs, machines) through 🤗 Accelerate.

The training loop is the same code everywhere; an `Engine` answers the few questions that differ:

* one process (a laptop, Colab, CI): nothing is wrapped, and the numbers are bit-identical to a loop
  written without this module;
* several processes, started by `torchrun --nproc_per_node N -m ingur_lib reproduce ...`,
  `accelerate launch --multi_gpu --num_processes N -m ingur_lib reproduce ...` (or as `accelerate config`
  says), or `accelerate.notebook_launcher(fn, num_processes=N)`: Accelerate joins the process group (gloo
  on CPU, NCCL on GPUs) and wraps the model in DistributedDataParallel. Every process draws the same
  shuffled order, and takes its own contiguous slice of each global batch; DDP averages the gradients, so
  one step equals a single process's step on the whole global batch (tests start 2 CPU processes with
  `torchrun` and `accelerate launch` and compare them with one). A process whose slice of a short last
  batch is empty still joins the gradient average, with weight zero. Augmentation and dropout draw from
  per-process seeds; metrics (the per-step loss too) are summed over processes; only the main process
  writes checkpoints and results, and every process checks that all of them resumed from the same epoch.
* `accelerate launch --cpu --num_processes N` (N > 1) starts ONE process (Accelerate's simple launcher):
  the engine stops it with one sentence instead of letting it train alone as if it were N.

Precision (`precision`): INGUR_PRECISION, else Accelerate's (`accelerate launch --mixed_precision` or
`accelerate config`), else what the card runs natively: bf16 autocast on CUDA cards of compute capability
8 and above, fp16 autocast with a gradient scaler on older cards (Colab's T4 only emulates bf16), none on
a CPU.
"""
from __future__ import annotations

import os
from contextlib import nullcontext

import torch
from torch import nn

from .errors import IngurError
from .device import pick_device

PRECISIONS = ("no", "fp16", "bf16")


def launched() -> bool:
    """True inside a multi-process launch (accelerate launch, torchrun, notebook/debug launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def check_launch() -> None:
    """Stop, with one sentence, a launch that asked for several processes but started only this one.

    Accelerate's simple launcher (`accelerate launch --cpu`, or `--num_processes N` without `--multi_gpu`)
    runs one process and sets MASTER_ADDR only when more than one process or machine was asked for."""
    if not launched() and "ACCELERATE_USE_CPU" in os.environ and "MASTER_ADDR" in os.environ:
        raise IngurError("`accelerate launch` started one process although several were asked for (it does so "
                         "with --cpu, or without --multi_gpu): use `accelerate launch --multi_gpu "
                         "--num_processes N ...` (CPU processes too) or `torchrun --nproc_per_node N ...`.")


def _native_bf16(device: torch.device) -> bool:
    """Whether the CUDA card runs bf16 in hardware (compute capability >= 8), not emulated (a T4)."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch without the keyword
        return torch.cuda.get_device_capability(device)[0] >= 8


def precision(device: torch.device) -> str:
    """'bf16', 'fp16' or 'no': INGUR_PRECISION, else Accelerate's setting (the launch flag or `accelerate
    config`, passed as ACCELERATE_MIXED_PRECISION), else the card's native choice. Off a CUDA card only
    bf16 autocast is honoured (CPU autocast has no gradient scaler for fp16)."""
    asked = (os.environ.get("INGUR_PRECISION") or os.environ.get("ACCELERATE_MIXED_PRECISION") or "").strip().lower()
    if asked and asked not in PRECISIONS:
        raise IngurError(f"Unknown precision {asked!r} (INGUR_PRECISION or accelerate's mixed_precision): "
                         f"use one of {', '.join(PRECISIONS)}.")
    if device.type != "cuda":
        return "bf16" if asked == "bf16" else "no"
    return asked or ("bf16" if _native_bf16(device) else "fp16")


def autocast(device: torch.device):
    """The forward pass's autocast for `precision(device)` (disabled at 'no': fp32, bit-identical)."""
    mode = precision(device)
    if mode == "no":
        return torch.autocast(device.type if device.type in ("cuda", "cpu") else "cpu", enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only under fp16 autocast (disabled, it passes everything through)."""
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu",
                                enabled=precision(device) == "fp16")


class Engine:
    """One process's view of a (possibly distributed) run."""

    def __init__(self, device=None):
        check_launch()
        self.accelerator = None
        if launched():
            from accelerate import Accelerator  # only needed when launched: a plain run never imports it
            cpu = not torch.cuda.is_available() or str(device or os.environ.get("INGUR_DEVICE", "")).startswith("cpu")
            # cpu=True is what makes Accelerate join CPU processes (gloo) instead of running each alone as
            # rank 0; precision stays fit's own (`precision` reads Accelerate's setting), so "no" here.
            self.accelerator = Accelerator(cpu=cpu, mixed_precision="no")
        acc = self.accelerator
        self.rank = acc.process_index if acc else 0
        self.world = acc.num_processes if acc else 1
        self.device = acc.device if acc else (torch.device(device) if device else pick_device())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare(self, model: nn.Module, opt: torch.optim.Optimizer):
        """Wrap for DDP when launched (the optimizer is left as it is: fit steps it itself)."""
        return (self.accelerator.prepare_model(model), opt) if self.accelerator else (model, opt)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return self.accelerator.unwrap_model(model) if self.accelerator else model

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This process's contiguous slice of a global batch of indices (empty when the batch is shorter
        than the number of processes and this process comes last)."""
        return idx.tensor_split(self.world)[self.rank] if self.world > 1 else idx

    def seed(self, base: int) -> int:
        """A per-process seed for augmentation and dropout (the base itself in a single process)."""
        return base + 1_000_003 * self.rank

    def no_sync(self, model: nn.Module, sync: bool):
        """Skip the gradient all-reduce on micro-batches that are not the last of an accumulated step."""
        return nullcontext() if sync or self.world == 1 else model.no_sync()

    def sum(self, *values: float) -> list[float]:
        """Each value summed over all processes."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        return self.accelerator.reduce(t, reduction="sum").tolist()

    def mean(self, value: float, n: int) -> float:
        """The mean over all processes of a per-process mean `value` over `n` samples."""
        if self.world == 1:
            return value
        total, count = self.sum(value * n, n)
        return total / max(count, 1)

    def gather(self, value: float) -> list[float]:
        """One number from every process, in rank order."""
        if self.world == 1:
            return [value]
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        return self.accelerator.gather(t).tolist()

    def agree(self, value: int, what: str) -> None:
        """IngurError in every process unless all of them hold the same `value` (e.g. the epoch resumed)."""
        seen = self.gather(value)
        if len(set(seen)) > 1:
            raise IngurError(f"The processes disagree on {what} "
                             f"({', '.join(f'rank {r}: {v:g}' for r, v in enumerate(seen))}): "
                             "put the cache and results folders (INGUR_CACHE, INGUR_RESULTS) on a disk every "
                             "machine shares, or delete the checkpoints to start afresh.")

    def wait(self) -> None:
        if self.accelerator:
            self.accelerator.wait_for_everyone()

    def describe(self) -> dict:
        """The launch, for a results file's provenance: processes, machines, devices, precision."""
        local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
        device = self.device.type
        if device == "cuda":
            device += f" ({torch.cuda.get_device_name(self.device)})"
        return {"processes": self.world, "machines": max(1, self.world // max(local, 1)),
                "devices": f"{local} x {device} per machine", "precision": precision(self.device)}


_CURRENT: Engine | None = None


def engine(device=None) -> Engine:
    """The engine of this process: one per process when launched (Accelerate's state is process-wide)."""
    global _CURRENT
    if not launched():
        return Engine(device)
    if _CURRENT is None:
        _CURRENT = Engine(device)
    return _CURRENT


def is_main_process() -> bool:
    """False in every process but the first of a launch: only the first writes results."""
    return int(os.environ.get("RANK", "0")) == 0
