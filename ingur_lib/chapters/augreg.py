"""Chapter 04 [3], How to train your ViT? Data, augmentation and regularization (AugReg).

The paper (Steiner et al. 2021) trains thousands of ViTs over a grid of dataset size x augmentation
setting x regularization x model x compute. Its mechanisms are not new layers but a recipe: the named
augmentation settings (RandAugment + mixup, `ingur_lib.data.randaugment.SETTINGS`) and
regularization (dropout + stochastic depth, switches of `ViTConfig`). Here a small ViT trains on
Fashion-MNIST subsets of N and 10N images under several settings, plus a regularized twin of the plain
recipe, each to convergence (epochs scale with the data), over several seeds.

`run(profile, seed)` is what the notebook calls; `reproduce(profile, seeds)` writes
data/results/04_augreg/<profile>.json. Both use the same configs and code.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from .. import ledger
from ..data import Augment, ImageData, image_prepare, load_images
from ..data.randaugment import MAX_LEVEL, OPS, SETTINGS, apply_op, rand_augment, setting, warp
from ..data.augment import mixup
from ..errors import IngurError
from ..exercises import assert_same, exercise
from ..experiment import longer_check
from ..figures import figure
from ..models.vit import ViT, ViTConfig
from ..profiles import pick
from ..runtime import provenance, seed_everything
from ..train import History, TrainConfig, fit
from ..viz import bar_with_errors, curves_with_errors, heatmap_row, name_colors

CHAPTER, PAPER = "04_augreg", "augreg"
REG = "none+reg"  # the plain recipe with dropout and stochastic depth on
name_colors(tuple(SETTINGS) + (REG,), CHAPTER)


def augreg_augment(name: str, **base) -> Augment:
    """The `Augment` of a named AugReg setting, on top of `base` (crop, flip: AugReg's "none" keeps them)."""
    layers, magnitude, alpha = setting(name)
    return Augment(randaug_layers=layers, randaug_magnitude=magnitude, mixup=alpha, **base)


@dataclass
class Budget:
    """Claim 4 at a fixed compute budget: a larger patch on a wider model (`big`) against a smaller patch
    on a narrower one (`small`), the small one given `epochs` x (big's FLOPs / small's FLOPs) so that
    forward FLOPs x images seen match (`measure.count_flops`). A short budget by design: the claim is
    about limited compute, so these models are not trained to convergence."""
    big: ViTConfig
    small: ViTConfig
    size: int                       # training images (one of the grid's sizes)
    epochs: float                   # the big model's epochs; the small one's follow from the FLOPs


@dataclass
class Config:
    model: ViTConfig
    sizes: tuple[int, ...]          # training-set sizes, smallest first (N, 10N for the 10x claim)
    epochs: tuple[float, ...]       # epochs at each size: fewer on more data, each long enough to converge
    settings: tuple[str, ...]       # AugReg's named settings trained at every size
    reg_sizes: tuple[int, ...] = ()  # sizes where "none" also trains with dropout + stochastic depth
    regularization: float = 0.1     # the paper's dropout and stochastic-depth rate when "reg" is on
    longer: float = 1.5             # the convergence check: `longer_settings` trained this much longer
    longer_settings: tuple[str, ...] = ("none",)  # settings (or REG at reg_sizes) trained `longer`x
    longer_smallest: tuple[str, ...] = ()  # further settings checked at the smallest size only
    budget: Budget | None = None    # claim 4 (larger patch vs smaller model at fixed compute), if run
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 64
    lr: float = 2e-3                # the paper's 1e-3 (batch 4096) trains these small ViTs too slowly
    weight_decay: float = 0.1       # AdamW's lr * wd = 1e-4 per step, big_vision's decoupled wd
    n_test: int | None = 2000
    dataset: str = "fashion_mnist"

    def __post_init__(self):
        if len(self.sizes) != len(self.epochs):
            raise IngurError(f"sizes {self.sizes} and epochs {self.epochs} need one entry each: "
                             "give every training-set size its number of epochs.")
        for s in self.settings:
            augreg_augment(s)  # raises for an unknown setting name
        if "none" not in self.settings:
            raise IngurError("settings must include 'none': every claim compares with the plain recipe.")
        if not set(self.reg_sizes) <= set(self.sizes):
            raise IngurError(f"reg_sizes {self.reg_sizes} must be among sizes {self.sizes}.")
        grid = set(self.settings) | ({REG} if self.reg_sizes else set())
        if not set(self.longer_settings) | set(self.longer_smallest) <= grid:
            raise IngurError(f"longer_settings {self.longer_settings} must be among settings "
                             f"{sorted(grid)}: the check trains a setting of the grid longer.")
        if self.budget is not None and self.budget.size not in self.sizes:
            raise IngurError(f"budget.size={self.budget.size} must be one of sizes {self.sizes}.")

    def train_config(self, n_train: int, seed: int, longer: float = 1.0) -> TrainConfig:
        """Adam(W), 10% linear warmup then cosine, clip 1.0, no label smoothing; one evaluation at the end."""
        # the schedule of the nearest grid size: a subset can come out a few images short of its size (per-class
        # rounding), and a dry run's is far smaller; an exact lookup would stop either
        nearest = min(range(len(self.sizes)), key=lambda i: abs(self.sizes[i] - n_train))
        epochs = self.epochs[nearest] * longer
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr, warmup_epochs=0.1 * epochs,
                           weight_decay=self.weight_decay, label_smoothing=0.0, seed=seed, eval_every=10 ** 6)


