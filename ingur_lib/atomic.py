"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash mid-write leaves the old file (or none), never half a file. The temporary name carries the
writer's process id (`.<name>.ingur-<pid>-<random>`), so the next write into the same folder removes
what a killed writer left behind (its process is gone) without touching a live writer's file.
A written file keeps the target's mode (a new one gets the umask's, as `open` would give it), and its
bytes are flushed to disk (fsync) before the rename, so a power cut cannot leave an empty file.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

_TEMP = re.compile(r"^\..*\.ingur-(\d+)-[a-z0-9_]{8}(\..+)?$")
# Temporary files of the earlier scheme (no process id): removed once they are an hour old.
_LEGACY = re.compile(r"^\..+\.[a-z0-9_]{8}(\..+)?\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders that killed writers left in `folder`; returns them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))) or _old_legacy(p):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _old_legacy(p: Path, age_s: float = 3600) -> bool:
    import time
    try:
        return bool(_LEGACY.match(p.name)) and time.time() - p.lstat().st_mtime > age_s
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mode(target: Path, default: int) -> int:
    """The target's permission bits if it exists, else `default` less the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return default & ~_umask()


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def _prefix(target: Path) -> str:
    return f".{target.name}.ingur-{os.getpid()}-"


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path in the target's folder; on success rename it onto `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(target), suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _mode(target, 0o666))
        _fsync(Path(tmp))
        os.replace(tmp, target)
        _fsync(target.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(target: str | os.PathLike):
    """Yield a temporary folder beside `target`; on success it replaces `target` whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, _mode(target, 0o777))
        for f in tmp.rglob("*"):
            if f.is_file():
                _fsync(f)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        _fsync(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(target, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target, obj) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
