"""Where the book keeps its files: the repository root, data/cache, data/reported, data/results."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this code runs from (the folder holding `_config.yml` and `ingur_lib/`).

    `INGUR_ROOT` overrides it. When the library is installed without its repository (pip from a
    wheel), the current directory is used so that caches and results still land somewhere visible.
    """
    if os.environ.get("INGUR_ROOT"):
        return Path(os.environ["INGUR_ROOT"]).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "_config.yml").exists():
        return here
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "_config.yml").exists() and (parent / "ingur_lib").is_dir():
            return parent
    return Path.cwd()


def shown(path: str | os.PathLike) -> str:
    """A path as a page prints it: relative to the checkout when inside it, so the book shows
    `data/cache/fashion_mnist`, not the build machine's home folder."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(repo_root()))
    except ValueError:
        return str(p)


def cache_dir() -> Path:
    """Downloads and derived datasets (git-ignored). `INGUR_CACHE` overrides it (made if missing)."""
    return writable_dir(os.environ.get("INGUR_CACHE") or repo_root() / "data" / "cache",
                        "point INGUR_CACHE at a folder you can write to (or unset it to use data/cache)")


def reported_dir() -> Path:
    """What the papers report: the checkout's data/reported, else the copy installed with the package
    (`pip install` ships it as `ingur_lib/_reported`, so `reproduce` works outside a clone)."""
    here = repo_root() / "data" / "reported"
    return here if here.is_dir() else Path(__file__).resolve().parent / "_reported"


def results_dir() -> Path:
    """Recorded results: `INGUR_RESULTS`, else data/results. A folder that does not exist is an error, not an
    empty ledger: a misspelt INGUR_RESULTS would otherwise show every claim as "not yet run" and record a
    run where nobody looks."""
    from .errors import IngurError
    if not os.environ.get("INGUR_RESULTS"):
        # a clone has data/results; the library installed on its own records under the current folder
        path = repo_root() / "data" / "results"
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(os.environ["INGUR_RESULTS"])
    if not path.is_dir():
        raise IngurError(f"The results folder {path} does not exist: point INGUR_RESULTS at a folder of "
                         f"recorded results (or unset it to use data/results).")
    return path


def book_path(name: str) -> Path:
    """A file or folder of the book's checkout (notebooks/, _config.yml), or IngurError saying where to run."""
    from .errors import IngurError
    path = repo_root() / name
    if not path.exists():
        raise IngurError(f"{name} is not in {repo_root()}: this command works on a clone of the book, so run it "
                         "inside one or set INGUR_ROOT to one.")
    return path


def writable_dir(path: str | os.PathLike, fix: str = "pass --out a folder you can write to") -> Path:
    """`path` as a folder this process can write to (made if missing), or IngurError naming the `fix`."""
    from .errors import IngurError
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise IngurError(f"Cannot make the folder {path} ({err.strerror}): {fix}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise IngurError(f"The folder {path} is not writable: {fix}.")
    return path
