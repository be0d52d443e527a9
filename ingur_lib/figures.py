"""The thesis's figures: each registered with the recorded results it is drawn from.

`python -m ingur_lib figures --out DIR` redraws every registered figure from data/results/ (no
retraining) as PDF and PNG in one print style.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .errors import IngurError

FIGURES: dict[str, tuple[str, str, Callable]] = {}


def figure(name: str, chapter: str, profile: str = "standard"):
    """Register `fn(results: dict) -> Figure` as figure `name`, drawn from chapter/profile results."""
    def deco(fn):
        if name in FIGURES:
            raise IngurError(f"Figure name {name!r} is registered twice: rename one.")
        FIGURES[name] = (chapter, profile, fn)
        return fn
    return deco


def _register_all():
    from .chapters import get, landed
    for c in landed():
        get(c.id)  # importing a chapter module registers its figures


def make_figures(out: str | Path, only: str | None = None, profile: str | None = None) -> list[Path]:
    """Draw every registered figure whose results exist; returns the written paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .ledger import load_results
    from .viz import save_figure, thesis_style
    _register_all()
    thesis_style()
    written = []
    for name, (chapter, prof, fn) in sorted(FIGURES.items()):
        if only and only not in name:
            continue
        results = load_results(chapter, profile or prof)
        if results is None:
            print(f"skip {name}: no recorded {profile or prof} results for {chapter} "
                  f"(run `python -m ingur_lib reproduce {chapter} --profile {profile or prof}`)")
            continue
        fig = fn(results)
        written += save_figure(fig, out, name)
        plt.close(fig)
        print(f"wrote {name} ({chapter}/{profile or prof}, commit {results['provenance']['commit'][:8]})")
    return written
