"""Dataset cache under data/cache/: Hugging Face `datasets` folders written atomically and verified on read.

Each cached dataset is a `DatasetDict.save_to_disk` folder plus `ingur_manifest.json`, which records
the source it came from, the split sizes and a SHA-256 of every file. A folder whose files do not
match its manifest is treated as corrupt: it is rebuilt from the source, never trusted. Every call first
removes the half-built folders that killed runs left in the cache (`atomic.clean_stale`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..atomic import atomic_dir, clean_stale
from ..paths import cache_dir, shown

if TYPE_CHECKING:  # for the annotations only: the functions import `datasets` where they use it
    import datasets

MANIFEST = "ingur_manifest.json"


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != MANIFEST:
            out[str(f.relative_to(folder))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def verify(folder: Path) -> dict | None:
    """Return the manifest if `folder` is a complete, unmodified cache entry, else None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return manifest if manifest["files"] == _digest(folder) else None
    except (OSError, ValueError, KeyError):
        return None


def _clean_legacy(folder: Path, age_s: float = 3600) -> None:
    """Half-built folders of the earlier temp scheme (`.<name>.<8 random chars>`, no process id)."""
    import re
    import time
    for p in folder.parent.glob(f".{folder.name}.*"):
        if re.fullmatch(r"[a-z0-9_]{8}", p.name[len(folder.name) + 2:]) and p.is_dir() \
                and time.time() - p.stat().st_mtime > age_s:
            shutil.rmtree(p, ignore_errors=True)


def hub_dataset(repo: str, **kwargs):
    """`datasets.load_dataset(repo)` with its downloads under `<INGUR_CACHE>/hf` (so INGUR_CACHE moves them
    too and nothing is stored twice). INGUR_OFFLINE=1 forbids the Hub (ConnectionError); HF_HUB_OFFLINE=1 is
    left to `datasets`, which then reads what an earlier download left in that folder."""
    import datasets
    if os.environ.get("INGUR_OFFLINE") == "1":
        raise ConnectionError("INGUR_OFFLINE=1 forbids the Hugging Face Hub")
    return datasets.load_dataset(repo, cache_dir=str(cache_dir() / "hf"), **kwargs)


def cached(name: str, build: Callable[[], tuple["datasets.DatasetDict", str]]):
    """Load dataset `name` from the cache, or `build()` it, cache it atomically and load that.

    `build` returns (DatasetDict, source description). Returns (DatasetDict, source, where): `where`
    says whether this call read the cache or built it.
    """
    import datasets

    folder = cache_dir() / name
    clean_stale(folder.parent)
    _clean_legacy(folder)
    manifest = verify(folder)
    where = f"read from cache {shown(folder)}"
    if manifest is None and folder.exists():
        warnings.warn(f"The cache {folder} was corrupt or incomplete; rebuilding it from its source.")
        shutil.rmtree(folder, ignore_errors=True)
    if manifest is None:
        dsd, source = build()
        where = f"built and cached in {shown(folder)}"
        with atomic_dir(folder) as tmp:
            dsd.save_to_disk(str(tmp))
            sizes = {k: len(v) for k, v in dsd.items()}
            manifest = {"name": name, "source": source, "splits": sizes, "files": _digest(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    dsd = datasets.load_from_disk(str(folder))
    return dsd, manifest["source"], where