_SMALL = ViTConfig(patch_size=7, dim=48, depth=4, heads=4, mlp_ratio=2.0)
# The grid's model: 16 tokens of width 32, three blocks, ~5,500 augmented images/s at one thread, batch 128
_TINY = ViTConfig(patch_size=7, dim=32, depth=3, heads=2, mlp_ratio=2.0)
# Claim 4's pair: 4.85 vs 4.61 MFLOPs per 28x28 image (measure.count_flops), 139k vs 37k parameters
_BUDGET = Budget(big=replace(_SMALL, dim=64), small=replace(_SMALL, patch_size=4, dim=32), size=2000,
                 epochs=25)
CONFIGS = {
    "smoke": Config(_TINY, sizes=(1000,), epochs=(25,), settings=("none", "light2"), batch_size=128,
                    lr=3e-3),
    # 200 and 2,000 images (20 and 200 per class): 2,400 steps of 128 at both sizes, because augmented
    # runs converge in steps, not epochs (probe: medium2 on 200 images still gained +4.0 points from 900
    # to 1,350 epochs, on 2,000 +2.9 from 150 to 225, so medium2 does not fit the budget); none and
    # light2, the regularized twin at 2,000; every compared cell also trained 1.5x longer (convergence);
    # claim 4; 3 seeds; ~34 min at 1 thread
    "standard": Config(_TINY, sizes=(200, 2000), epochs=(1200, 150), settings=("none", "light2"),
                       reg_sizes=(2000,), seeds=(0, 1, 2), longer_settings=("none", "light2", REG),
                       budget=_BUDGET, batch_size=128, lr=3e-3),
    # The paper's grid on CIFAR-10 with a ViT-Ti-like model (GPU; not run on CPU).
    "full": Config(ViTConfig(image_size=32, patch_size=4, in_chans=3, dim=192, depth=12, heads=3, mlp_ratio=4.0),
                   sizes=(5000, 50000), epochs=(300, 100), settings=tuple(SETTINGS), reg_sizes=(5000, 50000),
                   seeds=(0, 1, 2), n_test=None, dataset="cifar10", longer_settings=("none", "strong2")),
}


def config(profile: str | None = None) -> Config:
    return pick(CONFIGS, profile)


