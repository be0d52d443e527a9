"""Where `fit` runs: one process, or one of several (GPUs, machines) through 🤗 Accelerate.

The training loop is the same code everywhere; an `Engine` answers the few questions that differ:

* one process (a laptop, Colab, CI): nothing is wrapped, and the numbers are bit-identical to a loop
  written without this module;
* several processes, started by `accelerate launch -m ingur_lib reproduce <chapter> --profile full`
  (any number of GPUs or machines, as `accelerate config` describes them) or by
  `accelerate.notebook_launcher(fn, num_processes=N)` from a notebook: Accelerate starts the process
  group and wraps the model in DistributedDataParallel. Every process draws the same shuffled order, and
  takes its own contiguous slice of each global batch; DDP averages the gradients, so one step equals a
  single process's step on the whole global batch (a test checks it with 2 CPU processes over gloo).
  Augmentation and dropout draw from per-process seeds; metrics are summed over processes; only the
  main process writes checkpoints and results.

Why Accelerate and not `torchrun` directly: the same launcher covers one GPU, several GPUs, several
machines, TPUs and notebooks, and a reader configures it once with `accelerate config`.
"""
from __future__ import annotations

import os
from contextlib import nullcontext

import torch
from torch import nn

from .runtime import pick_device


def launched() -> bool:
    """True inside a multi-process launch (accelerate launch, torchrun, notebook/debug launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class Engine:
    """One process's view of a (possibly distributed) run."""

    def __init__(self, device=None):
        self.accelerator = None
        if launched():
            from accelerate import Accelerator  # only needed when launched: a plain run never imports it
            self.accelerator = Accelerator(mixed_precision="no")  # bf16 autocast stays fit's own, on GPU
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
        """This process's contiguous slice of a global batch of indices."""
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

    def wait(self) -> None:
        if self.accelerator:
            self.accelerator.wait_for_everyone()


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

