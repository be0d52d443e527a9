"""Chapter 00, Getting started: the book's base ViT on Fashion-MNIST, end to end.

`run(profile, seed)` is what the notebook calls; `reproduce(profile, seeds)` is what writes
data/results/00_getting_started/<profile>.json. Both use the same configs and the same code.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from .. import ledger
from ..data import Augment, ImageData, example_images, image_prepare, prepared, load_subset
from ..exercises import assert_same, exercise
from ..figures import figure
from ..models.vit import ViT, ViTConfig, count_params
from ..nn.attention import attention_rollout, attention_weights
from ..nn.tokens import PatchEmbed
from ..profiles import pick
from ..runtime import config_dict, provenance, seed_everything
from ..train import History, TrainConfig, fit
from ..viz import attention_grid, cls_attention, learning_curves

CHAPTER = "00_getting_started"


@dataclass
class Config:
    model: ViTConfig
    train: TrainConfig
    dataset: str = "fashion_mnist"
    n_train: int | None = None   # None = the whole training split
    n_test: int | None = None
    augment: Augment = field(default_factory=lambda: Augment(crop_padding=1, flip=True))
    seeds: tuple[int, ...] = (0,)  # `reproduce` trains one run per seed
    longer: float | None = None    # `reproduce` also trains the first seed this much longer (convergence check)


CONFIGS = {
    # smoke: a fifth of the data, a tiny model, 3 epochs: ~15 s of training on 2 cores, well above chance.
    "smoke": Config(ViTConfig(patch_size=7, dim=64, depth=4, heads=4),
                    TrainConfig(epochs=3, batch_size=128, lr=2e-3, warmup_epochs=0.3), n_train=12_000, n_test=2_000),
    # standard: 16 tokens of 7x7 patches keep the model fast; 3 blocks, PatchDropout keeping 3 of 4 patch
    # tokens in training (~2,650 images/s on 2 cores) buy 22 epochs in about 9 minutes; the test set is
    # scored every second epoch. Chosen by runs of equal time on the full data (one core each, seed 0;
    # exploratory, not ledger numbers): 6 blocks for 10 epochs 88.8%, 4 blocks for 13 epochs 89.3%,
    # + crops (pad 1) 89.2%, + random erasing 89.1%; with PatchDropout 0.75: 4 blocks for 16 epochs
    # 89.9% (without label smoothing 89.6%), 3 blocks for 20 epochs 90.05% (lr 1.5e-3: 89.6%),
    # 2 blocks for 26 epochs 90.0%; PatchDropout 0.5, 4 blocks for 22 epochs 89.8%; 6 blocks or dim 160
    # with PatchDropout 0.5 88.9%. Shallower and longer wins at this budget, down to 3 blocks.
    # The target is 90% within 10 minutes of 2 cores (tests/test_ledger.py), so record at 2 threads on a quiet
    # machine. Its 1.5x check (`longer`) fails the ledger's 0.3-point bar, and kept failing longer: at one
    # thread, seed 0, 33 -> 49.5 epochs moved 90.77 -> 91.34% (01f3af2). The chapter keeps the 10 minutes.
    "standard": Config(ViTConfig(patch_size=7, dim=128, depth=3, heads=4, patch_keep=0.75),
                       TrainConfig(epochs=22, batch_size=128, lr=1e-3, warmup_epochs=1, eval_every=2),
                       augment=Augment(crop_padding=0, flip=True), longer=1.5),
    "full": Config(ViTConfig(patch_size=4, dim=192, depth=9, heads=6, drop_path=0.1),
                   TrainConfig(epochs=60, batch_size=256, lr=1e-3, warmup_epochs=5),
                   augment=Augment(crop_padding=2, flip=True, erasing=0.25)),
}


def config(profile: str | None = None) -> Config:
    return pick(CONFIGS, profile)


@dataclass
class Run:
    """What one training run leaves behind for the notebook."""
    model: ViT
    history: History
    data: ImageData
    prepare: object
    test_acc: float
    seconds: float
    images_per_s: float


def load_data(cfg: Config, seed: int = 0) -> ImageData:
    return load_subset(cfg.dataset, cfg.n_train, cfg.n_test, seed)


def run(profile: str | None = None, seed: int = 0, data: ImageData | None = None, progress: bool = True,
        longer: float = 1.0) -> Run:
    """Train the base ViT in `profile` (`longer` times its epochs) and evaluate it on the test split."""
    cfg = config(profile)
    data = data or load_data(cfg, seed)
    seed_everything(seed)
    model_cfg = replace(cfg.model, in_chans=data.image_shape[0], image_size=data.image_shape[1],
                        num_classes=data.num_classes)
    model = ViT(model_cfg)
    prepare = image_prepare(data.mean, data.std, cfg.augment, data.num_classes)
    t0 = time.perf_counter()
    train = replace(cfg.train, seed=seed, epochs=cfg.train.epochs * longer)
    hist = fit(model, (data.train_x, data.train_y), (data.test_x, data.test_y), train,
               prepare=prepare, progress=progress, desc="ViT")
    seconds = time.perf_counter() - t0
    acc = hist.last("test_acc")
    ips = sum(e["images_per_s"] for e in hist.epochs) / len(hist.epochs)
    return Run(model, hist, data, prepare, acc, seconds, ips)


@torch.no_grad()
def attention_maps(model: ViT, prepare, images: torch.Tensor) -> dict:
    """Class-token attention per layer (head-averaged), per head in the last layer, and rollout."""
    maps = attention_weights(model, prepared(prepare, images, next(model.parameters()).device))
    g = model.grid
    per_layer = torch.stack([cls_attention(m.mean(1), g) for m in maps], 1)       # (B, L, g, g)
    last_heads = cls_attention(maps[-1], g)                                       # (B, H, g, g)
    rollout = cls_attention(attention_rollout(maps), g)                           # (B, g, g)
    return {"per_layer": per_layer.cpu(), "last_heads": last_heads.cpu(), "rollout": rollout.cpu(), "raw": maps}


def reproduce(profile: str = "standard", seeds=None, progress: bool = True) -> str:
    """Train with each seed, record accuracy, throughput, curves and attention maps with provenance."""
    t0 = time.perf_counter()
    cfg = config(profile)
    seeds = tuple(seeds or cfg.seeds)
    runs = [run(profile, s, progress=progress) for s in seeds]
    first = runs[0]
    conv = _convergence(profile, cfg, first, seeds[0], progress) if cfg.longer else {}
    images, labels = example_images(first.data)
    att = attention_maps(first.model, first.prepare, images)
    metrics = {
        "test_acc": ledger.summarize([r.test_acc for r in runs]),
        "train_minutes": ledger.summarize([r.seconds / 60 for r in runs]),
        "train_images_per_s": ledger.summarize([r.images_per_s for r in runs]),
        "params": ledger.summarize([count_params(first.model)]),
    }
    prov = provenance(profile, seeds, time.perf_counter() - t0,
                      dataset={"name": first.data.name, "source": first.data.source, "splits": first.data.splits()},
                      config={**config_dict(cfg), "model": first.model.cfg.to_dict()})
    histories = {f"seed {s}": r.history.to_dict() for s, r in zip(seeds, runs)}
    if conv:
        histories[f"seed {seeds[0]}, {cfg.longer:g}x epochs"] = conv.pop("history")
    extra = {"histories": histories, "convergence": conv,
             "artifacts": {"images": images[:, 0].tolist(), "labels": labels.tolist(),
                           "classes": list(first.data.classes),
                           "rollout": att["rollout"].tolist(), "per_layer": att["per_layer"].tolist()}}
    return str(ledger.record(CHAPTER, profile, prov, metrics, (), extra))


def _convergence(profile: str, cfg: Config, first: Run, seed: int, progress: bool) -> dict:
    """The first seed trained `cfg.longer` times as many epochs (its cosine schedule stretched to match):
    how much does the test accuracy still move?"""
    longer = run(profile, seed, data=first.data, progress=progress, longer=cfg.longer)
    return {"epochs": cfg.train.epochs, "epochs_longer": cfg.train.epochs * cfg.longer,
            "acc": 100 * first.test_acc, "acc_longer": 100 * longer.test_acc,
            "change": 100 * (longer.test_acc - first.test_acc), "history": longer.history.to_dict()}


def convergence_line(results: dict) -> str | None:
    """The recorded 1.5x check, judged now by the ledger's one rule. The chapter compares no two models, so
    no effect sets the bar: the ledger's default tolerance (the smallest accuracy change that counts) does."""
    conv = results.get("convergence")
    if not conv:
        return None
    out = ledger.convergence(conv["change"], {}, default=ledger.DEFAULT_TOLERANCE)
    verdict = "converged" if out["converged"] else "not converged"
    return (f"convergence check (seed {results['provenance']['seeds'][0]}): {conv['epochs']:g} -> "
            f"{conv['epochs_longer']:g} epochs moves the test accuracy {conv['acc']:.2f} -> "
            f"{conv['acc_longer']:.2f}% ({conv['change']:+.2f} points; the bar is "
            f"{out['smallest_effect']:.1f}): {verdict}")