def variant_name(setting: str, reg: bool) -> str:
    return f"{setting}+reg" if reg else setting


def load_data(cfg: Config, n_train: int, seed: int = 0) -> ImageData:
    return load_images(cfg.dataset).subset(n_train, cfg.n_test, seed=seed)


def model_config(cfg: Config, data: ImageData, reg: bool = False, model: ViTConfig | None = None) -> ViTConfig:
    c, h, _ = data.image_shape
    rate = cfg.regularization if reg else 0.0
    return replace(model or cfg.model, in_chans=c, image_size=h, num_classes=data.num_classes, dropout=rate,
                   drop_path=rate)


@dataclass
class Run:
    """One trained model and what the notebook shows of it."""
    name: str
    model: ViT
    history: History
    prepare: object
    test_acc: float
    seconds: float


def train_setting(cfg: Config, setting: str, data: ImageData, seed: int = 0, reg: bool = False,
                  longer: float = 1.0, progress: bool = True, model: ViTConfig | None = None) -> Run:
    """Train the small ViT (or `model`) on `data` under a named AugReg setting (crop + flip always, as
    big_vision); `longer` multiplies the size's epochs."""
    seed_everything(seed)
    model = ViT(model_config(cfg, data, reg, model))
    aug = augreg_augment(setting, crop_padding=2, flip=True)
    prepare = image_prepare(data.mean, data.std, aug, data.num_classes)
    name = variant_name(setting, reg) + (f" x{longer:g}" if longer != 1 else "")
    t0 = time.perf_counter()
    hist = fit(model, (data.train_x, data.train_y), (data.test_x, data.test_y),
               cfg.train_config(len(data.train_y), seed, longer), prepare=prepare, progress=progress,
               desc=f"{name} n={len(data.train_y)}")
    return Run(name, model, hist, prepare, hist.last("test_acc"), time.perf_counter() - t0)


def run(profile: str | None = None, seed: int = 0, progress: bool = True) -> dict[str, Run]:
    """Every setting of the profile at its smallest size (what the notebook trains)."""
    cfg = config(profile)
    data = load_data(cfg, cfg.sizes[0], seed)
    return {s: train_setting(cfg, s, data, seed, progress=progress) for s in cfg.settings}


# ---------------------------------------------------------------- throughput

