"""Chapter 10, the capstone: every technique of the book on one model, measured on one set of axes.

Each earlier chapter reproduces one paper on its own model, data size and metric. Here one small ViT on one
Fashion-MNIST subset takes every technique as a switch (`models.combined.Recipe`), alone, in chosen pairs, and
all together; every model is trained the same way to the same budget and measured the same way: test accuracy
over seeds, parameters, stored bytes (the deployed file, `measure.saved_bytes`), operations per image and CPU
latency at batch 1 and 64. From these: the Pareto fronts (`fronts`), the composition of pairs (each pair's
interaction, paired per seed: pair - A - B + ViT), where latency does not follow the operation count, and the
papers' own headline trade-offs beside ours.

The pipeline of one model (`train_cell`): the recipe's model; its training (hard distillation from the CNN
teacher when `distill`; CE + lambda * sum |a| with VTP's gates when it prunes; AugReg's augmentation when
`augreg`); when it prunes, the global masks at the ratio, the slim model and its fine-tuning (quantisation-aware
with ternary weights swapped in then, when the recipe is also ternary: prune, then quantise).
"""
from __future__ import annotations

import functools
import io
import statistics
import time
from dataclasses import dataclass, field, replace

import torch

from .. import ledger, measure
from ..data import Augment, ImageData, image_prepare, load_subset, prepared
from ..data.randaugment import setting
from ..errors import IngurError
from ..experiment import Experiment, best_of, sweep_bracketed
from ..exercises import exercise
from ..figures import figure
from ..fronts import front
from ..models.binaryvit import BinaryViT, count_ops
from ..models.cnn import CNNConfig, ResNet
from ..models.combined import Recipe, build, ternary_linears
from ..models.vit import ViTConfig
from ..nn import prune
from ..nn.distill import distillation_loss
from ..pool import default_workers, run_jobs
from ..profiles import pick
from ..runtime import config_dict, seed_everything
from ..train import TrainConfig, fit

CHAPTER = "10_capstone"
PRUNE = 0.4  # VTP's ratio: the share of attention-input and MLP-hidden dimensions removed

# The grid: the plain ViT, each technique alone, the planned pairs, and everything at once.
RECIPES = {
    "ViT": Recipe(),
    "SPT+LSA": Recipe(spt_lsa=True),
    "LS+CA": Recipe(cait=True),
    "AugReg": Recipe(augreg=True),
    "distill": Recipe(distill=True),
    "VTP": Recipe(prune=PRUNE),
    "ternary": Recipe(weights="ternary"),
    "binary": Recipe(weights="binary"),
    "distill+VTP": Recipe(distill=True, prune=PRUNE),
    "SPT+LSA+ternary": Recipe(spt_lsa=True, weights="ternary"),
    "AugReg+distill": Recipe(augreg=True, distill=True),
    "distill+binary": Recipe(distill=True, weights="binary"),
    "all": Recipe(spt_lsa=True, cait=True, augreg=True, distill=True, prune=PRUNE, weights="ternary"),
}
SINGLES = ("SPT+LSA", "LS+CA", "AugReg", "distill", "VTP", "ternary", "binary")
# Each planned pair and its two parts: does the pair's gain equal the sum of its parts' gains?
PAIRS = {"distill+VTP": ("distill", "VTP"), "SPT+LSA+ternary": ("SPT+LSA", "ternary"),
         "AugReg+distill": ("AugReg", "distill"),
         "distill+binary": ("distill", "binary")}
BASELINE = "ViT"
# The learning rate each model trains at: the swept rate of its family's representative.
FAMILIES = {"float": "ViT", "ternary": "ternary", "binary": "binary"}


def family(recipe: Recipe) -> str:
    """Which tuned rate a recipe trains at: binary, ternary from the start, or float (a pruned ternary model
    trains as a float model first, then fine-tunes quantisation-aware)."""
    return "binary" if recipe.weights == "binary" else "ternary" if recipe.weights == "ternary" and not recipe.prune \
        else "float"


