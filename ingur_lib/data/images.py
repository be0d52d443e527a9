"""Image datasets as in-memory uint8 tensors, loaded through Hugging Face `datasets` with an offline source first.

| name          | offline source                                   | Hub source (Colab, `full`)       |
|---------------|--------------------------------------------------|----------------------------------|
| fashion_mnist | Debian/Ubuntu package `dataset-fashion-mnist`    | zalando-datasets/fashion_mnist   |
| cifar10       | none                                             | uoft-cs/cifar10                  |
| cifar100      | none                                             | uoft-cs/cifar100                 |
| tiny_imagenet | none                                             | zh-plus/tiny-imagenet (64 px)    |

The Hub sources are parquet datasets, which current `datasets` loads without running any code; their
downloads stay under `<INGUR_CACHE>/hf` (`cache.hub_dataset`).

Every loader prints which source it used; `ImageData.source` keeps it for the results' provenance.
"""
from __future__ import annotations

import gzip
import os
import struct
import textwrap
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import DataUnavailableError, IngurError
from .. import dryrun
from .cache import cached, hub_dataset

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
DEBIAN_FASHION_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/share/fashion-mnist")


@dataclass
class ImageData:
    """A dataset held in memory: images (N, C, H, W) uint8, labels (N,) int64."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    source: str
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def splits(self) -> dict[str, int]:
        return {"train": len(self.train_y), "test": len(self.test_y)}

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> "ImageData":
        """A class-stratified random subset (same seed, same subset); used by small profiles."""
        def take(x, y, n):
            if n is None or n >= len(y):
                return x, y
            g = torch.Generator().manual_seed(seed)
            per_class = [torch.nonzero(y == c).flatten() for c in range(self.num_classes)]
            idx = torch.cat([p[torch.randperm(len(p), generator=g)[: n // self.num_classes]] for p in per_class])
            idx = idx[torch.randperm(len(idx), generator=g)]
            return x[idx], y[idx]
        tx, ty = take(self.train_x, self.train_y, n_train)
        vx, vy = take(self.test_x, self.test_y, n_test)
        return ImageData(self.name, tx, ty, vx, vy, self.classes, self.source, self.mean, self.std)

    def examples(self, per_class: int = 1, classes=range(8)) -> tuple[torch.Tensor, torch.Tensor]:
        """The first test images of the given classes: a fixed set every chapter draws attention on."""
        idx = torch.stack([torch.nonzero(self.test_y == c).flatten()[:per_class] for c in classes]).flatten()
        return self.test_x[idx], self.test_y[idx]

    def describe(self) -> str:
        c, h, w = self.image_shape
        text = (f"{self.name}: {len(self.train_y):,} train / {len(self.test_y):,} test images, "
                f"{c}x{h}x{w}, {self.num_classes} classes; source: {self.source}")
        # wrapped to the book's 88-character text column (the source names long paths)
        return textwrap.fill(text, 88, subsequent_indent="  ", break_on_hyphens=False)


# ---------------------------------------------------------------- sources

def _read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (the MNIST format): magic, dims as big-endian int32, then uint8 data."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise IngurError(f"{path} is not a uint8 IDX file; reinstall the package `dataset-fashion-mnist`.")
    dims = struct.unpack(f">{ndim}I", data[4: 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_dirs() -> list[Path]:
    """INGUR_FASHION_MNIST_DIR first (checked: a folder that lacks the files is said, not skipped
    silently), then the Debian package's folders."""
    dirs = [Path(d) for d in DEBIAN_FASHION_DIRS if (Path(d) / "train-images-idx3-ubyte.gz").exists()]
    env = os.environ.get("INGUR_FASHION_MNIST_DIR")
    if env and not (Path(env) / "train-images-idx3-ubyte.gz").exists():
        warnings.warn(f"INGUR_FASHION_MNIST_DIR={env} holds no train-images-idx3-ubyte.gz; "
                      + ("using the Debian copy instead." if dirs else "ignoring it."))
    elif env:
        dirs.insert(0, Path(env))
    return dirs