def randaugment_throughput(cfg: Config, batch: int = 128, reps: int = 20, setting: str = "strong2") -> float:
    """Images per second of RandAugment alone on a (batch, C, H, W) float batch, at one torch thread or
    whatever the process has (median of `reps` calls)."""
    layers, magnitude, _ = SETTINGS[setting]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, cfg.model.in_chans, cfg.model.image_size, cfg.model.image_size)
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        rand_augment(x, layers, magnitude, g)
        times.append(time.perf_counter() - t0)
    return batch / sorted(times[1:])[reps // 2]


# ---------------------------------------------------------------- reproduce

def _grid(cfg: Config, seeds, progress: bool) -> tuple[dict, dict]:
    """Test accuracy (%) per size and variant over seeds, and the convergence check's runs (per size,
    per setting in `longer_settings`)."""
    acc, longer = {}, {}
    for n in cfg.sizes:
        for seed in seeds:
            data = load_data(cfg, n, seed)
            jobs = [(s, False) for s in cfg.settings] + ([("none", True)] if n in cfg.reg_sizes else [])
            for s, reg in jobs:
                r = train_setting(cfg, s, data, seed, reg, progress=progress)
                acc.setdefault(n, {}).setdefault(variant_name(s, reg), []).append(100 * r.test_acc)
            for s in cfg.longer_settings + (cfg.longer_smallest if n == cfg.sizes[0] else ()):
                reg = s == REG                  # the regularized twin is checked where it trains
                if reg and n not in cfg.reg_sizes:
                    continue
                r = train_setting(cfg, "none" if reg else s, data, seed, reg, longer=cfg.longer,
                                  progress=progress)
                longer.setdefault(n, {}).setdefault(s, []).append(100 * r.test_acc)
    return acc, longer


def budget_epochs(cfg: Config, data: ImageData) -> dict[str, float]:
    """Claim 4's epochs per model: the big one's, and the small one's scaled by the FLOPs ratio."""
    from .. import measure
    b = cfg.budget
    x = data.test_x[:1].float()
    flops = {k: measure.count_flops(ViT(model_config(cfg, data, model=m)), x)
             for k, m in (("big", b.big), ("small", b.small))}
    return {"big": b.epochs, "small": b.epochs * flops["big"] / flops["small"], "flops": flops}


def budget_runs(cfg: Config, seeds, progress: bool) -> dict:
    """Claim 4: accuracy (%) of the larger-patch model and the smaller model at matched FLOPs x images,
    the plain recipe, per seed."""
    b = cfg.budget
    out = {"big": [], "small": []}
    for seed in seeds:
        data = load_data(cfg, b.size, seed)
        ep = budget_epochs(cfg, data)
        for k, m in (("big", b.big), ("small", b.small)):
            budget_cfg = replace(cfg, sizes=(b.size,), epochs=(ep[k],), budget=None)
            r = train_setting(budget_cfg, "none", data, seed, progress=progress, model=m)
            out[k].append(100 * r.test_acc)
    out["epochs"] = {k: ep[k] for k in ("big", "small")}
    out["flops"] = ep["flops"]
    return out


def best_setting(acc_n: dict, exclude=("none", REG)) -> str:
    """The augmentation setting with the highest mean accuracy (ties: the first in SETTINGS order)."""
    names = [s for s in SETTINGS if s in acc_n and s not in exclude]
    return max(names, key=lambda s: sum(acc_n[s]) / len(acc_n[s]))


def strength(name: str) -> int:
    """A setting's place in AugReg's order none < light1 < ... < strong2."""
    return list(SETTINGS).index(name)


def _comparisons(acc: dict, cfg: Config, budget: dict | None = None) -> list[dict]:
    small, big = cfg.sizes[0], cfg.sizes[-1]
    k = len(acc[small]["none"])
    where = f"Fashion-MNIST, small ViT, {k} seeds"
    best = best_setting(acc[small])
    strongest = max((s for s in cfg.settings if s != "none"), key=strength)
    rows = [ledger.compare(PAPER, "augreg_worth_10x_data", ledger.paired(acc[small][best], acc[big]["none"]), where,
                           f"{best} on {small} images minus none on {big} (the best setting picked by its mean "
                           "over the same seeds, which favours it slightly)."),
            ledger.compare(PAPER, "less_data_more_aug",
                           ledger.paired([a - b for a, b in zip(acc[small][strongest], acc[small]["none"])],
                                  [a - b for a, b in zip(acc[big][strongest], acc[big]["none"])]), where,
                           f"Gain of {strongest} over none on {small} images minus the same gain on {big}.")]
    for n in cfg.reg_sizes:
        rows.append(ledger.compare(PAPER, "regularization_hurts_small", ledger.paired(acc[n][REG], acc[n]["none"]),
                                   f"{where}, {n} images",
                                   f"dropout {cfg.regularization} + stochastic depth {cfg.regularization} "
                                   f"on a {cfg.model.dim}-wide, {cfg.model.depth}-block ViT, no augmentation."))
    if budget is not None:
        b = cfg.budget
        rows.append(ledger.compare(
            PAPER, "larger_patch_under_budget", ledger.paired(budget["big"], budget["small"]),
            f"{where}, {b.size} images",
            f"patch {b.big.patch_size} width {b.big.dim} ({budget['epochs']['big']:g} epochs) minus patch "
            f"{b.small.patch_size} width {b.small.dim} ({budget['epochs']['small']:.2f} epochs), forward "
            "FLOPs x images matched, plain recipe, a short budget (not converged by design)."))
    return rows


def _guarded_effects(rows: list[dict]) -> dict:
    """The effects whose size the convergence check guards, from the comparisons: the grid's models only
    (claim 4's pair trains on a short budget by design)."""
    return {f"{r['claim']}/{r['metric']}": {"mean": r["ours"], "std": r["ours_std"], "n": r["n_seeds"]}
            for r in rows if r["claim"] != "larger_patch_under_budget"}


def convergence_checks(acc: dict, longer: dict, factor: float, seeds) -> dict:
    """Per size and setting, one `experiment.longer_check` record named "<setting>/n=<size>" (the runs as
    recorded and `factor`x longer, their paired change), with its setting and size. Numbers only: `judge`
    applies the book's one rule when a page is drawn."""
    return {f"{s}/n={n}": {**longer_check(acc[n][s], runs, seeds, factor), "setting": s, "n_train": int(n)}
            for n, per in longer.items() for s, runs in per.items()}


def judge(record: dict, effects: dict) -> dict:
    """The book's one rule (`ledger.convergence`) on a record's mean change, against the smallest effect the
    run resolves."""
    return ledger.convergence(record["change"]["mean"], effects)


def _by_size(conv: dict) -> dict:
    """The records grouped {size: {setting: record}}, in their stored order."""
    out = {}
    for rec in conv.values():
        out.setdefault(rec["n_train"], {})[rec["setting"]] = rec
    return out


def reproduce(profile: str = "standard", seeds=None, progress: bool = True) -> str:
    """Train the grid, the convergence check and claim 4's pair; measure RandAugment; record with
    provenance."""
    t0 = time.perf_counter()
    cfg = config(profile)
    seeds = tuple(seeds or cfg.seeds)
    acc, longer = _grid(cfg, seeds, progress)
    budget = budget_runs(cfg, seeds, progress) if cfg.budget else None
    metrics = {f"test_acc/{v}/n={n}": ledger.summarize(a) for n, per in acc.items() for v, a in per.items()}
    rows = _comparisons(acc, cfg, budget)
    conv = convergence_checks(acc, longer, cfg.longer, seeds)
    metrics.update({f"convergence/{name}": c["change"] for name, c in conv.items()})
    if budget:
        metrics.update({f"budget/{k}/n={cfg.budget.size}": ledger.summarize(budget[k]) for k in ("big", "small")})
    ips = randaugment_throughput(cfg)
    metrics["randaugment_images_per_s"] = ledger.summarize([ips])
    data = load_data(cfg, cfg.sizes[0], seeds[0])
    prov = provenance(profile, seeds, time.perf_counter() - t0,
                      dataset={"name": data.name, "source": data.source, "sizes": list(cfg.sizes),
                               "n_test": len(data.test_y)}, config=cfg)
    extra = {"accuracy": {str(n): per for n, per in acc.items()}, "convergence": conv, "budget": budget,
             "best_setting": {str(n): best_setting(per) for n, per in acc.items()},
             "randaugment_images_per_s": ips}
    return str(ledger.record(CHAPTER, profile, prov, metrics, rows, extra))


# ---------------------------------------------------------------- figures for the thesis

def _grid_of(results: dict, stat) -> tuple[list, list, list]:
    acc = results["accuracy"]
    sizes = sorted(acc, key=int)
    names = [v for v in list(SETTINGS) + [REG] if any(v in acc[n] for n in sizes)]
    return sizes, names, [[stat(acc[n][v]) if v in acc[n] else float("nan") for v in names] for n in sizes]


@figure("augreg_accuracy_vs_size", CHAPTER)
def fig_accuracy_vs_size(results: dict):
    acc = results["accuracy"]
    sizes = sorted(acc, key=int)
    names = [v for v in list(SETTINGS) + [REG] if any(v in acc[n] for n in sizes)]
    series = {v: [acc[n].get(v) for n in sizes] for v in names}
    return curves_with_errors([int(n) for n in sizes], series, xlabel="training images (log scale)",
                              ylabel="test accuracy (%)", logx=True, baseline="none")


@figure("augreg_grid", CHAPTER)
def fig_grid(results: dict):
    import statistics
    sizes, names, means = _grid_of(results, statistics.fmean)
    _, _, stds = _grid_of(results, lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
    n = min(len(v) for per in results["accuracy"].values() for v in per.values())
    texts = [[f"{m:.1f}\n±{s:.1f}" if m == m else "not run" for m, s in zip(mr, sr)]
             for mr, sr in zip(means, stds)]
    return heatmap_row({f"test accuracy (%), mean ± std over {n} seeds": torch.tensor(means)}, names,
                       [f"n={int(s):,}" for s in sizes], label="test accuracy (%)", texts=[texts], height=2.0)


@figure("augreg_budget", CHAPTER)
def fig_budget(results: dict):
    """Claim 4: the two models at matched FLOPs x images, mean ± s.e. over seeds."""
    import matplotlib.pyplot as plt
    b = results.get("budget")
    fig, ax = plt.subplots(figsize=(3.2, 2.4))
    if not b:   # a results file from before claim 4 was run
        ax.text(0.5, 0.5, "claim 4 not run in this results file", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    cfg = results["provenance"]["config"]["budget"]
    labels = [f"patch {cfg[k]['patch_size']}, width {cfg[k]['dim']}" for k in ("big", "small")]
    stats = [ledger.summarize(b[k]) for k in ("big", "small")]
    bar_with_errors(ax, labels, [s["mean"] for s in stats], [ledger.se(s) for s in stats],
                    ylabel="test accuracy (%)", n=stats[0]["n"], err="s.e.")
    ax.set_title("same forward FLOPs x images")
    return fig


def _pm(values) -> str:
    """mean ± s.e. of a list of per-seed numbers."""
    return ledger.mean_se(ledger.summarize(values))


def _se(c: dict) -> str:
    """A paired change's mean ± s.e."""
    return ledger.mean_se(c, 2, "+")


def _checks(conv: dict, effects: dict) -> str:
    """The convergence check, per size and setting, with the rule's verdict judged now (never stored)."""
    out = []
    for n, per in _by_size(conv).items():
        for s, c in per.items():
            rule = judge(c, effects)
            verdict = {True: "converged", False: "NOT converged", None: "undecided"}[rule.get("converged")]
            bar = (f", smallest resolved effect {rule['smallest_effect']:.2f}"
                   if rule.get("smallest_effect") is not None else "")
            out.append(f"`{s}` at {int(n):,} images: {_se(c['change'])} points ({verdict}{bar})")
    return "; ".join(out)


def more_steps_text(conv: dict) -> str:
    """Does augmentation want more steps than the plain recipe? Per size: the gain of the strongest checked
    setting from 1.5x more training minus the plain recipe's gain, paired by seed (mean ± s.e.)."""
    out = []
    for n, per in _by_size(conv).items():
        aug = [s for s in per if s in SETTINGS and s != "none"]
        if "none" not in per or not aug:
            continue
        s = max(aug, key=strength)
        d = ledger.paired(per[s]["change"]["values"], per["none"]["change"]["values"])
        if not ledger.resolved(d):
            word = "no resolved need for more steps than the plain recipe"
        else:
            word = "more steps than the plain recipe" if d["mean"] > 0 else "fewer steps than the plain recipe"
        out.append(f"at {int(n):,} images `{s}` gained {_se(d)} points more than `none` from the longer "
                   f"schedule: {word}")
    return ("**Does augmentation want more steps?** " + "; ".join(out) + ".") if out else ""


def _budget_text(b: dict | None) -> list[str]:
    if not b:
        return ["Claim 4 (larger patch vs smaller model at fixed compute) was not run in this file."]
    f, e = b["flops"], b["epochs"]
    return [f"**Claim 4 at a fixed budget**: the larger-patch model ({f['big'] / 1e6:.2f} MFLOPs per image, "
            f"{e['big']:g} epochs) reached {_pm(b['big'])}%, the smaller model with the smaller patch "
            f"({f['small'] / 1e6:.2f} MFLOPs, {e['small']:.2f} epochs) {_pm(b['small'])}% "
            f"(mean ± s.e.); paired difference {_se(ledger.paired(b['big'], b['small']))} points."]


def _leads_text(acc: dict) -> str:
    """Per size, the setting with the highest mean (`none` included) and its paired lead over the runner-up,
    called a lead only when the evidence rule (`ledger.resolved`) resolves it."""
    out = []
    for n in sorted(acc, key=int):
        mean = lambda v: sum(acc[n][v]) / len(acc[n][v])  # noqa: E731
        first, second = sorted((v for v in acc[n] if v != REG), key=mean, reverse=True)[:2]
        d = ledger.paired(acc[n][first], acc[n][second])
        word = "a resolved lead" if ledger.resolved(d) else "a null: neither is resolved as the better"
        out.append(f"at {int(n):,} images `{first}`, ahead of `{second}` by {ledger.effect_text(d, 2)} "
                   f"points ({word})")
    return "Highest mean setting: " + "; ".join(out) + "."


def results_text(results: dict) -> str:
    """The recorded grid in words and one table (mean ± s.e. over seeds), for the notebook's prose:
    every number here comes from the results file, none is typed by hand."""
    acc, conv = results["accuracy"], results["convergence"]
    sizes = sorted(acc, key=int)
    names = [v for v in list(SETTINGS) + [REG] if any(v in acc[n] for n in sizes)]
    n_seeds = len(acc[sizes[0]]["none"])
    head = "| setting | " + " | ".join(f"n = {int(n):,}" for n in sizes) + " |"
    rows = [head, "|---" * (len(sizes) + 1) + "|"]
    rows += [f"| {v} | " + " | ".join(_pm(acc[n][v]) if v in acc[n] else "–" for n in sizes) + " |"
             for v in names]
    factor = results["provenance"]["config"].get("longer", 1.5)
    return "\n".join([
        f"**The recorded grid** (test accuracy %, mean ± s.e. over {n_seeds} seeds):", "", *rows, "",
        f"{_leads_text(acc)} Convergence check, each checked setting trained "
        f"{factor}x longer minus as recorded (paired by seed, mean ± s.e.): "
        f"{_checks(conv, _guarded_effects(results['comparisons']))}. "
        f"RandAugment(2, 20) ran at {results['randaugment_images_per_s']:,.0f} images/s on one thread.", "",
        more_steps_text(conv), "", *_budget_text(results.get("budget"))])


# ---------------------------------------------------------------- looking inside

def gallery(image: torch.Tensor, magnitudes=(0, 5, 10, 15, 20)) -> dict[str, list[torch.Tensor]]:
    """One uint8 (C, H, W) image under every op (rows) at each magnitude (columns), sign +1."""
    x = image.float()[None] / 255
    return {op: [(apply_op(x, op, m)[0] * 255).round().to(torch.uint8) for m in magnitudes] for op in OPS}


def mixup_pairs(images: torch.Tensor, labels: torch.Tensor, alpha: float, seed: int = 0):
    """Mixed images (uint8) and their soft labels under `data.augment.mixup` with `alpha`."""
    g = torch.Generator().manual_seed(seed)
    y = torch.nn.functional.one_hot(labels, 10).float()
    x, y = mixup(images.float() / 255, y, g, alpha)
    return (x * 255).round().to(torch.uint8), y


# ---------------------------------------------------------------- exercises

def translate_pixels(x: torch.Tensor, m: float, sign: torch.Tensor) -> torch.Tensor:
    """Translate-x as a whole-pixel shift: the paper's 100/224 of the width per 10 levels, rounded to a
    pixel; content moves left for sign +1 (TF's convention) and black enters at the border."""
    width = x.shape[-1]
    shift = round(m / MAX_LEVEL * 100 / 224 * width)
    out = torch.zeros_like(x)
    for i, s in enumerate(sign.tolist()):
        k = int(s) * shift
        if k >= 0:
            out[i, ..., :width - k] = x[i, ..., k:]
        else:
            out[i, ..., -k:] = x[i, ..., :width + k]
    return out


@exercise("augreg.translate_x", apply_op, warp)
def _check_translate(student_op):
    g = torch.Generator().manual_seed(1)
    x, sign = torch.rand(4, 1, 20, 20, generator=g) + 0.1, torch.tensor([1.0, -1.0, 1.0, -1.0])
    for m in (0, 3, 5, 10):  # 0, 3, 4 and 9 pixels on 20: no halves to round
        got, want = student_op(x, m, sign), translate_pixels(x, m, sign)
        if got.shape == want.shape and torch.allclose(got, translate_pixels(x, m, -sign)) and m:
            raise AssertionError("positive sign moves the content left (TF's convention): flip the direction.")
        if m and torch.equal(torch.as_tensor(got), x):
            raise AssertionError(f"at M={m} the image came back unchanged: shift it by the table's pixels.")
        if m and (torch.as_tensor(got) > 0).all():  # every pixel of x is > 0: none came in from outside
            raise AssertionError("pixels that leave must not wrap around: black (0) enters at the border.")
        if got.shape == want.shape and torch.equal(got[1], translate_pixels(x, m, sign.abs())[1]) and m:
            raise AssertionError("the sign is per image: image 1 has sign -1.")
        assert_same(got, want, f"translate_x at M={m}: round(M/10 * 100/224 * width) pixels, black fill")


def mixup_fixed(x: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """mixup with a given lambda and the partner of image i being image i - 1 (a roll by one)."""
    return lam * x + (1 - lam) * x.roll(1, 0), lam * y + (1 - lam) * y.roll(1, 0)


@exercise("augreg.mixup", mixup)
def _check_mixup(student_mixup):
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(5, 1, 4, 4, generator=g), torch.eye(5)
    for lam in (1.0, 0.7, 0.25):
        got_x, got_y = student_mixup(x, y, lam)
        want_x, want_y = mixup_fixed(x, y, lam)
        if lam < 1 and torch.allclose(got_y, y):
            raise AssertionError("the labels were not mixed: mix them with the same lambda as the images.")
        assert_same(got_x, want_x, f"images at lambda={lam}: lam * x + (1 - lam) * x rolled by one")
        assert_same(got_y, want_y, f"labels at lambda={lam}: the same blend of the one-hot labels")


@exercise("augreg.pick_setting", best_setting)
def _check_pick(student_pick):
    made_up = {"accuracy": {"100": {"none": [60.0, 61.0], "light2": [62.0, 58.0], "medium2": [61.0, 61.5],
                                    REG: [70.0, 70.0]},
                            "1000": {"none": [90.0, 90.0], "light1": [80.0, 81.0], "strong2": [79.0, 80.0]}}}
    recorded = ledger.load_results(CHAPTER, "standard")
    for res in (made_up, recorded) if recorded else (made_up,):
        _check_picks(student_pick, res)


def _check_picks(student_pick, res: dict) -> None:
    for n, per in res["accuracy"].items():
        want = best_setting(per)
        got = student_pick(res, int(n))
        if got != want:
            raise AssertionError(f"for n={n} you picked {got!r}; the grid's best mean accuracy among "
                                 f"the augmentation settings (not 'none', not '{REG}') is {want!r}.")