@dataclass
class Config:
    model: ViTConfig
    train: TrainConfig                 # every model's budget and recipe; lr is the float ViT's unless swept
    finetune: TrainConfig              # VTP's fine-tuning of each slim model
    teacher: CNNConfig
    teacher_train: TrainConfig
    cells: tuple[str, ...] = tuple(RECIPES)
    seeds: tuple[int, ...] = (0,)
    lrs: dict = field(default_factory=lambda: {"float": 2e-3, "ternary": 2e-3, "binary": 4e-3})
    sweep: dict = field(default_factory=dict)  # family -> rates its representative trains at (first seed)
    checked: tuple[str, ...] = ()      # the convergence check: these cells trained `factor` x longer
    factor: float = 1.5
    check_seeds: int = 3
    lam: float = 5e-4                  # VTP's L1 weight
    gate_gain: float = 10.0            # VTP's score learning-rate multiplier (prune.DimGate)
    augment: Augment = field(default_factory=lambda: Augment(crop_padding=1, flip=True))
    augreg: str = "light2"             # the AugReg setting of `augreg` recipes (RandAugment + Mixup)
    alpha: float = 0.5                 # hard distillation's weight
    n_train: int | None = 5000
    n_test: int | None = None
    dataset: str = "fashion_mnist"
    workers: int | None = None         # None: one per core (`pool.default_workers`)
    latency_batches: tuple[int, ...] = (1, 64)
    latency_rounds: int = 5

    def __post_init__(self):
        unknown = (set(self.cells) | set(self.checked)) - set(RECIPES)
        if unknown:
            raise IngurError(f"Unknown capstone cells {sorted(unknown)}: use names of RECIPES ({', '.join(RECIPES)}).")
        if BASELINE not in self.cells:
            raise IngurError(f"cells must include {BASELINE!r}: every effect is measured against the plain ViT.")


_MODEL = ViTConfig(patch_size=7, dim=32, depth=4, heads=2, mlp_ratio=2.0)
_TEACHER = CNNConfig(widths=(16, 32, 64), stem_stride=2)
CONFIGS = {
    # smoke: a few cells for a few epochs on 2,000 images, two seeds (an effect needs two): the code path
    "smoke": Config(_MODEL, TrainConfig(epochs=6, batch_size=128, lr=3e-3, warmup_epochs=0.5, eval_every=10 ** 6),
                    TrainConfig(epochs=1, batch_size=128, lr=5e-4, warmup_epochs=0.1, eval_every=10 ** 6),
                    _TEACHER, TrainConfig(epochs=4, batch_size=128, lr=3e-3, warmup_epochs=0.5),
                    cells=("ViT", "distill", "VTP", "ternary", "binary", "distill+VTP"), seeds=(0, 1),
                    n_train=2000, n_test=1000, workers=1, latency_rounds=2),
    # standard: the whole grid, 3 seeds, 60 epochs of 5,000 images for every model (2,350 steps of 128);
    # each family's rate swept on seed 0 (binary from 08's tuned 1.6e-2 down), extended once past a winning
    # edge; the plain ViT and the two most compressed models (ternary: the smallest file; binary: the fewest
    # operations) trained 1.5x longer on 3 seeds. Estimated ~50 min on 2 cores (two one-thread workers).
    "standard": Config(_MODEL, TrainConfig(epochs=60, batch_size=128, lr=2e-3, warmup_epochs=3, eval_every=10 ** 6),
                       TrainConfig(epochs=10, batch_size=128, lr=5e-4, warmup_epochs=1, eval_every=10 ** 6),
                       _TEACHER, TrainConfig(epochs=40, batch_size=128, lr=3e-3, warmup_epochs=2, eval_every=10 ** 6),
                       seeds=(0, 1, 2), checked=("ViT", "ternary", "binary"),
                       sweep={"float": (1e-3, 2e-3, 4e-3), "ternary": (2e-3, 4e-3, 8e-3),
                              "binary": (4e-3, 8e-3, 1.6e-2)}),
    # full: CIFAR-10 (the Hub) with a ViT-Ti-like model, through the same code on a GPU; not recorded on CPU
    "full": Config(ViTConfig(image_size=32, patch_size=4, in_chans=3, dim=192, depth=12, heads=3, mlp_ratio=4.0),
                   TrainConfig(epochs=100, batch_size=256, lr=1e-3, warmup_epochs=5, eval_every=10),
                   TrainConfig(epochs=20, batch_size=256, lr=2e-4, warmup_epochs=2),
                   CNNConfig(widths=(64, 128, 256), stem_stride=1), TrainConfig(epochs=60, batch_size=256, lr=1e-3),
                   seeds=(0, 1, 2), lrs={"float": 1e-3, "ternary": 1.5e-3, "binary": 1e-3},
                   augment=Augment(crop_padding=4, flip=True), n_train=None, dataset="cifar10",
                   checked=("ViT", "all"), workers=1),
}