def _find_debian_fashion() -> Path | None:
    dirs = _fashion_dirs()
    return dirs[0] if dirs else None


def _read_fashion(folder: Path) -> dict:
    """The four IDX files of `folder` as {split: (images, labels)}, or IngurError if any is unreadable."""
    try:
        arrays = {s: (_read_idx(folder / f"{p}-images-idx3-ubyte.gz")[:, None],
                      _read_idx(folder / f"{p}-labels-idx1-ubyte.gz"))
                  for s, p in (("train", "train"), ("test", "t10k"))}
    except (OSError, EOFError, ValueError, struct.error) as err:  # IngurError is a ValueError
        raise IngurError(f"The Fashion-MNIST files in {folder} are unreadable ({err}): point "
                         "INGUR_FASHION_MNIST_DIR at the package's folder or reinstall "
                         "`dataset-fashion-mnist`.") from None
    if any(len(x) != len(y) or x.shape[2:] != (28, 28) for x, y in arrays.values()):
        raise IngurError(f"The Fashion-MNIST files in {folder} do not hold 28x28 images with one label "
                         "each: point INGUR_FASHION_MNIST_DIR at the package's folder.")
    return arrays


def _image_features(shape, classes):
    import datasets
    return datasets.Features({"image": datasets.Array3D(shape=shape, dtype="uint8"),
                              "label": datasets.ClassLabel(names=list(classes))})


def _to_dsd(arrays: dict[str, tuple[np.ndarray, np.ndarray]], classes):
    import datasets
    shape = arrays["train"][0].shape[1:]
    feats = _image_features(shape, classes)
    return datasets.DatasetDict({
        split: datasets.Dataset.from_dict({"image": x, "label": y.astype(np.int64)}, features=feats)
        for split, (x, y) in arrays.items()})


