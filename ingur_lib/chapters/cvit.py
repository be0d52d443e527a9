"""Chapter 06 [7], CViT: a convolutional vision transformer that detects face forgeries.

The paper (Wodajo & Atnafu 2021) puts a VGG-like feature extractor in front of a transformer
(`ingur_lib.models.cvit`) and decides a video by averaging its frames' probabilities. Its data (DFDC,
FaceForensics++) cannot ship with a book: we train on synthetic blended forgeries of real faces
(`ingur_lib.data.forgery`) and test on faces never seen in training. Four questions:

1. the hybrid vs a pure ViT of similar size (frame AUC, accuracy);
2. video-level averaging over N frames vs single frames;
3. a manipulation type held out of training (the paper's weak FF++ types);
4. the face crop moved or rescaled at test time (the paper's face-detector sensitivity).

`run(profile, seed)` is what the notebook calls; `reproduce(profile, seeds)` writes
data/results/06_cvit/<profile>.json. Both use the same configs and code.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .. import ledger, measure
from ..data import Augment, image_prepare, prepared
from ..data.forgery import VARIANTS, ForgeryConfig, ForgeryData, Split, affine, blend, load, match_stats
from ..errors import IngurError
from ..exercises import assert_same, exercise
from ..figures import figure
from ..models.cvit import CViT, CViTConfig
from ..models.vit import ViT, ViTConfig
from ..nn.attention import attention_rollout, attention_weights
from ..profiles import pick
from ..runtime import provenance, seed_everything
from ..train import History, TrainConfig, fit, predict
from ..viz import attention_grid, bar_with_errors, curves_with_errors, roc_curves

CHAPTER, PAPER = "06_cvit", "cvit"
# The real deepfake set the `full` profile names (DeepFakeFace, Song et al. 2023, on the Hugging Face Hub);
# it is not loaded anywhere yet: every recorded number here comes from the synthetic benchmark.
FULL_HUB_DATASET = "OpenRL/DeepFakeFace"
MODELS = ("CViT", "ViT")


@dataclass
class Config:
    data: ForgeryConfig
    cvit: CViTConfig
    vit: ViTConfig                  # the pure-ViT baseline, sized to the CViT's parameter count
    epochs: float
    vit_epochs: float | None = None  # the ViT's own schedule (None: `epochs`); it learns more slowly
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 64
    lr: float = 4e-3                # the CViT's peak learning rate (best of `tune`'s first sweep)
    vit_lr: float = 1e-3            # the ViT's (best of the same sweep)
    held_out: str = "swap"          # the manipulation left out of training in question 3
    frames: tuple[int, ...] = (1, 2, 4, 8)
    shifts: tuple[int, ...] = (0, 1, 2, 3, 4)       # test-time crop shift, pixels
    scales: tuple[float, ...] = (0.85, 1.0, 1.15)   # test-time crop rescale
    convergence: float = 1.5        # the longer schedule of the convergence check
    augment: Augment = field(default_factory=lambda: Augment(crop_padding=0, flip=True))

    def __post_init__(self):
        if self.held_out not in VARIANTS:
            raise IngurError(f"Unknown held_out {self.held_out!r}: use one of {', '.join(VARIANTS)}.")
        if max(self.frames) > self.data.frames:
            raise IngurError(f"frames {self.frames} exceed the {self.data.frames} frames per video: "
                             "lower them or raise data.frames.")

    def train_config(self, seed: int, longer: float = 1.0, name: str = "CViT") -> TrainConfig:
        vit = name == "ViT"
        e = ((self.vit_epochs or self.epochs) if vit else self.epochs) * longer
        lr = self.vit_lr if vit else self.lr
        return TrainConfig(epochs=e, batch_size=self.batch_size, lr=lr, warmup_epochs=0.1 * e,
                           label_smoothing=0.0, seed=seed, eval_every=10 ** 6)


_VIT = ViTConfig(image_size=24, patch_size=3, in_chans=1, num_classes=2, dim=32, depth=3, heads=4)
_CVIT = CViTConfig(vit=replace(_VIT, depth=2), stages=((8, 2), (16, 2)), mlp_head=64)
CONFIGS = {
    "smoke": Config(ForgeryConfig(n_test_sources=40, frames=4, train_videos=4), _CVIT, _VIT, epochs=5,
                    vit_epochs=10, frames=(1, 2, 4), shifts=(0, 2, 4), scales=(1.0,)),
    "standard": Config(ForgeryConfig(n_test_sources=40, frames=8, train_videos=8), _CVIT, _VIT, epochs=8,
                       vit_epochs=24, seeds=(0, 1, 2), shifts=(0, 2, 4), scales=(0.85, 1.15)),
    # The paper's CViT (stages 32x3..512x4, dim 1024, depth 6, 8 heads, MLP 2048) at 224 px; meant for a
    # real deepfake set from the Hub (FULL_HUB_DATASET). Not run: no Hub access at run time, no loader yet.
    "full": Config(ForgeryConfig(n_test_sources=40, frames=30, train_videos=8),
                   CViTConfig(ViTConfig(image_size=224, in_chans=1, num_classes=2, dim=1024, depth=6, heads=8),
                              stages=((32, 3), (64, 3), (128, 3), (256, 4), (512, 4)), mlp_head=2048),
                   ViTConfig(image_size=224, patch_size=16, in_chans=1, num_classes=2, dim=768, depth=8,
                             heads=8), epochs=50, seeds=(0, 1, 2), lr=1e-4, vit_lr=1e-4, frames=(1, 5, 10, 30)),
}


def config(profile: str | None = None) -> Config:
    return pick(CONFIGS, profile)


def load_data(cfg: Config, seed: int = 0, variants: tuple[str, ...] = VARIANTS) -> ForgeryData:
    """The benchmark for one seed: its own source split, fakes of `variants` in training."""
    return load(replace(cfg.data, seed=seed, train_variants=tuple(variants)))


def build(cfg: Config, name: str) -> torch.nn.Module:
    return CViT(cfg.cvit) if name == "CViT" else ViT(cfg.vit)


# ---------------------------------------------------------------- scoring

def fake_prob(model: torch.nn.Module, prepare, x: torch.Tensor) -> torch.Tensor:
    """P(fake) of every frame (eval mode)."""
    return predict(model, x, prepare).softmax(-1)[:, 1]


def video_scores(probs: torch.Tensor, video: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's video rule: the mean P(fake) of each video's first `n` frames.
    Returns (scores, video ids), one per video in id order."""
    ids = video.unique()
    return torch.stack([probs[video == v][:n].mean() for v in ids]), ids