def config(profile: str | None = None) -> Config:
    return pick(CONFIGS, profile)


# ---------------------------------------------------------------- data, models, the pipeline of one cell

def load_data(cfg: Config, verbose: bool = False) -> ImageData:
    """One class-balanced subset for every model and seed (seeds vary the initialisation and the batches)."""
    return load_subset(cfg.dataset, cfg.n_train, cfg.n_test, seed=0, verbose=verbose)


def sized(cfg: Config, data: ImageData) -> ViTConfig:
    c, h, _ = data.image_shape
    return replace(cfg.model, in_chans=c, image_size=h, num_classes=data.num_classes)


def augment(cfg: Config, recipe: Recipe) -> Augment:
    """The base crops and flips, plus AugReg's RandAugment and Mixup for an `augreg` recipe."""
    if not recipe.augreg:
        return cfg.augment
    layers, magnitude, alpha = setting(cfg.augreg)
    return replace(cfg.augment, randaug_layers=layers, randaug_magnitude=magnitude, mixup=alpha)


def train_teacher(cfg: Config, data: ImageData, progress: bool = False) -> dict:
    """The CNN teacher of every distilled model, trained once (seed 0) on the students' images."""
    seed_everything(0)
    c, _, _ = data.image_shape
    model = ResNet(replace(cfg.teacher, in_chans=c, num_classes=data.num_classes))
    t0 = time.perf_counter()
    hist = fit(model, (data.train_x, data.train_y), (data.test_x, data.test_y), cfg.teacher_train,
               prepare=image_prepare(data.mean, data.std, cfg.augment, data.num_classes), progress=progress,
               desc="CNN teacher")
    return {"state": pack(model.cpu()), "test_acc": 100 * hist.last("test_acc"),
            "seconds": time.perf_counter() - t0, "params": measure.count_params(model)}


def pack(model: torch.nn.Module) -> bytes:
    """A whole model as bytes, to cross from a worker process (the slim models' shapes travel with it)."""
    buf = io.BytesIO()
    torch.save(model, buf)
    return buf.getvalue()


def unpack(data: bytes) -> torch.nn.Module:
    """A model `pack` wrote in this run (our own bytes, never a file from elsewhere)."""
    return torch.load(io.BytesIO(data), weights_only=False)