def _pixels(split, image_col: str, label_col: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """A Hub split's PIL images as (N, C, H, W) uint8 in `mode` ('L': 1 channel, 'RGB': 3; Tiny-ImageNet mixes
    grey images into its colour ones), filled one image at a time so the peak memory is the array itself."""
    out = None
    for i, im in enumerate(split[image_col]):
        a = np.asarray(im.convert(mode))
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        out = np.empty((len(split), *a.shape), np.uint8) if out is None else out
        out[i] = a
    return out, np.asarray(split[label_col], dtype=np.int64)


def _hub(repo: str, image_col: str, label_col: str, classes, mode: str = "RGB", splits=("train", "test")):
    """Download from the Hugging Face Hub (`splits`: its train and test split names) and convert PIL images to
    (N, C, H, W) uint8 arrays; class names come from the Hub's ClassLabel when it has one."""
    raw = hub_dataset(repo)
    names = getattr(raw[splits[0]].features[label_col], "names", None) or list(classes)
    arrays = {out: _pixels(raw[split], image_col, label_col, mode) for out, split in zip(("train", "test"), splits)}
    return _to_dsd(arrays, names), f"Hugging Face Hub: {repo}"


def _build_fashion_mnist():
    for i, folder in enumerate(dirs := _fashion_dirs()):
        try:
            arrays = _read_fashion(folder)
        except IngurError as err:
            if i + 1 == len(dirs):
                raise
            warnings.warn(f"{err} Using {dirs[i + 1]} instead.")
            continue
        return _to_dsd(arrays, FASHION_CLASSES), f"offline: Debian package dataset-fashion-mnist ({folder})"
    try:
        return _hub("zalando-datasets/fashion_mnist", "image", "label", FASHION_CLASSES, mode="L")
    except Exception as err:  # no network, no datasets cache, offline mode ...
        raise DataUnavailableError(
            "Fashion-MNIST is not available offline and the Hugging Face Hub could not be reached "
            f"({type(err).__name__}): install it with `sudo apt-get install dataset-fashion-mnist` "
            "or connect to the internet.") from err


def _hub_only(name, repo, image_col, label_col, classes, **kwargs):
    def build():
        try:
            return _hub(repo, image_col, label_col, classes, **kwargs)
        except Exception as err:
            raise DataUnavailableError(
                f"{name} has no offline source and the Hugging Face Hub could not be reached "
                f"({type(err).__name__}): connect to the internet (e.g. run in Colab) or use "
                "dataset='fashion_mnist', which installs offline.") from err
    return build


_CIFAR100_CLASSES = tuple(f"class_{i}" for i in range(100))  # names come from the Hub's ClassLabel
_TINY_CLASSES = tuple(f"class_{i}" for i in range(200))
DATASETS = {
    "fashion_mnist": (_build_fashion_mnist, FASHION_CLASSES),
    "cifar10": (_hub_only("CIFAR-10", "uoft-cs/cifar10", "img", "label", CIFAR10_CLASSES), CIFAR10_CLASSES),
    "cifar100": (_hub_only("CIFAR-100", "uoft-cs/cifar100", "img", "fine_label", _CIFAR100_CLASSES),
                 _CIFAR100_CLASSES),
    # Tiny-ImageNet: 200 ImageNet classes at 64 px, 100,000 train and 10,000 validation images (1.2 GB as
    # uint8 in memory); its labelled validation split is our test split
    "tiny_imagenet": (_hub_only("Tiny-ImageNet", "zh-plus/tiny-imagenet", "image", "label", _TINY_CLASSES,
                                splits=("train", "valid")), _TINY_CLASSES),
}


def _cache_name(name: str) -> str:
    """The cache folder of dataset `name`. Fashion-MNIST read from INGUR_FASHION_MNIST_DIR gets a folder of
    its own (named by a hash of that path): a cache built from another copy must never answer for it, nor
    its copy later answer for the package's."""
    env = os.environ.get("INGUR_FASHION_MNIST_DIR")
    if name != "fashion_mnist" or not env or not (Path(env) / "train-images-idx3-ubyte.gz").exists():
        return name
    import hashlib
    return f"{name}-{hashlib.sha256(str(Path(env).resolve()).encode()).hexdigest()[:10]}"


@lru_cache(maxsize=4)
def _load(name: str, cache_name: str) -> ImageData:
    build, classes = DATASETS[name]
    dsd, source, where = cached(cache_name, build)
    dsd = dsd.with_format("torch")
    train, test = dsd["train"][:], dsd["test"][:]  # whole splits as torch tensors
    tx, ty, vx, vy = train["image"], train["label"], test["image"], test["label"]
    classes = tuple(dsd["train"].features["label"].names)
    xf = tx.float() / 255
    mean = tuple(xf.mean(dim=(0, 2, 3)).tolist())
    std = tuple(xf.std(dim=(0, 2, 3)).tolist())
    return ImageData(name, tx.to(torch.uint8), ty.long(), vx.to(torch.uint8), vy.long(),
                     classes, f"{source}; {where}", mean, std)


def load_images(name: str = "fashion_mnist", verbose: bool = True) -> ImageData:
    """Load an image dataset into memory, from the cache, the offline source or the Hub (in that order)."""
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise IngurError(f"Unknown dataset {name!r}: use one of {', '.join(DATASETS)}.")
    data = _load(key, _cache_name(key))
    if dryrun.active():  # a few images per class, the same code path
        k = data.num_classes
        data = data.subset(dryrun.PER_CLASS[0] * k, dryrun.PER_CLASS[1] * k)
    if verbose:
        print(data.describe())
    return data


def load_subset(name: str, n_train: int | None, n_test: int | None, seed: int = 0,
                verbose: bool = True) -> ImageData:
    """`load_images(name)` cut to a class-stratified subset (`ImageData.subset`; None keeps a whole split)."""
    return load_images(name, verbose).subset(n_train, n_test, seed=seed)
