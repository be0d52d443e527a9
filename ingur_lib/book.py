"""Whole-book operations, the one module above `chapters/`: it imports every landed chapter so their
figures and exercises register, then draws every figure, writes the ledger page, looks up an exercise.

Nothing below this module imports a chapter: chapters import the registries (`figures.figure`,
`exercises.exercise`), and this module reads them.
"""
from __future__ import annotations

from pathlib import Path

from .chapters import CHAPTERS, get, landed
from .figures import FIGURES


def register_all() -> None:
    """Import every landed chapter module, which registers its figures and exercises."""
    for c in landed():
        get(c.id)


def ledger_page() -> str:
    """The ledger page's Markdown (`ledger.book_page` over the book's chapters)."""
    from .ledger import book_page
    return book_page(CHAPTERS)


def write_ledger_page(path: str | Path | None = None) -> Path:
    """Regenerate book/ledger.md (or write to `path`)."""
    from .ledger import write_book_page
    return write_book_page(CHAPTERS, path)


def make_figures(out: str | Path, only: str | None = None, profile: str | None = None) -> list[Path]:
    """Draw every registered figure whose results exist; returns the written paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .ledger import load_results
    from .viz import colour_scope, save_figure, thesis_style
    register_all()
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
        colour_scope(chapter)  # a variant keeps its colour across its chapter's figures
        fig = fn(results)
        written += save_figure(fig, out, name)
        plt.close(fig)
        print(f"wrote {name} ({chapter}/{profile or prof}, commit {results['provenance']['commit'][:8]})")
    return written
