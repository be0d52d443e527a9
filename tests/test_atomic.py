"""Atomic writes keep the file mode, flush to disk before the rename, and clean what killed writers left."""
import os
import stat
import subprocess

import pytest

from ingur_lib import atomic
from ingur_lib.atomic import atomic_dir, atomic_path, clean_stale, write_text


def dead_pid() -> int:
    """The id of a process that has just ended."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_keeps_the_targets_mode(tmp_path):
    target = tmp_path / "ledger.md"
    target.write_text("old")
    target.chmod(0o644)
    write_text(target, "new")
    assert mode(target) == 0o644 and target.read_text() == "new"
    target.chmod(0o640)
    write_text(target, "newer")
    assert mode(target) == 0o640


def test_new_files_and_folders_get_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "new.txt", "x")
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "new.txt") == 0o640      # 0o666 less the umask, as open() gives
    assert mode(tmp_path / "folder") == 0o750       # 0o777 less the umask, as mkdir gives


def test_fsync_before_rename(tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: events.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b)))
    write_text(tmp_path / "a.txt", "x")
    assert events[:2] == ["fsync", "replace"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_stale_temps_of_dead_writers_go_live_ones_stay(tmp_path):
    dead, live = dead_pid(), os.getppid()
    stale_file = tmp_path / f".standard.json.ingur-{dead}-abcd1234.tmp"
    stale_dir = tmp_path / f".fashion_mnist.ingur-{dead}-abcd_123"
    live_file = tmp_path / f".other.json.ingur-{live}-abcd1234.tmp"
    stale_file.write_text("40 MB of a killed run")
    stale_dir.mkdir()
    (stale_dir / "data.arrow").write_text("x")
    live_file.write_text("being written")
    keep = tmp_path / ".hidden.json"
    keep.write_text("not ours")
    write_text(tmp_path / "standard.json", "{}")       # the next run writes beside them
    assert not stale_file.exists() and not stale_dir.exists()
    assert live_file.exists() and keep.exists()
    assert clean_stale(tmp_path) == []


def test_cache_cleans_stale_build_folders_before_anything_else(tmp_cache):
    from ingur_lib.data.cache import cached
    tmp_cache.mkdir(parents=True, exist_ok=True)
    stale = tmp_cache / f".fashion_mnist.ingur-{dead_pid()}-abcd1234"
    stale.mkdir()

    def build():
        raise RuntimeError("no source")
    with pytest.raises(RuntimeError):
        cached("fashion_mnist", build)
    assert not stale.exists()
