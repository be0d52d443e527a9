"""Independent training jobs spread over worker processes, one torch thread each.

A tiny model uses a second CPU thread poorly: chapter 08's binary DeiT takes 34 ms a step at 2 threads and
43 ms at 1 on this book's 2-core machine, so two one-thread processes train about 1.6x more steps per
second than one two-thread process. A job is a module-level function and its arguments; it seeds itself
from its arguments, so its result does not depend on which worker runs it, or when.

    results = run_jobs(train_one, [(cfg, "a", 0), (cfg, "b", 0)], workers=2, cost=[1.0, 1.5])

`workers=1` runs the jobs in this process, one after the other (the notebooks, the tests). Inside
`resume.resumable` the workers checkpoint into the same folder, so an interrupted run resumes as a serial one does.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Sequence

import torch

from . import resume
from .errors import IngurError


def default_workers() -> int:
    """One worker per CPU core this process may use (INGUR_WORKERS overrides)."""
    env = os.environ.get("INGUR_WORKERS")
    if env is not None:
        if not env.isdigit() or int(env) < 1:
            raise IngurError(f"INGUR_WORKERS={env!r} is not a positive whole number: set it to e.g. 2, or unset it.")
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _worker_start() -> None:
    torch.set_num_threads(1)
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the process that started it dies, so a killed `reproduce` leaves
    no orphan training on (and skewing the next run's wall time)."""
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _carried(folder, fn: Callable, job: tuple):
    """fn(*job) in a worker, checkpointing where the parent's `resume.resumable` block does (a killed
    `reproduce` run resumes its workers' trainings too); a dry run's INGUR_DRY_RUN reaches the worker through
    its environment (`ingur_lib.dryrun`)."""
    with resume.using(folder):
        return fn(*job)


def run_jobs(fn: Callable, jobs: Sequence[tuple], workers: int, cost: Sequence[float] | None = None,
             on_done: Callable[[int, object], None] | None = None) -> list:
    """[fn(*job) for job in jobs], on `workers` processes; the costliest jobs start first (so no core idles
    at the end while one long job runs), and the results come back in the order of `jobs`. `on_done(i,
    result)` is called in this process as each job ends (a progress line)."""
    if workers < 1:
        raise IngurError(f"workers={workers}: give at least 1 (1 runs the jobs in this process).")
    on_done = on_done or (lambda i, out: None)
    if workers == 1 or len(jobs) <= 1:
        outs = []
        for i, job in enumerate(jobs):
            outs.append(fn(*job))
            on_done(i, outs[-1])
        return outs
    order = sorted(range(len(jobs)), key=lambda i: -cost[i]) if cost else range(len(jobs))
    # spawn, not fork: a forked child of a process that has run OpenMP threads can hang
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_start) as ex:
        futures = {ex.submit(_carried, resume.active(), fn, jobs[i]): i for i in order}
        for f in as_completed(futures):
            on_done(futures[f], f.result())
        return [f.result() for f in sorted(futures, key=futures.get)]


def pack_state(model: torch.nn.Module) -> bytes:
    """A model's state dict as bytes, to cross between processes (no shared-memory tensors to leak)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def unpack_state(data: bytes) -> dict:
    return torch.load(io.BytesIO(data), weights_only=True)
