"""The data layer: offline source, split sizes, atomic verified cache, clear errors, augmentation."""

import pytest
import torch

from ingur_lib.data import Augment, image_prepare, load_images, number_pairs
from ingur_lib.data import augment as aug
from ingur_lib.data import images
from ingur_lib.data.cache import verify
from ingur_lib.errors import DataUnavailableError, IngurError

needs_fmnist = pytest.mark.skipif(images._find_debian_fashion() is None,
                                  reason="Debian package dataset-fashion-mnist not installed")


@needs_fmnist
def test_fashion_mnist_offline_source_and_splits(tmp_cache):
    d = load_images("fashion_mnist")
    assert "offline: Debian package dataset-fashion-mnist" in d.source
    assert d.splits() == {"train": 60_000, "test": 10_000}
    assert d.train_x.dtype == torch.uint8 and d.image_shape == (1, 28, 28)
    assert torch.bincount(d.train_y).tolist() == [6000] * 10
    assert 0.25 < d.mean[0] < 0.32 and 0.3 < d.std[0] < 0.4


@needs_fmnist
def test_cache_is_verified_and_corrupt_cache_rebuilt(tmp_cache):
    load_images("fashion_mnist", verbose=False)
    folder = tmp_cache / "fashion_mnist"
    assert verify(folder) is not None
    arrow = next(folder.rglob("*.arrow"))
    arrow.write_bytes(b"garbage")                                   # corrupt one data file
    assert verify(folder) is None
    images._load.cache_clear()
    with pytest.warns(UserWarning, match="corrupt"):
        d = load_images("fashion_mnist", verbose=False)
    assert d.splits()["train"] == 60_000 and "built and cached" in d.source
    assert verify(folder) is not None
    assert not [p for p in tmp_cache.iterdir() if p.name.startswith(".")], "no temporary folders left behind"


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(IngurError, match="fashion_mnist, cifar10, cifar100, tiny_imagenet"):
        load_images("imagenet")


def test_no_offline_data_and_no_network_says_how_to_get_it(tmp_cache, monkeypatch):
    monkeypatch.setattr(images, "_fashion_dirs", lambda: [])
    monkeypatch.setenv("INGUR_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load_images("fashion_mnist")
    assert not (tmp_cache / "fashion_mnist").exists()


def test_hub_only_dataset_offline_names_the_fix(tmp_cache, monkeypatch):
    monkeypatch.setenv("INGUR_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="connect to the internet"):
        load_images("cifar10")


@needs_fmnist
def test_subset_is_stratified_and_repeatable(tmp_cache):
    d = load_images("fashion_mnist", verbose=False)
    a, b = d.subset(1000, 200, seed=3), d.subset(1000, 200, seed=3)
    assert torch.equal(a.train_x, b.train_x)
    assert torch.bincount(a.train_y).tolist() == [100] * 10 and len(a.test_y) == 200


def test_number_pairs_split_by_number(tmp_cache):
    dsd = number_pairs("en", "de", n_max=999, verbose=False)
    nums = {k: set(v["number"]) for k, v in dsd.items()}
    assert not nums["train"] & nums["test"] and not nums["train"] & nums["validation"]
    assert sum(len(v) for v in nums.values()) == 1000
    pair = {r["src"]: r["tgt"] for split in dsd.values() for r in split if r["number"] == 45}
    assert pair == {"forty-five": "fünfundvierzig"}
    with pytest.raises(IngurError, match="Unknown language"):
        number_pairs("en", "xx")


def test_random_crop_is_a_shifted_copy():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    y = aug.random_crop(x, 2, g)
    assert y.shape == x.shape
    for i in range(2):   # every crop is a window of the zero-padded image
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        windows = [padded[:, r:r + 6, c:c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(y[i], w) for w in windows)


def test_augment_repeatable_and_mixup_targets_sum_to_one():
    x = torch.rand(8, 1, 28, 28)
    y = torch.arange(8) % 10
    a = Augment(crop_padding=2, flip=True, erasing=0.5, mixup=0.2)
    x1, y1 = a(x, y, torch.Generator().manual_seed(1), 10)
    x2, y2 = a(x, y, torch.Generator().manual_seed(1), 10)
    assert torch.equal(x1, x2) and torch.equal(y1, y2), "same generator seed, same batch"
    assert y1.shape == (8, 10)
    torch.testing.assert_close(y1.sum(-1), torch.ones(8))


def test_prepare_normalizes_uint8():
    prep = image_prepare((0.5,), (0.25,))
    x = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    out = prep((x, torch.zeros(2, dtype=torch.long)), False, None)[0]
    torch.testing.assert_close(out, torch.full((2, 1, 4, 4), 2.0))


def test_pages_show_cache_paths_relative_to_the_checkout(tmp_path):
    """The book printed '/work/wt-look/data/cache/fashion_mnist': the build machine's folder."""
    from ingur_lib.paths import repo_root, shown
    assert shown(repo_root() / "data" / "cache" / "fashion_mnist") == "data/cache/fashion_mnist"
    assert shown(tmp_path) == str(tmp_path.resolve())  # outside the checkout: the full path


@pytest.mark.parametrize("name, repo, classes, size, channels", [
    ("cifar10", "uoft-cs/cifar10", 10, 32, 3), ("cifar100", "uoft-cs/cifar100", 100, 32, 3),
    ("tiny_imagenet", "zh-plus/tiny-imagenet", 200, 64, 3)])
def test_hub_datasets_load_in_their_parquet_form_into_the_ingur_cache(name, repo, classes, size, channels,
                                                                       tmp_cache, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # left to `datasets`, which reads its own offline cache
    d = load_images(name, verbose=False)
    assert fake_hub == [(repo, {"cache_dir": str(tmp_cache / "hf")})]
    assert d.splits() == {"train": 4 * classes, "test": 2 * classes}
    assert d.image_shape == (channels, size, size) and d.train_x.dtype == torch.uint8
    assert d.num_classes == classes and d.classes[1] == "n00000001"  # names from the Hub's ClassLabel
    assert d.source.startswith(f"Hugging Face Hub: {repo}")


def test_fashion_mnist_from_the_hub_has_one_channel(tmp_cache, fake_hub, monkeypatch):
    monkeypatch.setattr(images, "_fashion_dirs", lambda: [])
    assert load_images("fashion_mnist", verbose=False).image_shape == (1, 28, 28)


def test_tiny_shakespeare_is_the_whole_text_of_the_parquet_form(tmp_cache, fake_hub):
    from ingur_lib.data import load_corpus
    text, source = load_corpus("shakespeare", verbose=False)
    assert len(text) == 3 * 400 * 58 + 2 and text.startswith("ROMEO:")  # three splits of 400 lines of 58, joined
    assert fake_hub == [("karpathy/tiny_shakespeare", {"cache_dir": str(tmp_cache / "hf")})]