def auc_acc(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """ROC AUC (sklearn) and accuracy at 0.5, both in points (x100)."""
    from sklearn.metrics import roc_auc_score
    y = labels.numpy()
    return {"auc": 100 * float(roc_auc_score(y, scores.numpy())),
            "acc": 100 * float(((scores > 0.5).long() == labels).float().mean())}


def score(probs: torch.Tensor, split: Split, n: int | None = None, variant: str | None = None) -> dict:
    """Frame-level (n None) or video-level (first n frames) AUC/accuracy on real videos against the fakes
    of `variant` (as many of each); without a variant, the mean over the four variants' scores (the test
    set has four fakes per real video, so pooling them would reward calling everything fake)."""
    if variant is None:
        per = [score(probs, split, n, v) for v in VARIANTS]
        return {k: float(np.mean([p[k] for p in per])) for k in ("auc", "acc")}
    keep = (split.variant == -1) | (split.variant == VARIANTS.index(variant))
    p, y, v = probs[keep], split.y[keep], split.video[keep]
    if n is None:
        return auc_acc(p, y)
    s, ids = video_scores(p, v, n)
    return auc_acc(s, torch.stack([y[v == i][0] for i in ids]))


# ---------------------------------------------------------------- training

@dataclass
class Run:
    name: str
    model: torch.nn.Module
    history: History
    prepare: object
    probs: torch.Tensor          # P(fake) of every test frame
    seconds: float


def prepare_for(data: ForgeryData, cfg: Config):
    x = data.train.x.float() / 255
    return image_prepare((x.mean().item(),), (x.std().item(),), cfg.augment, 2)


def train(cfg: Config, name: str, data: ForgeryData, seed: int = 0, longer: float = 1.0,
          progress: bool = True) -> Run:
    """Train model `name` on the training frames; score every test frame."""
    seed_everything(seed)
    model, prepare = build(cfg, name), prepare_for(data, cfg)
    t0 = time.perf_counter()
    hist = fit(model, (data.train.x, data.train.y), None, cfg.train_config(seed, longer, name), prepare=prepare,
               progress=progress, desc=name)
    seconds = time.perf_counter() - t0
    return Run(name, model, hist, prepare, fake_prob(model, prepare, data.test.x), seconds)


def run(profile: str | None = None, seed: int = 0, models=MODELS, progress: bool = True) -> dict[str, Run]:
    """Question 1's runs: each model trained on every manipulation type."""
    cfg = config(profile)
    data = load_data(cfg, seed)
    return {m: train(cfg, m, data, seed, progress=progress) for m in models}


def crop_sweep(r: Run, split: Split, shifts=(), scales=()) -> dict[str, dict]:
    """Frame AUC/accuracy with the test crop moved diagonally by s pixels, or rescaled by a factor."""
    x = split.x.float() / 255
    out = {}
    for s in shifts:
        moved = affine(x, (s / 2 ** 0.5, s / 2 ** 0.5))
        out[f"shift={s}"] = score(fake_prob(r.model, r.prepare, (moved * 255).round().byte()), split)
    for k in scales:
        moved = affine(x, (0.0, 0.0), k)
        out[f"scale={k}"] = score(fake_prob(r.model, r.prepare, (moved * 255).round().byte()), split)
    return out


# ---------------------------------------------------------------- looking inside

def example_frames(split: Split) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The first frame of one real video and of one fake video per variant, same source: (frames, masks,
    titles)."""
    src = split.source[0]
    idx = [int(torch.nonzero((split.source == src) & (split.variant == v))[0]) for v in (-1, 0, 1, 2, 3)]
    return split.x[idx], split.mask[idx].float() / 255, ["real", *VARIANTS]


@torch.no_grad()
def attention_of(r: Run, frames: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's (B, H, N, N) attention of `r.model` on uint8 frames."""
    return [m.cpu() for m in attention_weights(r.model, prepared(r.prepare, frames))]


def cls_rollout(r: Run, frames: torch.Tensor) -> torch.Tensor:
    """The class token's attention rollout over the token grid: (B, grid, grid)."""
    g = r.model.grid
    return attention_rollout(attention_of(r, frames))[:, 0, 1:].reshape(-1, g, g)


def on_pixels(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(B, g, g) maps on a (B, size, size) pixel grid (nearest): the two models' token grids differ."""
    return torch.nn.functional.interpolate(maps[:, None].float(), size=(size, size), mode="nearest")[:, 0]


def mask_overlap(heat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of the attention that falls on the blending boundary 4 M (1 - M) (Face X-ray Eq. 2),
    over the share of the image the boundary covers: 1 = no preference, > 1 = drawn to the boundary."""
    g = heat.shape[-1]
    b = torch.nn.functional.adaptive_avg_pool2d((4 * mask * (1 - mask))[:, None], g)[:, 0]
    h = heat / heat.sum((-2, -1), keepdim=True)
    return (h * b).sum((-2, -1)) / (b.mean((-2, -1)) + 1e-8)


# ---------------------------------------------------------------- reproduce

def _seed_runs(cfg: Config, seed: int, progress: bool) -> tuple[dict, dict]:
    """One seed: both models on all types, CViT without the held-out type. Returns metrics, runs."""
    data = load_data(cfg, seed)
    runs = {m: train(cfg, m, data, seed, progress=progress) for m in MODELS}
    out = {m: {"frame": score(r.probs, data.test), "seconds": r.seconds,
               "video": {n: score(r.probs, data.test, n) for n in cfg.frames},
               "variant": {v: score(r.probs, data.test, variant=v) for v in VARIANTS},
               "crop": crop_sweep(r, data.test, cfg.shifts, cfg.scales)} for m, r in runs.items()}
    seen = tuple(v for v in VARIANTS if v != cfg.held_out)
    held = load_data(cfg, seed, seen)
    r = train(cfg, "CViT", held, seed, progress=progress)
    out["CViT-heldout"] = {"variant": {v: score(r.probs, held.test, variant=v) for v in VARIANTS}}
    return out, {"data": data, **runs}


def _points(per_seed: list[dict], *path) -> list[float]:
    vals = []
    for d in per_seed:
        for k in path:
            d = d[k]
        vals.append(d)
    return vals


def _diff(a: list[float], b: list[float]) -> dict:
    """Paired per-seed differences, summarised (mean, std; the ledger shows s.e. = std / sqrt(n))."""
    return ledger.summarize([x - y for x, y in zip(a, b)])


def effects(per_seed: list[dict], cfg: Config) -> dict[str, dict]:
    """The four headline effects, each a paired per-seed difference in points."""
    nmax, held = max(cfg.frames), cfg.held_out
    seen = [v for v in VARIANTS if v != held]
    p = lambda *path: _points(per_seed, *path)
    seen_auc = [float(np.mean([d["CViT-heldout"]["variant"][v]["auc"] for v in seen])) for d in per_seed]
    base_crop = "shift=0"
    worst = max(s for s in cfg.shifts)
    return {
        "hybrid_minus_vit/frame_auc": _diff(p("CViT", "frame", "auc"), p("ViT", "frame", "auc")),
        "hybrid_minus_vit/frame_acc": _diff(p("CViT", "frame", "acc"), p("ViT", "frame", "acc")),
        f"video{nmax}_minus_frame/acc": _diff(p("CViT", "video", nmax, "acc"), p("CViT", "video", 1, "acc")),
        f"video{nmax}_minus_frame/auc": _diff(p("CViT", "video", nmax, "auc"), p("CViT", "video", 1, "auc")),
        "heldout_minus_seen/auc": _diff(p("CViT-heldout", "variant", held, "auc"), seen_auc),
        "heldout_minus_trained/auc": _diff(p("CViT-heldout", "variant", held, "auc"),
                                           p("CViT", "variant", held, "auc")),
        f"crop_shift{worst}/acc": _diff(p("CViT", "crop", f"shift={worst}", "acc"),
                                        p("CViT", "crop", base_crop, "acc")),
    }


def convergence(cfg: Config, seed: int, runs: dict, progress: bool, models=MODELS) -> dict:
    """Each model trained `cfg.convergence` times longer on seed `seed`'s data: how much its frame AUC
    and accuracy move (the check that more training would not change the comparison)."""
    out = {"factor": cfg.convergence, "seed": seed}
    for m in models:
        r = train(cfg, m, runs["data"], seed, cfg.convergence, progress)
        now, longer = score(runs[m].probs, runs["data"].test), score(r.probs, runs["data"].test)
        out[m] = {"auc": now["auc"], "auc_longer": longer["auc"], "acc": now["acc"], "acc_longer": longer["acc"],
                  "auc_moved": longer["auc"] - now["auc"], "acc_moved": longer["acc"] - now["acc"]}
    return out


def sizes(cfg: Config) -> dict[str, dict]:
    """Parameters and forward MFLOPs per frame of both models (`ingur_lib.measure`)."""
    x = torch.zeros(1, cfg.vit.in_chans, cfg.vit.image_size, cfg.vit.image_size)
    return {m: {"params": measure.count_params(build(cfg, m)),
                "mflops": measure.count_flops(build(cfg, m).eval(), x) / 1e6} for m in MODELS}


# ---------------------------------------------------------------- tuning

TUNE_SEED = 100                     # the tuning split: not one of the reported seeds (0, 1, 2)
TUNE_LRS = (5e-4, 1e-3, 2e-3, 4e-3, 8e-3)   # both models
TUNE_VIT_PATCHES = (4, 3, 6)        # the ViT's lr sweep at patch 4 (36 tokens, as the CViT), then 3 and 6


def tune(profile: str = "standard", progress: bool = False) -> str:
    """The same learning-rate sweep for both models, then the ViT's patch size at its best lr, on a source
    split drawn with TUNE_SEED, at the profile's schedule; records data/results/06_cvit/tune.json."""
    t0, cfg = time.perf_counter(), config(profile)
    data = load_data(cfg, TUNE_SEED)

    def one(name, lr, p=None):
        c = replace(cfg, lr=lr, vit_lr=lr, vit=replace(cfg.vit, patch_size=p or cfg.vit.patch_size))
        r = train(c, name, data, TUNE_SEED, progress=progress)
        return {"model": name, "lr": lr, "patch": p if name == "ViT" else None, "seconds": r.seconds,
                "params": measure.count_params(r.model), **score(r.probs, data.test)}
    rows = [one(m, lr, TUNE_VIT_PATCHES[0]) for m in MODELS for lr in TUNE_LRS]
    vit_lr = max((r for r in rows if r["model"] == "ViT"), key=lambda r: r["auc"])["lr"]
    rows += [one("ViT", vit_lr, p) for p in TUNE_VIT_PATCHES[1:]]
    best = {m: max((r for r in rows if r["model"] == m), key=lambda r: r["auc"]) for m in MODELS}
    metrics = {f"{m}/best_auc": ledger.summarize([b["auc"]]) for m, b in best.items()}
    prov = provenance("tune", (TUNE_SEED,), time.perf_counter() - t0,
                      dataset={"name": "synthetic blended forgeries", "source": data.source,
                               "describe": data.describe()}, config=cfg)
    return str(ledger.record(CHAPTER, "tune", prov, metrics, [], {"sweep": rows, "best": best}))


def tune_markdown(results: dict) -> str:
    """The recorded learning-rate sweep (`tune`) as a Markdown table, best row of each model in bold."""
    best = {m: (b["lr"], b["patch"]) for m, b in results["best"].items()}
    lines = ["| model | patch | peak lr | frame AUC | accuracy | seconds |", "|---|---|---|---|---|---|"]
    for r in results["sweep"]:
        cells = [r["model"], str(r["patch"] or "VGG"), f"{r['lr']:g}", f"{r['auc']:.1f}", f"{r['acc']:.1f}",
                 f"{r['seconds']:.0f}"]
        if (r["lr"], r["patch"]) == best[r["model"]]:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    p = results["provenance"]
    return "\n".join(lines) + (f"\n\nTuning split: seed {p['seeds'][0]}, {p['dataset']['describe'].split(';')[0]}"
                               f"; commit {p['commit'][:7]}.")


def _comparisons(eff: dict, cfg: Config, n: int) -> list[dict]:
    where = f"synthetic blended forgeries of LFW faces, unseen sources, {n} seeds"
    nmax = max(cfg.frames)
    return [
        ledger.compare(PAPER, "hybrid_beats_vit", eff["hybrid_minus_vit/frame_auc"], f"frame AUC, {where}",
                       "CViT minus a pure ViT of similar parameter count, same data, each at its tuned lr; "
                       f"epochs: CViT {cfg.epochs:g}, ViT {cfg.vit_epochs or cfg.epochs:g}."),
        ledger.compare(PAPER, "video_averaging", eff[f"video{nmax}_minus_frame/acc"],
                       f"accuracy, {nmax}-frame mean vs 1 frame, {where}", "Paired per seed, same model."),
        ledger.compare(PAPER, "weak_manipulation_types", eff["heldout_minus_seen/auc"],
                       f"AUC on the held-out '{cfg.held_out}' type minus the seen types' mean, {where}",
                       "The paper's FaceSwap-vs-Deepfakes accuracy gap; ours is an AUC gap."),
        ledger.compare(PAPER, "detector_sensitivity", eff[f"crop_shift{max(cfg.shifts)}/acc"],
                       f"frame accuracy, crop moved {max(cfg.shifts)} px vs centred, {where}",
                       "The paper swaps face detectors; we move the crop."),
    ]


def reproduce(profile: str = "standard", seeds=None, progress: bool = True) -> str:
    """Train every seed, check convergence on the first, look inside; record with provenance."""
    t0 = time.perf_counter()
    cfg = config(profile)
    seeds = tuple(seeds or cfg.seeds)
    per_seed, first = [], None
    for seed in seeds:
        out, runs = _seed_runs(cfg, seed, progress)
        per_seed.append(out)
        first = first or runs
    eff = effects(per_seed, cfg)
    conv = convergence(cfg, seeds[0], first, progress)
    metrics = dict(eff)
    for m in MODELS:
        for k in ("auc", "acc"):
            metrics[f"{m}/frame_{k}"] = ledger.summarize(_points(per_seed, m, "frame", k))
    data = first["data"]
    frames, masks, titles = example_frames(data.test)
    rolls = {m: cls_rollout(first[m], frames) for m in MODELS}
    inside = {"rollout": {m: r.tolist() for m, r in rolls.items()}, "masks": masks.tolist(),
              "titles": titles, "frames": frames[:, 0].tolist(),
              "boundary_ratio": {m: mask_overlap(r[1:], masks[1:]).tolist() for m, r in rolls.items()}}
    roc = {}
    from sklearn.metrics import roc_curve
    for m in MODELS:
        fpr, tpr, _ = roc_curve(data.test.y.numpy(), first[m].probs.numpy())
        roc[m] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    prov = provenance(profile, seeds, time.perf_counter() - t0,
                      dataset={"name": "synthetic blended forgeries", "source": data.source,
                               "describe": data.describe(), "variants": list(VARIANTS)},
                      config=cfg)
    extra = {"per_seed": per_seed, "convergence": conv, "sizes": sizes(cfg), "inside": inside, "roc": roc,
             "histories": {m: first[m].history.to_dict() for m in MODELS}}
    return str(ledger.record(CHAPTER, profile, prov, metrics, _comparisons(eff, cfg, len(seeds)), extra))


# ---------------------------------------------------------------- figures

def _series(results: dict, *path) -> list[float]:
    return _points(results["per_seed"], *path)


@figure("cvit_hybrid_vs_vit", CHAPTER)
def fig_hybrid_vs_vit(results: dict):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(6.0, 2.4))
    for ax, k, name in zip(axes, ("auc", "acc"), ("frame AUC (%)", "frame accuracy (%)")):
        vals = [_series(results, m, "frame", k) for m in MODELS]
        bar_with_errors(ax, list(MODELS), [np.mean(v) for v in vals], [np.std(v, ddof=1) for v in vals],
                        reference=50, ylabel=name, n=len(vals[0]))  # the note says mean ± std, n
        ax.set_ylim(0, 100)
    fig.tight_layout()
    return fig


@figure("cvit_frames", CHAPTER)
def fig_frames(results: dict):
    ns = sorted(int(n) for n in results["per_seed"][0]["CViT"]["video"])
    series = {m: [_series(results, m, "video", str(n), "acc") for n in ns] for m in MODELS}
    return curves_with_errors(ns, series, xlabel="frames averaged per video (N)",
                              ylabel="video accuracy (%)")


@figure("cvit_held_out", CHAPTER)
def fig_held_out(results: dict):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(3.6, 2.4))
    vals = [_series(results, "CViT-heldout", "variant", v, "auc") for v in VARIANTS]
    held = results["provenance"]["config"]["held_out"]
    labels = [f"{v}\n(held out)" if v == held else v for v in VARIANTS]
    bar_with_errors(ax, labels, [np.mean(v) for v in vals], [np.std(v, ddof=1) for v in vals],
                    reference=50, ylabel="test AUC (%)", n=len(vals[0]))
    ax.set_ylim(0, 100)
    ax.set_title(f"CViT trained without {held}, tested on each")
    return fig


@figure("cvit_crop", CHAPTER)
def fig_crop(results: dict):
    crop = results["per_seed"][0]["CViT"]["crop"]
    shifts = sorted(int(k.split("=")[1]) for k in crop if k.startswith("shift="))
    series = {m: [_series(results, m, "crop", f"shift={s}", "acc") for s in shifts] for m in MODELS}
    return curves_with_errors(shifts, series, xlabel="test crop shifted by (pixels)",
                              ylabel="frame accuracy (%)")


@figure("cvit_roc", CHAPTER)
def fig_roc(results: dict):
    fig = roc_curves({m: (c["fpr"], c["tpr"]) for m, c in results["roc"].items()})
    fig.axes[0].set_title(f"every test frame, seed {results['provenance']['seeds'][0]}")
    return fig


@figure("cvit_attention", CHAPTER)
def fig_attention(results: dict):
    ins = results["inside"]
    frames = torch.tensor(ins["frames"], dtype=torch.uint8)[:, None]
    rolls = [on_pixels(torch.tensor(ins["rollout"][m]), frames.shape[-1]) for m in MODELS]
    heats = torch.stack([torch.tensor(ins["masks"])] + rolls)
    return attention_grid(frames, heats, ["blend mask", "CViT rollout", "ViT rollout"], ins["titles"])


# ---------------------------------------------------------------- exercises

@exercise("cvit.paste_face")
def _check_paste_face(student_paste):
    g = torch.Generator().manual_seed(1)
    t, d = torch.rand(1, 1, 16, 16, generator=g), torch.rand(1, 1, 16, 16, generator=g) * 0.5
    m = torch.zeros(16, 16)
    m[4:12, 3:13] = 1.0
    m[5:11, 4:12] = 0.5 + 0.5 * torch.rand(6, 8, generator=g)
    want = blend(t, match_stats(d, t, m[None]), m)
    got = torch.as_tensor(student_paste(t, d, m))
    assert_same(got, want, "paste_face(target, donor, mask): the donor's mean and std inside the mask "
                           "matched to the target's, then M * source + (1 - M) * target")


@exercise("cvit.majority_vote")
def _check_majority_vote(student_vote):
    probs = torch.tensor([0.9, 0.1, 0.2, 0.6, 0.6, 0.1, 0.55, 0.45, 0.6, 0.6, 0.9, 0.9])
    video = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    for n, want in ((3, [0, 1, 1, 1]), (1, [1, 1, 1, 1]), (2, [0, 1, 0, 1])):
        got = torch.as_tensor(student_vote(probs, video, n)).long()
        assert_same(got, torch.tensor(want), f"majority_vote(probs, video, {n}): a video is fake when MORE "
                                             f"than half of its first {n} frames have P(fake) > 0.5")


def xray_from_blend(target: torch.Tensor, source: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Face X-ray's label recovered from the blend (Eq. 1, fake = M source + (1 - M) target): M where the
    two parents differ, 0 where they agree (the blend cannot tell M there), then B = 4 M (1 - M)."""
    diff = source - target
    differ = diff.abs() > 1e-6
    m = torch.where(differ, (fake - target) / torch.where(differ, diff, torch.ones_like(diff)), 0.0)
    m = m.clamp(0, 1)
    return 4 * m * (1 - m)


@exercise("cvit.xray_from_blend", blend)
def _check_xray_from_blend(student_fn):
    g = torch.Generator().manual_seed(5)
    t = torch.rand(1, 1, 12, 12, generator=g) * 0.4
    s = t + 0.2 + 0.4 * torch.rand(1, 1, 12, 12, generator=g)  # the parents differ by 0.2 or more
    s[..., :3, :] = t[..., :3, :]  # a band where they agree: no M can be read there
    m = torch.rand(12, 12, generator=g)
    fake = blend(t, s, m)
    got = torch.as_tensor(student_fn(t, s, fake)).float()
    if got.isnan().any():
        raise AssertionError("NaN where source and target agree: the blend says nothing about M there; use 0.")
    if got.shape == fake.shape and torch.allclose(got, 4 * fake * (1 - fake)):
        raise AssertionError("that is 4 p (1 - p) of the pixels: first recover the mask M from the blend.")
    assert_same(got, xray_from_blend(t, s, fake), "M from fake = M source + (1 - M) target (0 where the "
                                                  "parents agree), then 4 M (1 - M)", atol=1e-4)


# ---------------------------------------------------------------- prose from the recorded results

def _pm(s: dict) -> str:
    """mean ± standard error of a `ledger.summarize` dict; a null (the evidence rule, `ledger.resolved`)
    says so with its interval."""
    null = f" (a null: {ledger.NULL_WORDS})" if s["n"] > 1 and not ledger.resolved(s) else ""
    return ledger.mean_se(s, sign="+") + null


def summary_markdown(results: dict) -> str:
    """What the recorded standard run found, as Markdown built from its numbers (never typed by hand)."""
    m, cfg = results["metrics"], results["provenance"]["config"]
    n, nmax = m["hybrid_minus_vit/frame_auc"]["n"], max(cfg["frames"])
    conv, cc = results["convergence"]["ViT"], results["convergence"].get("CViT")
    sz, shift = results["sizes"], max(cfg["shifts"])
    crop_auc = lambda k: float(np.mean(_series(results, "CViT", "crop", f"shift={k}", "auc")))
    return (
        f"**What the standard run found** ({n} seeds; effects are paired per-seed differences, "
        f"mean ± standard error, in points).\n\n"
        f"- CViT ({sz['CViT']['params']:,} parameters) vs ViT ({sz['ViT']['params']:,}): frame AUC "
        f"{m['CViT/frame_auc']['mean']:.1f} vs {m['ViT/frame_auc']['mean']:.1f}, difference "
        f"{_pm(m['hybrid_minus_vit/frame_auc'])}; accuracy difference {_pm(m['hybrid_minus_vit/frame_acc'])}.\n"
        f"- Averaging {nmax} frames vs one: accuracy {_pm(m[f'video{nmax}_minus_frame/acc'])}, "
        f"AUC {_pm(m[f'video{nmax}_minus_frame/auc'])}.\n"
        f"- The held-out `{cfg['held_out']}` type vs the types seen in training (same model): AUC "
        f"{_pm(m['heldout_minus_seen/auc'])}; vs a model that saw it: {_pm(m['heldout_minus_trained/auc'])}.\n"
        f"- Crop moved by {shift} px at test time: accuracy {_pm(m[f'crop_shift{shift}/acc'])} (at the fixed 0.5 "
        f"threshold); the CViT's frame AUC goes from {crop_auc(0):.1f} to {crop_auc(shift):.1f}.\n"
        f"- Convergence check: the ViT trained {results['convergence']['factor']}x longer moved its frame AUC "
        f"by {conv['auc_moved']:+.1f} and its accuracy by {conv['acc_moved']:+.1f}"
        + (f"; the CViT's by {cc['auc_moved']:+.1f} and {cc['acc_moved']:+.1f}" if cc else "")
        + f" (seed {results['convergence']['seed']}).\n" + _boundary_line(results) + _verdict_notes(m, conv, cc))


def _boundary_line(results: dict) -> str:
    """The rollout's preference for the blending boundary on the example fakes (1 = none)."""
    ratio = results["inside"]["boundary_ratio"]
    parts = [f"{m} {float(np.mean(ratio[m])):.2f}" for m in MODELS]
    return (f"- Attention on the blending boundary over its share of the image, mean of the four example "
            f"fakes (1 = no preference): {', '.join(parts)}.")


def _convergence_notes(m: dict, name: str, check: dict) -> list[str]:
    """The book's one convergence rule (`ledger.convergence`) on one model's one-seed move in AUC and in
    accuracy, each against the smallest effect of its own metric that the evidence rule resolves."""
    said = []
    for metric, word in (("auc", "AUC"), ("acc", "accuracy")):
        effects = {k: v for k, v in m.items() if k.endswith(metric) and not k.startswith(("CViT/", "ViT/"))}
        r = ledger.convergence(check[f"{metric}_moved"], effects)
        verdict = ("decides nothing (no effect resolved)" if r["converged"] is None else
                   f"{'converged' if r['converged'] else 'NOT converged'} (moved {r['moved']:.2f} against "
                   f"{r['smallest_name']}'s {r['smallest_effect']:.2f})")
        said.append(f"{word} {verdict}")
    return [f"By the book's convergence rule, the {name}: {'; '.join(said)}."]


def _verdict_notes(m: dict, conv: dict, cc: dict | None = None) -> str:
    """Sentences that follow from the numbers: a baseline at chance, a convergence check that fails."""
    notes = []
    if m["ViT/frame_auc"]["mean"] < 55:
        notes.append("The pure ViT stays near chance (frame AUC below 55) at this budget: the comparison "
                     "measures what each model learns in the same few steps, not their best.")
    for name, check in (("ViT", conv), ("CViT", cc)):
        if check is not None:
            notes += _convergence_notes(m, name, check)
    return ("\n\n" + " ".join(notes)) if notes else ""
