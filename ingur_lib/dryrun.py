"""A dry run: a profile's whole code path, a few optimizer steps on a tiny slice of its data.

`python -m ingur_lib reproduce <chapter> --profile full --dry-run` (or INGUR_DRY_RUN=1) runs the `full`
profile's loaders, models, grids, measurements, ledger checks and results file exactly as a GPU run would,
but every training stops after `STEPS` optimizer steps of `BATCH` samples, every timing runs once on one
sample, and every dataset is cut to a few examples per class.
So a typo in a config or a loader is found on a laptop in seconds, not after the first GPU hour. What it
writes goes to `<cache>/dry_run/` and never to the results folder.
"""
from __future__ import annotations

import os
from pathlib import Path

STEPS = 2           # optimizer steps of every training
BATCH = 2           # samples per step: a full-size model's step stays cheap on a CPU
PER_CLASS = (4, 2)  # train and test images kept per class
CHARS = 8_000       # characters kept of a text corpus
NUMBERS = 299       # number-word pairs: the numbers 0..NUMBERS
TOKENS = 8          # tokens decoded or sampled per sequence (an untrained model never says <eos>)
WINDOW = 32         # characters per language-model window (09's full profile trains on 256)


def active() -> bool:
    return os.environ.get("INGUR_DRY_RUN", "").strip().lower() in ("1", "true", "yes")


def steps(total: int) -> int:
    """A training's number of optimizer steps, cut to STEPS in a dry run."""
    return min(total, STEPS) if active() else total


def batch(size: int) -> int:
    """A batch size (of training or decoding), cut to BATCH in a dry run."""
    return min(size, BATCH) if active() else size


def cap(value: int | None, small: int) -> int | None:
    """A size (None: all of it) cut to `small` in a dry run."""
    return value if not active() else small if value is None else min(value, small)


def results_path(chapter: str, profile: str) -> Path:
    """Where a dry run's results file goes: beside the cache, never in the results folder the ledger reads."""
    from .paths import cache_dir
    return cache_dir() / "dry_run" / chapter / f"{profile}.json"
