"""Interrupted runs resume: every `fit` inside `resumable(chapter, profile)` checkpoints itself.

`python -m ingur_lib reproduce` runs a chapter's `reproduce` inside `resumable`, so no chapter needs code
of its own: each training (each variant, each seed) gets a checkpoint file under
data/cache/checkpoints/<chapter>-<profile>/ named by its **fingerprint**, a SHA-256 of

* the training config (`TrainConfig`) and the model (its class, its module tree, its initial weights,
  which also cover its config and its init seed),
* the data (a hash of every train and test tensor's bytes, so another dataset of the same size never
  resumes this one),
* the functions that shape the run (prepare, loss, extra loss: their names and the values they close
  over, such as a distillation weight or a teacher's weights),
* the code version (a hash of every `ingur_lib` source file) and the torch version.

After a kill, the rerun recomputes everything before a training, finds that training's checkpoint,
and continues from its last finished epoch (a finished training loads and trains no more steps). The
training loop is deterministic per epoch (see `train`), so the resumed numbers equal the uninterrupted
ones. When the whole run ends without an error, its checkpoint folder is removed.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from .atomic import write_json
from .paths import cache_dir

_ACTIVE: ContextVar[Path | None] = ContextVar("ingur_resume_folder", default=None)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def checkpoint_folder(chapter: str, profile: str) -> Path:
    return cache_dir() / "checkpoints" / f"{chapter}-{profile}"


_CLOCK = "wall_clock.json"
_EARLIER: ContextVar[dict] = ContextVar("ingur_resume_earlier", default={"seconds": 0.0, "attempts": 1})


def _clock_in(folder: Path) -> dict:
    """Start an attempt's clock in `folder` and return what earlier attempts cost. An interrupted attempt
    ran from its recorded start until its last checkpoint was written (the work after it is redone, and
    counted, by the next attempt), so a resumed run's wall time is the total its results cost."""
    import json
    import time
    path, earlier = folder / _CLOCK, {"seconds": 0.0, "attempts": 1}
    try:
        last = json.loads(path.read_text())
        written = [f.stat().st_mtime for f in folder.iterdir() if f.name != _CLOCK]
        ran = max(written, default=last["start"]) - last["start"]
        earlier = {"seconds": last["earlier_s"] + max(ran, 0.0), "attempts": last["attempts"] + 1}
    except (OSError, ValueError, KeyError, TypeError):
        pass  # a first attempt, or an unreadable clock: count from now
    write_json(path, {"earlier_s": earlier["seconds"], "attempts": earlier["attempts"], "start": time.time()})
    return earlier


def earlier_attempts() -> dict:
    """Seconds spent by the interrupted attempts before this one (`seconds`), and which attempt this is
    (`attempts`, 1 for an uninterrupted run): `runtime.provenance` adds them to the wall time."""
    return dict(_EARLIER.get())


@contextmanager
def resumable(chapter: str, profile: str):
    """Inside this block every `fit` checkpoints each epoch and resumes from its checkpoint; the folder
    is removed when the block ends without an error (an interrupted run keeps it for the next try).
    A dry run (`ingur_lib.dryrun`) checkpoints nothing: two steps are not worth resuming, and writing a full
    model's checkpoint costs more than its steps."""
    from . import dryrun
    if dryrun.active():
        yield None
        return
    folder = checkpoint_folder(chapter, profile)
    folder.mkdir(parents=True, exist_ok=True)
    token, clock = _ACTIVE.set(folder), _EARLIER.set(_clock_in(folder))
    try:
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        _ACTIVE.reset(token)
        _EARLIER.reset(clock)


@contextmanager
def using(folder: Path | None):
    """Checkpoint into `folder` without owning it (a worker process carries its parent's `resumable`
    folder, `ingur_lib.pool`); nothing is removed at the end."""
    token = _ACTIVE.set(folder)
    try:
        yield folder
    finally:
        _ACTIVE.reset(token)


def active() -> Path | None:
    """The checkpoint folder of the enclosing `resumable` block, or None."""
    return _ACTIVE.get()


@lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of every source file of the library: a code change starts trainings afresh."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous().reshape(-1)
    return f"{tuple(t.shape)}{t.dtype}".encode() + t.view(torch.uint8).numpy().tobytes()


def _update(h, obj, depth: int = 0) -> None:
    """Feed a stable description of `obj` to hash `h` (no memory addresses, sets sorted)."""
    if depth > 6:
        h.update(type(obj).__qualname__.encode())
    elif isinstance(obj, torch.Tensor):
        h.update(_tensor_bytes(obj))
    elif isinstance(obj, nn.Module):
        h.update(_ADDRESS.sub("", repr(obj)).encode())
        for name, t in obj.state_dict().items():
            h.update(name.encode())
            h.update(_tensor_bytes(t))
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            _update(h, x, depth + 1)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _update(h, k, depth + 1)
            _update(h, v, depth + 1)
    elif isinstance(obj, (set, frozenset)):
        h.update(repr(sorted(map(repr, obj))).encode())
    elif callable(obj) and hasattr(obj, "__code__"):  # a function: its name and what it closes over
        h.update(f"{obj.__module__}.{obj.__qualname__}".encode())
        _update(h, [c.cell_contents for c in obj.__closure__ or () if _filled(c)], depth + 1)
        _update(h, obj.__defaults__ or (), depth + 1)
    else:
        h.update(_ADDRESS.sub("", repr(obj)).encode())


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def fingerprint(model: nn.Module, train, test, cfg, **parts) -> str:
    """The SHA-256 naming one training: config, model (initial weights), data, functions, code."""
    h = hashlib.sha256()
    for part in (repr(cfg), model, list(train), list(test or ()), parts, code_version(), torch.__version__):
        _update(h, part)
    return h.hexdigest()