def ops_per_image(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Operations per image, 08's convention: multiply-adds, each binary one counted 1/64 (BOPs / 64); a ternary
    multiply-add counts as one (it is an addition, but no paper of the book discounts it)."""
    if isinstance(model, BinaryViT):
        return count_ops(model, x)["ops"]
    return measure.count_flops(model, x) / 2 / len(x)


def _fit(model, data, prepare, tc, loss_fn, extra_loss, desc):
    return fit(model, (data.train_x, data.train_y), (data.test_x, data.test_y), tc, prepare=prepare,
               loss_fn=loss_fn, extra_loss=extra_loss, progress=False, desc=desc)


def train_cell(profile: str, teacher: bytes | None, lrs: dict, name: str, seed: int, factor: float,
               lr: float | None = None, keep: bool | None = None) -> dict:
    """Train the grid's model `name` with `seed` for `factor` x the budget (at `lr`, else its family's rate
    in `lrs`) and measure it: test accuracy (%), training seconds, parameters, stored bytes, operations per
    image; `keep` (default: runs at 1x) also returns the model, packed, for the latency runs."""
    cfg, recipe = config(profile), RECIPES[name]
    data = load_data(cfg)
    seed_everything(seed)
    model = build(recipe, sized(cfg, data))
    if recipe.weights == "ternary" and not recipe.prune:
        ternary_linears(model)
    if recipe.prune:
        prune.add_gates(model, cfg.gate_gain)
    prepare = image_prepare(data.mean, data.std, augment(cfg, recipe), data.num_classes)
    loss_fn = (distillation_loss(unpack(teacher), "hard", cfg.alpha, label_smoothing=cfg.train.label_smoothing)
               if recipe.distill else None)
    tc = replace(cfg.train, seed=seed, lr=lr or lrs[family(recipe)], epochs=cfg.train.epochs * factor)
    t0 = time.perf_counter()
    hist = _fit(model, data, prepare, tc, loss_fn, prune.l1_penalty(cfg.lam) if recipe.prune else None, name)
    if recipe.prune:  # VTP's steps 2-3: global masks, the slim model, fine-tuning (quantisation-aware if ternary)
        model = prune.slim(model.cpu(), prune.global_masks(prune.scores(model), recipe.prune))
        if recipe.weights == "ternary":
            ternary_linears(model)
        ft = replace(cfg.finetune, seed=seed, epochs=cfg.finetune.epochs * factor)
        hist = _fit(model, data, prepare, ft, loss_fn, None, f"{name}, fine-tune")
    seconds = time.perf_counter() - t0
    model = model.cpu().eval()
    x = prepared(prepare, data.test_x[:1])
    keep = factor == 1.0 if keep is None else keep
    return {"metric": 100 * hist.last("test_acc"), "seconds": seconds, "params": measure.count_params(model),
            "bytes": measure.saved_bytes(model), "ops": ops_per_image(model, x),
            **({"model": pack(model)} if keep else {})}


# ---------------------------------------------------------------- the standard run

def _cost(cfg: Config):
    """A cell's relative training cost (dearest first keeps both workers busy to the end)."""
    def cost(name: str, factor: float) -> float:
        r = RECIPES[name]
        return factor * (1 + 0.6 * (r.weights != "float") + 0.4 * r.distill + 0.2 * bool(r.prune) + 0.2 * r.spt_lsa)
    return cost


def tune(cfg: Config, profile: str, teacher: bytes, seed: int, workers: int) -> tuple[dict, dict, dict]:
    """Each family's rate: its representative (`FAMILIES`) on `seed` at every rate of `cfg.sweep` (in
    parallel), extended once beyond a winning edge (`experiment.sweep_bracketed`). Returns the rates, the
    sweeps, and the winning runs by (cell, seed, 1.0), which the grid reuses rather than trains again."""
    lrs = dict(cfg.lrs)
    fams = [f for f in cfg.sweep if FAMILIES[f] in cfg.cells]
    jobs = [(FAMILIES[f], seed, 1.0, lr, True) for f in fams for lr in cfg.sweep[f]]
    train = functools.partial(train_cell, profile, teacher, lrs)
    done = {(j[0], j[3]): o for j, o in zip(jobs, run_jobs(train, jobs, workers, [1.0] * len(jobs)))}
    sweeps, reuse = {}, {}
    for f in fams:
        cell = FAMILIES[f]

        def score(lr, cell=cell):
            if (cell, lr) not in done:
                done[cell, lr] = train(cell, seed, 1.0, lr, True)
            return done[cell, lr]["metric"]
        sweeps[f] = sweep_bracketed(score, cfg.sweep[f], most=1)
        lrs[f] = best_of(sweeps[f])
        reuse[cell, seed, 1.0] = done[cell, lrs[f]]
    return lrs, sweeps, reuse


