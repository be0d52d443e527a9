import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty dataset cache, so a test sees the loaders build from their sources."""
    monkeypatch.setenv("INGUR_CACHE", str(tmp_path / "cache"))
    from ingur_lib.data import images
    images._load.cache_clear()
    yield tmp_path / "cache"
    images._load.cache_clear()


@pytest.fixture
def tmp_results(tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    monkeypatch.setenv("INGUR_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"
