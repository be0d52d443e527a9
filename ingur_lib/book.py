"""Whole-book operations, the one module above `chapters/`: it imports every landed chapter so their
figures and exercises register, then draws every figure, writes the ledger page, looks up an exercise.

Nothing below this module imports a chapter: chapters import the registries (`figures.figure`,
`exercises.exercise`), and this module reads them.
"""
from __future__ import annotations

import re
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
    from .viz import save_figure, thesis_style
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
        fig = fn(results)
        written += save_figure(fig, out, name)
        plt.close(fig)
        print(f"wrote {name} ({chapter}/{profile or prof}, commit {results['provenance']['commit'][:8]})")
    return written


def source() -> tuple[str, str]:
    """The repository address and the ref (tag or branch) Colab installs: `_config.yml`'s `repository.url`
    and `repository.branch`, the one place they are set."""
    import yaml

    from .errors import IngurError
    from .paths import repo_root
    repo = (yaml.safe_load((repo_root() / "_config.yml").read_text(encoding="utf-8")) or {}).get("repository")
    if not isinstance(repo, dict) or not repo.get("url") or not repo.get("branch"):
        raise IngurError("_config.yml lacks repository.url or repository.branch: set the book's address and "
                         "version there (see book/how-to-run.md).")
    return str(repo["url"]).rstrip("/"), str(repo["branch"])


# The two places a notebook names its source, as they appear in the .ipynb's JSON text.
_BADGE = re.compile(r"colab\.research\.google\.com/github/[^)\s]+?/blob/[^/\s]+/notebooks/")
_PIN = re.compile(r'REPO, REF = \\"[^"\\]*\\", \\"[^"\\]*\\"')


def pin_notebooks() -> list[Path]:
    """Write `source()` into every notebook's Colab badge and setup cell; returns the notebooks changed."""
    from .atomic import write_text
    from .paths import repo_root
    url, ref = source()
    github = url.removeprefix("https://github.com/")
    changed = []
    for path in sorted((repo_root() / "notebooks").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        new = _BADGE.sub(f"colab.research.google.com/github/{github}/blob/{ref}/notebooks/", text)
        new = _PIN.sub(lambda _: f'REPO, REF = \\"{url}\\", \\"{ref}\\"', new)
        if new != text:
            write_text(path, new)
            changed.append(path)
    return changed