# ---------------------------------------------------------------- figures for the thesis

@figure("getting_started_curves", CHAPTER)
def fig_curves(results: dict):
    return learning_curves(results["histories"], metrics=("train_loss", "test_acc"))


@figure("getting_started_attention", CHAPTER)
def fig_attention(results: dict):
    art = results["artifacts"]
    images = torch.tensor(art["images"], dtype=torch.uint8)[:, None]
    per_layer = torch.tensor(art["per_layer"])                                    # (B, L, g, g)
    heats = torch.cat([per_layer[:, [0, -1]].transpose(0, 1), torch.tensor(art["rollout"])[None]])
    names = [art["classes"][i] for i in art["labels"]]
    return attention_grid(images, heats, ["layer 1", f"layer {per_layer.shape[1]}", "rollout"], names)


# ---------------------------------------------------------------- exercises

@exercise("getting_started.patchify", PatchEmbed)
def _check_patchify(patchify):
    torch.manual_seed(0)
    embed = PatchEmbed(image_size=8, patch_size=4, in_chans=3, dim=5)
    x = torch.randn(2, 3, 8, 8)
    patches = patchify(x, 4)
    if tuple(patches.shape) != (2, 4, 48):
        raise AssertionError(f"patchify(x, 4) has shape {tuple(patches.shape)}; expected (2, 4, 48) = (B, N, C*p*p).")
    want = embed(x)
    got = patches @ embed.proj.weight.flatten(1).T + embed.proj.bias
    assert_same(got, want, "patchify(x, 4) @ W must equal PatchEmbed(x): check the patch order and channel layout")


def rollout_alpha(maps: list[torch.Tensor], alpha: float) -> torch.Tensor:
    """Rollout with a residual weight: per layer A = alpha * mean_heads(W) + (1 - alpha) * I, then the
    product over layers (alpha = 0.5 is Abnar & Zuidema's W + I renormalised; alpha = 1 drops the residual)."""
    result = None
    for w in maps:
        a = alpha * w.mean(1) + (1 - alpha) * torch.eye(w.shape[-1])
        result = a if result is None else a @ result
    return result


@exercise("getting_started.rollout", attention_rollout)
def _check_rollout(rollout):
    torch.manual_seed(0)
    maps = [torch.randn(2, 3, 5, 5).softmax(-1) for _ in range(3)]
    for alpha in (0.5, 0.9, 1.0):
        got = rollout(maps, alpha)
        if alpha == 1.0 and torch.allclose(got, attention_rollout(maps), atol=1e-4):
            raise AssertionError("alpha = 1 must drop the residual path: no identity added at all.")
        assert_same(got, rollout_alpha(maps, alpha), f"rollout(maps, alpha={alpha}): alpha W + (1 - alpha) I "
                    "per layer (head mean), later layers multiplied on the left")