@dataclass
class Reusing:
    """`train(name, seed, factor)`, except for the runs in `done` (the sweep's winners, same rate and seed)."""
    train: functools.partial
    done: dict

    def __call__(self, name: str, seed: int, factor: float) -> dict:
        return self.done.get((name, seed, factor)) or self.train(name, seed, factor)


def effects(cells) -> dict:
    """The compared effects: each single technique and each pair against the ViT, and each pair's interaction
    (pair - A - B + ViT, per seed: 0 when the pair's gain is the sum of its parts')."""
    out = {f"{n} vs ViT": (n, BASELINE) for n in cells if n != BASELINE}
    for pair, (a, b) in PAIRS.items():
        if {pair, a, b} <= set(cells):
            out[f"{pair}: interaction"] = {pair: 1, a: -1, b: -1, BASELINE: 1}
    return out


def experiment(cfg: Config, profile: str, teacher: bytes, lrs: dict, seeds, workers: int,
               reuse: dict | None = None) -> Experiment:
    train = Reusing(functools.partial(train_cell, profile, teacher, lrs), reuse or {})
    return Experiment(CHAPTER, train, variants=tuple(cfg.cells),
                      seeds=tuple(seeds), effects=effects(cfg.cells), checked=cfg.checked,
                      check_seeds=min(cfg.check_seeds, len(seeds)), factor=cfg.factor, workers=workers,
                      cost=_cost(cfg))


@torch.no_grad()
def latencies(models: dict[str, torch.nn.Module], x: torch.Tensor, batches, rounds: int) -> dict:
    """Milliseconds per forward pass of each model at each batch size (`measure.alternated`: rounds in
    alternating order, medians), the low-bit models also on the int8 kernel (`nn.int_infer.to_int`)."""
    from ..nn.int_infer import to_int
    fns = {}
    for name, m in models.items():
        fns[name] = m.eval()
        if any(hasattr(mod, "packed_weight_bytes") for mod in m.modules()):
            fns[f"{name} (int8)"] = to_int(m)
    out = {}
    for b in batches:
        xb = x[:b]
        times = measure.alternated({k: functools.partial(m, xb) for k, m in fns.items()}, rounds)
        out[str(b)] = {k: 1000 * statistics.median(v) for k, v in times.items()}
    return {"threads": torch.get_num_threads(), "rounds": rounds, "ms": out}


def reproduce(profile: str = "standard", seeds=None, progress: bool = True) -> str:
    """The teacher, the rate sweeps, the grid (cells x seeds) and its convergence check, the latency runs of
    the first seed's models; recorded with provenance."""
    t0 = time.perf_counter()
    cfg = config(profile)
    seeds = tuple(seeds or cfg.seeds)
    workers = cfg.workers or default_workers()
    data = load_data(cfg)
    teacher = train_teacher(cfg, data, progress)
    lrs, sweeps, reuse = tune(cfg, profile, teacher["state"], seeds[0], workers)
    exp = experiment(cfg, profile, teacher["state"], lrs, seeds, workers, reuse)
    out = exp.run()
    details = out.pop("details")
    prepare = image_prepare(data.mean, data.std, None, data.num_classes)
    models = {n: unpack(d[0]["model"]) for n, d in details.items()}
    timing = latencies(models, prepared(prepare, data.test_x[:max(cfg.latency_batches)]), cfg.latency_batches,
                       cfg.latency_rounds)
    cells = {n: {"recipe": RECIPES[n].to_dict(), "family": family(RECIPES[n]),
                 **{k: ledger.summarize([d[k] for d in ds]) for k in ("seconds", "params", "bytes", "ops")}}
             for n, ds in details.items()}
    extra = {"cells": cells, "latency": timing, "lrs": lrs, "sweeps": sweeps,
             "teacher": {k: v for k, v in teacher.items() if k != "state"}}
    dataset = {"name": data.name, "source": data.source, "splits": data.splits()}
    path = exp.record(profile, out, time.perf_counter() - t0, dataset=dataset, config=config_dict(cfg), extra=extra)
    return str(path)
