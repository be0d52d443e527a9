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


# The Hub datasets the loaders name, in the parquet form current `datasets` loads: (image column, label column,
# classes, train/test split names, size, PIL mode). No network here, so `fake_hub` builds tiny stand-ins.
HUB_IMAGES = {
    "zalando-datasets/fashion_mnist": ("image", "label", 10, ("train", "test"), 28, "L"),
    "uoft-cs/cifar10": ("img", "label", 10, ("train", "test"), 32, "RGB"),
    "uoft-cs/cifar100": ("img", "fine_label", 100, ("train", "test"), 32, "RGB"),
    "zh-plus/tiny-imagenet": ("image", "label", 200, ("train", "valid"), 64, "RGB"),
}


def _fake_images(spec, per_class=(4, 2)):
    import datasets
    import numpy as np
    from PIL import Image
    image_col, label_col, k, splits, size, mode = spec
    rng = np.random.default_rng(0)
    feats = datasets.Features({image_col: datasets.Image(),
                               label_col: datasets.ClassLabel(names=[f"n{i:08d}" for i in range(k)])})

    def split(n):
        labels = [c for c in range(k) for _ in range(n)]
        shape = (size, size) if mode == "L" else (size, size, 3)
        # every fifth image grey, as Tiny-ImageNet mixes some into its colour images
        ims = [Image.fromarray(rng.integers(0, 256, shape if i % 5 else (size, size), dtype=np.uint8))
               for i in range(len(labels))]
        return datasets.Dataset.from_dict({image_col: ims, label_col: labels}, features=feats)
    return datasets.DatasetDict({splits[0]: split(per_class[0]), splits[1]: split(per_class[1])})


def _fake_text():
    import datasets
    rows = {s: ["ROMEO:\nBut soft, what light through yonder window breaks?\n" * 400]
            for s in ("train", "validation", "test")}
    return datasets.DatasetDict({s: datasets.Dataset.from_dict({"text": t}) for s, t in rows.items()})


@pytest.fixture
def fake_hub(monkeypatch):
    """`datasets.load_dataset` answered by tiny synthetic datasets of the Hub's shape; returns the calls."""
    import datasets
    calls = []

    def load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        if path == "karpathy/tiny_shakespeare":
            return _fake_text()
        if path not in HUB_IMAGES:
            raise FileNotFoundError(f"Dataset {path!r} doesn't exist on the Hub")
        return _fake_images(HUB_IMAGES[path])
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls
