"""The thesis's figures: each registered with the recorded results it is drawn from.

This module is only the registry (low in the house: chapters import it). Drawing them all
(`python -m ingur_lib figures --out DIR`: every registered figure from data/results/, no retraining, PDF
and PNG in one print style) is a whole-book operation in `ingur_lib.book`.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

from .errors import IngurError

FIGURES: dict[str, tuple[str, str, Callable]] = {}


def figure(name: str, chapter: str, profile: str = "standard"):
    """Register `fn(results: dict) -> Figure` as figure `name`, drawn from chapter/profile results.

    Every call starts from the chapter's colours (`viz.colour_scope`), so the figure a notebook draws
    from its live run has the colours of the thesis figure drawn from the recorded results (before, a
    notebook coloured names in the order it happened to plot them: 09's Transformer++ was blue in the
    thesis and orange on the page).
    """
    def deco(fn):
        if name in FIGURES:
            raise IngurError(f"Figure name {name!r} is registered twice: rename one.")

        @functools.wraps(fn)
        def drawn(*args, **kwargs):
            from . import viz
            viz.colour_scope(chapter)
            return fn(*args, **kwargs)
        FIGURES[name] = (chapter, profile, drawn)
        return drawn
    return deco


def paired_intervals(per_label: Sequence[Sequence[float]]) -> list[tuple | None]:
    """For `viz.paired_gains`: each label's per-seed differences as (mean, low, high, n), the 95% interval
    by the ledger's one rule (`ledger.interval`); None where nothing was paired."""
    from .ledger import interval, summarize
    out = []
    for diffs in per_label:
        s = summarize(diffs) if len(diffs) else None
        out.append((s["mean"], *interval(s["mean"], s["std"], s["n"]), s["n"]) if s else None)
    return out
