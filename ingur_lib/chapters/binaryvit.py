"""Chapter 08 [1], BinaryViT: 1-bit weights and activations, and what brings the accuracy back.

The paper (Le & Li 2023) binarises DeiT and climbs an ablation ladder (its Table 3): binary DeiT, +GAP,
+multi-pooling branches, +affine before the residuals, +pyramid. Every binary model learns by pure
distillation from a full-precision teacher. The mechanism lives in `ingur_lib.nn.binary` (binary linear,
Bi-Real sign, binary attention, 1-bit packing, XNOR-popcount); the switches in `ingur_lib.models.binaryvit`.

`run(profile, seed)` is what the notebook calls; `reproduce(profile, seeds)` writes
data/results/08_binaryvit/<profile>.json. Both use the same configs and code.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace

import torch

from .. import ledger, measure
from ..data import ImageData, example_images, image_prepare, prepared, load_subset
from ..errors import IngurError
from ..exercises import assert_same, exercise
from ..experiment import longer_check
from ..figures import figure, paired_intervals
from ..models.binaryvit import BinaryAttention, BinaryBlock, BinaryViT, BinaryViTConfig, count_ops
from ..nn.attention import attention_weights
from ..nn.binary import BinaryLinear, bireal_sign, pack_bits
from ..nn.distill import distillation_loss
from ..pool import default_workers, pack_state, run_jobs, unpack_state
from ..profiles import pick
from ..runtime import provenance, seed_everything
from ..train import History, TrainConfig, fit, predict
from ..viz import TEXT_WIDTH_IN, bar_with_errors, curves_with_errors, legend_outside, overlaid_histograms, paired_gains

CHAPTER, PAPER = "08_binaryvit", "binaryvit"
TEACHER = "FP teacher"
LONGER = 1.5  # the convergence check: a checked model retrained this many times the steps
# The ladder of the paper's Table 3: each rung adds its switch to the one before.
RUNGS = {"binary DeiT": {}, "+GAP": {"pool": "mean"}, "+multi-pool": {"multi_pool": True},
         "+affine": {"affine": True}, "+pyramid": {"pyramid": True}}
# Where binarisation hurts: the last rung with only one part binary.
COMPONENTS = {"MLP only binary": {"binary_attention": False}, "attention only binary": {"binary_mlp": False}}


@dataclass
class Config:
    model: BinaryViTConfig
    pyramid: tuple[tuple[int, ...], tuple[int, ...], int]  # (dims, depths, patch) of the 4-stage rung
    steps: int                    # optimizer steps of every student
    teacher_steps: int
    n_train: int = 5000
    n_test: int | None = 2000
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 64
    lr: float = 2e-3              # the students' learning rate
    teacher_lr: float | None = None  # the teacher's (None: lr)
    components: bool = False      # also train COMPONENTS
    convergence: bool = False     # also train the `converge` models 1.5x longer
    # model -> on how many of the first seeds it is retrained 1.5x longer (the noisier a model across seeds,
    # the more seeds its check needs: the check compares the seed mean of the paired change)
    converge: dict[str, int] = field(default_factory=lambda: {TEACHER: 1, "binary DeiT": 1})
    lr_check: tuple[float, ...] = ()  # also train the `lr_checked` models at these multiples of their rate
    lr_checked: dict[str, int] = field(default_factory=lambda: {TEACHER: 1, "binary DeiT": 1})  # model -> seeds
    dataset: str = "fashion_mnist"
    workers: int | None = 1       # processes `reproduce` spreads the runs over (None: one per CPU core)
    compile: bool = False         # torch.compile the training steps (`TrainConfig.compile`): long runs only

    def __post_init__(self):
        for what, models in (("converge", self.converge), ("lr_checked", self.lr_checked)):
            unknown = [n for n in models if n not in (TEACHER, *RUNGS)]
            if unknown:
                raise IngurError(f"{what}={unknown} names no model: use {TEACHER!r} or a rung of {list(RUNGS)}.")
            if any(not 1 <= k <= len(self.seeds) for k in models.values()):
                raise IngurError(f"{what}={models} asks for more seeds than the {len(self.seeds)} the run trains: "
                                 "give each model between 1 and len(seeds).")

    def train_config(self, steps: int, seed: int, teacher: bool = False) -> TrainConfig:
        epochs = steps * self.batch_size / self.n_train
        lr = self.teacher_lr if teacher and self.teacher_lr else self.lr
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=lr, warmup_epochs=0.05 * epochs,
                           weight_decay=0.0, seed=seed, eval_every=10 ** 6, fused=True,
                           compile=self.compile)


# Patch 7 (a 4x4 grid) as DeiT's coarse 16-px patches; the pyramid starts finer (patch 4, a 7x7 grid), as the
# paper's does (patch 4 on 224 px), and merges to 4x4, 2x2, 1x1.
_TINY = BinaryViTConfig(patch_size=7, dims=(32,), depths=(4,), heads=2)
_PYRAMID = ((16, 24, 32, 48), (1, 1, 1, 1), 4)
CONFIGS = {
    "smoke": Config(_TINY, _PYRAMID, steps=40, teacher_steps=40, n_train=2000, n_test=1000),
    # the standard run also records a 1.5x convergence check of the two baselines (the teacher and binary DeiT,
    # each on the first three seeds) and a learning-rate check (x0.5, x2, x4) of the teacher (three seeds) and
    # binary DeiT (two), compared as seed means and paired with the rate used; the components are left to
    # `full`. The runs are spread over one-thread worker processes (`ingur_lib.pool`, ~1.6x the steps per second
    # of one two-thread process on 2 cores) and torch.compile'd (a step ~0.5x as long; ~20-40 s of compiling per
    # model and worker, the first time). Record on a quiet machine: 43 min on 2 cores (the ladder alone, five
    # seeds at 7,290 steps, is ~27; the two workers slow each other by a varying amount).
    # How this setting was chosen (every recording and probe): data/results/08_binaryvit/history.md.
    "standard": Config(_TINY, _PYRAMID, steps=7290, teacher_steps=1920, n_train=8000, n_test=None,
                       seeds=(0, 1, 2, 3, 4), batch_size=128, lr=1.6e-2, teacher_lr=1.6e-2, convergence=True,
                       converge={TEACHER: 3, "binary DeiT": 3}, lr_check=(0.5, 2.0, 4.0),
                       lr_checked={TEACHER: 3, "binary DeiT": 2}, workers=None, compile=True),
    # 4 heads, not DeiT-Ti's 3 or 6: the heads must divide every width of the pyramid rung (64..512), which the
    # dry run found (heads=6 stopped the +pyramid rung)
    "full": Config(BinaryViTConfig(image_size=32, in_chans=3, dims=(192,), depths=(12,), heads=4),
                   ((64, 128, 256, 512), (1, 1, 9, 1), 4), steps=50_000, teacher_steps=50_000, n_train=50_000,
                   n_test=None, seeds=(0, 1, 2), lr=5e-4, components=True, convergence=True, dataset="cifar10"),
}


def config(profile: str | None = None) -> Config:
    return pick(CONFIGS, profile)


def model_config(cfg: Config, name: str, data: ImageData) -> BinaryViTConfig:
    """The BinaryViTConfig of a rung (switches of every rung up to it), component, or the teacher."""
    c, h, _ = data.image_shape
    m = replace(cfg.model, in_chans=c, image_size=h, num_classes=data.num_classes)
    if name == TEACHER:
        return replace(m, binary=False)
    switches = {}
    for rung, s in RUNGS.items():
        switches.update(s)
        if rung == name:
            break
    if name in COMPONENTS:
        switches = {k: v for s in RUNGS.values() for k, v in s.items()} | COMPONENTS[name]
    if switches.pop("pyramid", False):
        switches.update(dims=cfg.pyramid[0], depths=cfg.pyramid[1], patch_size=cfg.pyramid[2])
    return replace(m, **switches)


@dataclass
class Run:
    name: str
    model: BinaryViT
    history: History
    prepare: object
    test_acc: float
    seconds: float


def load_data(cfg: Config, seed: int = 0) -> ImageData:
    return load_subset(cfg.dataset, cfg.n_train, cfg.n_test, seed)


def train(cfg: Config, name: str, data: ImageData, seed: int = 0, teacher: BinaryViT | None = None,
          steps: int | None = None, progress: bool = True) -> Run:
    """The teacher learns from labels; every binary model by pure distillation (KL to the teacher, tau 1)."""
    seed_everything(seed)
    model = BinaryViT(model_config(cfg, name, data))
    prepare = image_prepare(data.mean, data.std, None, data.num_classes)
    steps = steps or (cfg.teacher_steps if name == TEACHER else cfg.steps)
    t0 = time.perf_counter()
    train_set, loss = (data.train_x, data.train_y), None
    if name != TEACHER:
        # no augmentation: the teacher's logits of an image are the same at every visit, so they are computed
        # once and ride in the batch (a teacher forward pass saved per step, ~12% of a binary DeiT step)
        train_set += (predict(teacher, data.train_x, prepare),)
        loss = distillation_loss(None, "soft", alpha=1.0, tau=1.0, precomputed=True)
    tc = cfg.train_config(steps, seed, teacher=name == TEACHER)
    hist = fit(model, train_set, (data.test_x, data.test_y), tc, prepare=prepare, loss_fn=loss,
               progress=progress, desc=name)
    return Run(name, model, hist, prepare, hist.last("test_acc"), time.perf_counter() - t0)


def run(profile: str | None = None, seed: int = 0, data: ImageData | None = None, names=tuple(RUNGS),
        progress: bool = True) -> dict[str, Run]:
    """The teacher, then each named rung distilled from it."""
    cfg = config(profile)
    data = data or load_data(cfg, seed)
    runs = {TEACHER: train(cfg, TEACHER, data, seed, progress=progress)}
    for n in names:
        runs[n] = train(cfg, n, data, seed, runs[TEACHER].model, progress=progress)
    return runs


# ---------------------------------------------------------------- cost

def cost(cfg: Config, data: ImageData) -> dict[str, dict]:
    """Per rung (and the teacher): parameters, BOPs, FLOPs, OPs = BOPs/64 + FLOPs, fp32 / packed size."""
    out, x = {}, torch.zeros(1, *data.image_shape)
    for name in (TEACHER, *RUNGS):
        torch.manual_seed(0)
        m = BinaryViT(model_config(cfg, name, data))
        size = measure.storage_bytes(m)
        binary = sum(b.packed_weight_bytes() for b in m.modules() if isinstance(b, BinaryLinear))
        out[name] = {**count_ops(m, x), "params": measure.count_params(m), "fp32_bytes": size["float32"],
                     "packed_bytes": size["packed"], "size_ratio": size["float32"] / size["packed"],
                     # the binary layers alone: 1 bit per weight plus a float alpha per row
                     "binary_layers_ratio": 4 * size["low_bit_params"] / binary if binary else 1.0}
    return out


# ---------------------------------------------------------------- looking inside

@torch.no_grad()
def attention_received(run: Run, images: torch.Tensor) -> list[torch.Tensor]:
    """Per layer of the first stage: (B, N) attention each patch receives, averaged over heads and queries."""
    maps = attention_weights(run.model, prepared(run.prepare, images))
    n = run.model.grid ** 2
    return [m[..., -n:].mean((1, 2)) for m in maps if m.shape[-1] >= n]


@torch.no_grad()
def pre_sign_values(run: Run, images: torch.Tensor) -> dict[str, list[float]]:
    """Latent weights and the inputs to the sign (after the shift) of every BinaryLinear, pooled, sampled."""
    run.model.eval()
    acts, hooks = [], [m.register_forward_hook(lambda m, i, o: acts.append(m.shift(i[0]).flatten()))
                       for m in run.model.modules() if isinstance(m, BinaryLinear)]
    run.model(run.prepare((images, None), False, None)[0])
    for h in hooks:
        h.remove()
    w = torch.cat([m.weight.flatten() - m.weight.mean() for m in run.model.modules() if isinstance(m, BinaryLinear)])
    g = torch.Generator().manual_seed(0)
    pick_ = lambda t: t[torch.randperm(len(t), generator=g)[:4000]].tolist()  # noqa: E731
    return {"latent weights (row-centred)": pick_(w), "activations before sign": pick_(torch.cat(acts))}


def learned_scales(model: BinaryViT) -> dict[str, list[float]]:
    """Per block: mean |a| of the affine before each residual, attention alpha * N, mean |shift| of fc1."""
    blocks = [b for b in model.modules() if isinstance(b, BinaryBlock)]
    out = {"affine attn |a|": [], "affine MLP |a|": [], "alpha x N": [], "fc1 |shift|": []}
    for b in blocks:
        if hasattr(b.aff1, "a"):
            out["affine attn |a|"].append(b.aff1.a.abs().mean().item())
            out["affine MLP |a|"].append(b.aff2.a.abs().mean().item())
        if isinstance(b.attn, BinaryAttention) and b.attn.alpha is not None:
            out["alpha x N"].append(b.attn.alpha.item() * b.attn.alpha_tokens)
        if isinstance(b.fc1, BinaryLinear):
            out["fc1 |shift|"].append(b.fc1.shift.bias.abs().mean().item())
    return {k: v for k, v in out.items() if v}


# ---------------------------------------------------------------- reproduce

def _paired(acc: dict, a: str, b: str) -> dict:
    """Per-seed difference acc[a] - acc[b] (same seed, same data, same teacher), summarised."""
    return ledger.paired(acc[a], acc[b])


@dataclass
class _Job:
    """One training run of `reproduce`: `what` is "main", "1.5x" (the convergence check) or a learning rate."""
    what: str
    name: str
    seed: int
    steps: int
    cfg: Config


def _plan(cfg: Config, seeds) -> list[_Job]:
    """Every training run of a recording, seed by seed: the teacher and each model, the 1.5x runs of the
    `converge` models, the `lr_checked` models at each `lr_check` multiple of their rate."""
    names = (TEACHER, *RUNGS, *(COMPONENTS if cfg.components else ()))
    steps = lambda n: cfg.teacher_steps if n == TEACHER else cfg.steps  # noqa: E731
    jobs = []
    for i, seed in enumerate(seeds):
        jobs += [_Job("main", n, seed, steps(n), cfg) for n in names]
        if cfg.convergence:
            jobs += [_Job("1.5x", n, seed, int(LONGER * steps(n)), cfg) for n in _checked_on(cfg.converge, i)]
        for n in _checked_on(cfg.lr_checked, i) if cfg.lr_check else ():
            base = _lr(cfg, n)
            jobs += [_Job(f"{f * base:g}", n, seed, steps(n), replace(cfg, lr=f * base, teacher_lr=f * base))
                     for f in cfg.lr_check]
    return jobs


def _workers(cfg: Config) -> int:
    return cfg.workers or default_workers()


def _lr(cfg: Config, name: str) -> float:
    return (cfg.teacher_lr or cfg.lr) if name == TEACHER else cfg.lr


# Relative cost of a compiled step (ms per step on one thread: teacher 12, binary DeiT 15, +GAP 13, +multi-pool 14,
# +affine 16.5, +pyramid 20), so that the longest runs start first.
_STEP_COST = {TEACHER: 0.8, "+GAP": 0.9, "+affine": 1.1, "+pyramid": 1.35}


def _run_plan(jobs: list[_Job], workers: int, progress: bool, teachers: dict | None = None) -> list[dict]:
    """Run `jobs` on `workers` processes (teachers[seed]: the state of that seed's teacher, for students)."""
    args = [(j.cfg, j.name, j.seed, j.steps, (teachers or {}).get(j.seed), j.what == "main") for j in jobs]
    cost = [j.steps * _STEP_COST.get(j.name, 1.0) for j in jobs]

    def done(i, out):
        if progress:
            j = jobs[i]
            print(f"{j.name} (seed {j.seed}, {j.what}, {j.steps} steps): {out['acc']:.2f}% in {out['seconds']:.0f} s",
                  flush=True)
    return run_jobs(_job, args, workers, cost, done)


@functools.lru_cache(maxsize=2)
def _data(dataset: str, n_train: int, n_test: int | None, seed: int) -> ImageData:
    """A worker trains several models on one seed's data: load it once, quietly (the parent says the source)."""
    return load_subset(dataset, n_train, n_test, seed, verbose=False)


def _job(cfg: Config, name: str, seed: int, steps: int, teacher_state: bytes | None, keep: bool) -> dict:
    """One training run in a worker: test accuracy (%), history, seconds, and the trained state if `keep`."""
    data = _data(cfg.dataset, cfg.n_train, cfg.n_test, seed)
    teacher = None
    if teacher_state is not None:
        teacher = BinaryViT(model_config(cfg, TEACHER, data))
        teacher.load_state_dict(unpack_state(teacher_state))
    r = train(cfg, name, data, seed, teacher, steps, progress=False)
    return {"acc": 100 * r.test_acc, "history": r.history.to_dict(), "seconds": r.seconds,
            "state": pack_state(r.model) if keep else None}


def _train_all(cfg: Config, seeds, progress: bool):
    """Accuracy (%) per model over seeds; the first seed's runs (for looking inside); convergence; rate check.
    The teachers train first (every student distils from its seed's teacher), then all the students."""
    jobs, workers = _plan(cfg, seeds), _workers(cfg)
    teach = [i for i, j in enumerate(jobs) if j.name == TEACHER]
    rest = [i for i, j in enumerate(jobs) if j.name != TEACHER]
    out = dict(zip(teach, _run_plan([jobs[i] for i in teach], workers, progress)))
    teachers = {jobs[i].seed: out[i]["state"] for i in teach if jobs[i].what == "main"}
    out.update(zip(rest, _run_plan([jobs[i] for i in rest], workers, progress, teachers)))
    return _assemble(jobs, [out[i] for i in range(len(jobs))], cfg, seeds[0])


def _assemble(jobs: list[_Job], outs: list[dict], cfg: Config, first_seed: int):
    """The runs' results as `reproduce` records them: accuracy {model: [% per seed]}; the first seed's Runs;
    convergence {model: an `experiment.longer_check` record and its steps}; rate check {model: {rate: [% per
    seed]}}."""
    main = {(j.name, j.seed): o for j, o in zip(jobs, outs) if j.what == "main"}
    acc, first, conv, lrs, rate_checked = {}, {}, {}, {}, set()
    for (name, seed), o in main.items():
        acc.setdefault(name, []).append(o["acc"])
        if seed == first_seed:
            first[name] = _as_run(cfg, name, seed, o)
    for j, o in zip(jobs, outs):
        base = main[j.name, j.seed]["acc"]
        if j.what == "1.5x":
            v = conv.setdefault(j.name, {"steps": j.steps, "seeds": [], "base": [], "longer": []})
            v["seeds"].append(j.seed)
            v["base"].append(base)
            v["longer"].append(o["acc"])
        elif j.what != "main":
            rates = lrs.setdefault(j.name, {f"{_lr(cfg, j.name):g}": []})
            if (j.name, j.seed) not in rate_checked:  # this seed's run at the chosen rate, once
                rate_checked.add((j.name, j.seed))
                rates[f"{_lr(cfg, j.name):g}"].append(base)
            rates.setdefault(j.what, []).append(o["acc"])
    conv = {name: {**longer_check(v["base"], v["longer"], v["seeds"], LONGER), "steps": v["steps"]}
            for name, v in conv.items()}
    return acc, first, conv, lrs


def _as_run(cfg: Config, name: str, seed: int, out: dict) -> Run:
    """A worker's result back as a Run (the model rebuilt from its state), for looking inside."""
    data = _data(cfg.dataset, cfg.n_train, cfg.n_test, seed)
    model = BinaryViT(model_config(cfg, name, data))
    model.load_state_dict(unpack_state(out["state"]))
    prepare = image_prepare(data.mean, data.std, None, data.num_classes)
    return Run(name, model.eval(), History.from_dict(out["history"]), prepare, out["acc"] / 100, out["seconds"])


def _checked_on(models: dict[str, int], i: int) -> list[str]:
    """The models ({model: number of seeds}) whose check runs on the i-th seed of the run."""
    return [n for n, k in models.items() if i < k]


def _judge_convergence(conv: dict, gains: dict) -> None:
    """Converged (book/how-to-run.md, `ledger.convergence`): 1.5x the steps moves the accuracy by less than the smallest
    rung gain resolved by the evidence rule (`ledger.resolved`; with none resolved, the default tolerance)."""
    for v in conv.values():
        out = ledger.convergence(v["change"], gains, default=ledger.DEFAULT_TOLERANCE)
        v.update(smallest_effect=out["smallest_effect"], converged=out["converged"], noisy=out["noisy"])


def _judged(results: dict) -> dict:
    """The stored convergence runs judged now, against the stored per-seed gains (never a stored verdict)."""
    conv = {k: dict(v) for k, v in results.get("convergence", {}).items()}
    _judge_convergence(conv, _rung_gains(results))
    return conv


def _rung_gains(results: dict) -> dict:
    """Each rung's paired gain over the one before, from the stored accuracies."""
    acc, names = results["accuracy"], [k for k in RUNGS if k in results["accuracy"]]
    return {b: _paired(acc, b, a) for a, b in zip(names, names[1:])}


def _comparisons(acc: dict, costs: dict, cfg: Config) -> list[dict]:
    n = len(acc["binary DeiT"])
    where = f"Fashion-MNIST, {cfg.n_train} train images, {cfg.steps} steps, {n} seeds"
    note = "Tiny binary ViT (width 32) distilled from a tiny FP ViT; the paper: DeiT-S on ImageNet."
    names = list(RUNGS)
    claims = ("gain_gap", "gain_multi_pool", "gain_affine", "gain_pyramid")
    rows = [ledger.compare(PAPER, c, _paired(acc, b, a), where, note) for c, a, b in zip(claims, names, names[1:])]
    rows.append(ledger.compare(PAPER, "gain_ladder", _paired(acc, names[-1], names[0]), where, note))
    ratio = costs["+pyramid"]["ops"] / costs["binary DeiT"]["ops"]
    rows.append(ledger.compare(PAPER, "ops_vs_fp", costs["+pyramid"]["ops"], "OPs counted on our 28-px pyramid rung",
                               f"A 28-px model is ~100x smaller than DeiT-S at 224 px; our pyramid / binary DeiT "
                               f"OPs = {ratio:.2f}"))
    return rows


def reproduce(profile: str = "standard", seeds=None, progress: bool = True) -> str:
    """Train the teacher and the ladder per seed, check convergence, count OPs and size; record."""
    t0 = time.perf_counter()
    cfg = config(profile)
    seeds = tuple(seeds or cfg.seeds)
    acc, first, conv, lr_check = _train_all(cfg, seeds, progress)
    data = load_data(cfg, seeds[0])
    images, labels = example_images(data)
    costs = cost(cfg, data)
    names = list(RUNGS)
    metrics = {f"test_acc/{k}": ledger.summarize(v) for k, v in acc.items()}
    metrics.update({f"gain/{b}": _paired(acc, b, a) for a, b in zip(names, names[1:])})
    metrics.update({f"gap_to_teacher/{k}": _paired(acc, TEACHER, k) for k in acc if k != TEACHER})
    prov = provenance(profile, seeds, time.perf_counter() - t0, config=cfg, workers=_workers(cfg),
                      dataset={"name": data.name, "source": data.source, "n_train": cfg.n_train,
                               "n_test": len(data.test_y)})
    inside = {"received": {k: [m.tolist() for m in attention_received(first[k], images)]
                           for k in (TEACHER, "binary DeiT", "+affine")},
              "values": pre_sign_values(first["+affine"], images),
              "scales": {k: learned_scales(first[k].model) for k in names}}
    extra = {"accuracy": acc, "cost": costs, "convergence": conv, "lr_check": lr_check, "inside": inside,
             "histories": {k: r.history.to_dict() for k, r in first.items()},
             "artifacts": {"images": images[:, 0].tolist(), "labels": labels.tolist(), "classes": list(data.classes),
                           "grid": first[TEACHER].model.grid}}
    return str(ledger.record(CHAPTER, profile, prov, metrics, _comparisons(acc, costs, cfg), extra))


# ---------------------------------------------------------------- figures for the thesis

def _order(results: dict) -> list[str]:
    return [k for k in (TEACHER, *RUNGS, *COMPONENTS) if k in results["accuracy"]]


@figure("binaryvit_ladder", CHAPTER)
def fig_ladder(results: dict):
    """The ladder's finding is each rung's gain over the rung below, a point or two: paired per seed."""
    import matplotlib.pyplot as plt
    acc = results["accuracy"]
    rungs = [k for k in RUNGS if k in acc]
    pairs = [(TEACHER, rungs[0])] + list(zip(rungs, rungs[1:])) if TEACHER in acc else list(zip(rungs, rungs[1:]))
    labels = [f"{b}\nvs {a}" if a == TEACHER else b for a, b in pairs]
    gains = [[y - x for x, y in zip(acc[a], acc[b])] for a, b in pairs]
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN, 2.6))
    paired_gains(ax, labels, {"ours (Fashion-MNIST)": paired_intervals(gains)}, "gain over the rung below\n(points)",
                 reference=dict(zip(labels, _paper_gains(pairs))), reference_label="paper (ImageNet)")
    legend_outside(ax, "right")
    fig.tight_layout()
    return fig


def _paper_gains(pairs) -> list[float]:
    """The paper's gain per rung (its Table 3, as data/reported has it), NaN where it states none."""
    claims = {c["id"]: c["value"] for c in ledger.load_reported(PAPER)["claims"]}
    ids = {"+GAP": "gain_gap", "+multi-pool": "gain_multi_pool", "+affine": "gain_affine", "+pyramid": "gain_pyramid"}
    return [float(claims[ids[b]]) if b in ids and ids[b] in claims else float("nan") for _, b in pairs]


@figure("binaryvit_ops", CHAPTER)
def fig_ops(results: dict):
    import matplotlib.pyplot as plt
    c = results["cost"]
    names = [k for k in (TEACHER, *RUNGS) if k in c]
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.4))
    bar_with_errors(axes[0], names, [c[k]["ops"] / 1e6 for k in names], ylabel="M OPs per image")
    bar_with_errors(axes[1], names, [c[k]["packed_bytes"] / 1e3 for k in names], ylabel="stored kB (packed)")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return fig


def draw_values(values: dict):
    """One histogram panel per kind of value (their scales differ by ~50x), the sign's threshold dashed."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(values), figsize=(6.4, 2.2))
    for ax, (name, v) in zip(axes, values.items()):
        overlaid_histograms({name: v}, xlabel="value", ax=ax, vline=0.0)
        ax.get_legend().remove()
        ax.set_title(name)
    fig.tight_layout()
    return fig


def draw_scales(scales: dict):
    """One bar panel per learned quantity, a bar per block."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(scales), figsize=(1.7 * len(scales), 2.0), squeeze=False)
    words = {"affine attn |a|": "|a|, attention affine", "affine MLP |a|": "|a|, MLP affine",
             "alpha x N": "α·N, binary attention", "fc1 |shift|": "|shift| before fc1"}
    for ax, (name, v) in zip(axes[0], scales.items()):
        bar_with_errors(ax, [str(i + 1) for i in range(len(v))], v, ylabel=words.get(name, name))
        ax.set_xlabel("block")
    fig.tight_layout()
    return fig


@figure("binaryvit_values", CHAPTER)
def fig_values(results: dict):
    return draw_values(results["inside"]["values"])


@figure("binaryvit_scales", CHAPTER)
def fig_scales(results: dict):
    return draw_scales(results["inside"]["scales"]["+affine"])


@figure("binaryvit_attention", CHAPTER)
def fig_attention(results: dict):
    from ..viz import attention_grid
    art, rec = results["artifacts"], results["inside"]["received"]
    images = torch.tensor(art["images"], dtype=torch.uint8)[:, None]
    g = art["grid"]
    heats = torch.stack([torch.tensor(rec[k][-1]).view(-1, g, g) for k in rec])
    return attention_grid(images, heats, [f"{k}\nlast layer" for k in rec],
                          [art["classes"][i] for i in art["labels"]])


@figure("binaryvit_curves", CHAPTER)
def fig_curves(results: dict):
    conv = results["convergence"]
    # each model's check has its own seed count: the legend says it (the error note covers the bars drawn)
    label = {k: f"{k} ({len(v['base'])} seed{'s' * (len(v['base']) > 1)})" for k, v in conv.items()}
    return curves_with_errors([1.0, 1.5], {label[k]: [v["base"], v["longer"]] for k, v in conv.items()},
                              xlabel="training length (x standard)", ylabel="test accuracy (%)", err="s.e.",
                              dodge=0.02)


# ---------------------------------------------------------------- exercises

def tensor_scaled_binary_weight(w: torch.Tensor) -> torch.Tensor:
    """The exercise's variant: one alpha = mean|W| for the whole matrix, times sign(W - row mean)."""
    return w.abs().mean() * torch.sign(w - w.mean(dim=1, keepdim=True))


def masked_dot(a_packed: torch.Tensor, w_packed: torch.Tensor) -> torch.Tensor:
    """sum_i a_i w_i for a in {0, 1} (bit = 1) and w in {-1, +1}: 2 popcount(a AND w) - popcount(a)."""
    from ..nn.binary import _POPCOUNT
    both = _POPCOUNT[(a_packed[:, None, :] & w_packed[None, :, :]).long()].sum(-1)
    return 2 * both - _POPCOUNT[a_packed.long()].sum(-1)[:, None]


@exercise("binaryvit.tensor_scaled_binary_weight", tensor_scaled_binary_weight)
def _check_binary_weight(student_fn):
    torch.manual_seed(0)
    # rows with different means and scales: a missing centring or a per-row alpha shows
    w = torch.randn(6, 10) * torch.linspace(0.5, 3, 6)[:, None] + torch.linspace(-2, 2, 6)[:, None]
    assert_same(torch.as_tensor(student_fn(w)).detach(), tensor_scaled_binary_weight(w),
                "one alpha = mean|W| over the whole matrix, times sign(W - row mean)")


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """Bi-Real Net's ApproxSign (Liu et al. 2018, Eq. 5): the piecewise quadratic whose slope 2 - 2|x| is
    the gradient sign(x) is given in the backward pass; -1 below -1 and +1 above 1."""
    x = x.clamp(-1, 1)  # flat outside: slope 0 there
    return torch.where(x < 0, 2 * x + x * x, 2 * x - x * x)


def _grad_of(fn, x: torch.Tensor) -> torch.Tensor | None:
    x = x.clone().requires_grad_(True)
    out = torch.as_tensor(fn(x))
    if not out.requires_grad:
        return None
    out.sum().backward()
    return x.grad


@exercise("binaryvit.ste_sign", bireal_sign)
def _check_ste_sign(student_fn):
    x = torch.linspace(-1.5, 1.5, 31)
    assert_same(torch.as_tensor(student_fn(x.clone().requires_grad_(True))).detach(), torch.sign(x),
                "the forward value: sign(x), exactly (the approximation is only for the backward pass)")
    grad, want = _grad_of(student_fn, x), (2 - 2 * x.abs()).clamp(min=0)
    if grad is None or not grad.abs().sum():
        raise AssertionError("no gradient reaches x: sign's own derivative is 0 almost everywhere. Keep the "
                             "forward value of sign but let the gradient flow through ApproxSign.")
    if torch.allclose(grad, (x.abs() <= 1).float()):
        raise AssertionError("that is the plain straight-through estimator (slope 1 on [-1, 1]): Bi-Real's "
                             "slope is the derivative of its piecewise quadratic.")
    assert_same(grad, want, "the backward value: Bi-Real's 2 - 2|x| on [-1, 1], 0 outside")


@exercise("binaryvit.masked_dot", masked_dot)
def _check_masked_dot(student_fn):
    torch.manual_seed(0)
    for k in (8, 13, 64):
        a, w = torch.randint(0, 2, (3, k)).float() - 0.5, torch.randn(4, k)
        want = ((a > 0).float() @ torch.sign(w).T).long()
        assert_same(masked_dot(pack_bits(a), pack_bits(w)).long(), want, "the library's masked_dot")
        got = torch.as_tensor(student_fn(pack_bits(a), pack_bits(w), k)).long()
        assert_same(got, want, f"sum a_i w_i with a in {{0, 1}}, w in {{-1, 1}}, rows of k={k}")


# ---------------------------------------------------------------- the notebook's summary of a recorded run

def _mean_se(values, sign: str = "", digits: int = 1) -> str:
    """mean ± s.e. over seeds (one seed: its value alone); sign="+" writes the sign of a difference."""
    if len(values) == 1:
        return f"{values[0]:{sign}.{digits}f}"
    return ledger.mean_se(ledger.summarize(values), digits, sign)


def _gain_markdown(name: str, s: dict) -> str:
    """A paired gain (`ledger.paired`) with its 95% interval, and what the evidence rule calls it."""
    return f"{name} {ledger.effect_text(s)} ({ledger.direction(s)})"


def _components_markdown(acc: dict, last: str) -> str:
    """Binarising part of the model: accuracy minus the teacher's with every enhancement on, when only the MLP,
    only the attention, or both are binary (paired per seed); empty when the run trained no components."""
    if not all(k in acc for k in COMPONENTS):
        return ""
    diffs = {k: [x - t for t, x in zip(acc[TEACHER], acc[k])] for k in (*COMPONENTS, last)}
    gaps = ", ".join(f"{k} {_mean_se(d, sign='+')}" for k, d in diffs.items())
    return (f"Binarising only part of the model (every enhancement on; accuracy minus the FP teacher's, points, "
            f"mean ± s.e.): "
            f"{gaps} (both binary).\n\n")


def _convergence_markdown(conv: dict) -> str:
    """Per checked model: accuracy at 1x -> 1.5x the steps, the paired change (seed mean ± s.e.), the verdict."""
    said = []
    for k, v in conv.items():
        n = len(v["seeds"])
        change = _mean_se(v["change"]["values"], "+", 2)
        verdict = "" if "converged" not in v else (f", {'converged' if v['converged'] else 'NOT converged'}: "
                                                   f"the smallest effect is {v['smallest_effect']:.2f}")
        if v.get("noisy"):
            verdict += f"; {ledger.NOISY_CHECK}"
        said.append(f"{k} {_mean_se(v['base'])} -> {_mean_se(v['longer'])} at 1.5x the steps "
                    f"({change}, {n} seed{'s' * (n > 1)}{verdict})")
    return "; ".join(said) or "not run"


def _lr_markdown(name: str, accs: dict, used: str | None = None, smallest: float | None = None) -> str:
    """One model's rate check ({rate: [accuracy per seed]}), rates in order, judged on the seed means: does
    the best lie strictly inside the range? And when the rate `used` is not the best, by how much (paired)."""
    best, inside = ledger.best_rate({r: ledger.summarize(v)["mean"] for r, v in accs.items()})
    where = "inside the range" if inside else "at an edge: not bracketed"
    n = len(next(iter(accs.values())))
    return (f"{name} ({n} seed{'s' * (n > 1)}): " + ", ".join(f"lr {r} {_mean_se(accs[r])}"
                                                             for r in sorted(accs, key=float))
            + f" (best {best}, {where}{_behind_best(accs, best, used, smallest)})")


def _behind_best(accs: dict, best: str, used: str | None, smallest: float | None) -> str:
    """How far the best rate beats the one used, paired per seed. As in the convergence rule, a margin matters
    when it is resolved (`ledger.resolved`) and not smaller than the smallest effect the run compares."""
    if used is None or used == best or used not in accs or len(accs[used]) < 2:
        return ""
    d = ledger.paired(accs[best], accs[used])
    said = f"; it beats the rate used, {used}, by {ledger.effect_text(d, 2)} per seed: "
    if not ledger.resolved(d):
        return said + "a null"
    if smallest is None:
        return said + "resolved, so the rate used is not tuned"
    if d["mean"] < smallest:
        return said + f"resolved, but less than the smallest effect ({smallest:.2f})"
    return said + f"resolved and not less than the smallest effect ({smallest:.2f}), so the rate used is not tuned"


def summary_markdown(results: dict) -> str:
    """What a recorded run found, as Markdown rendered from its numbers (mean ± s.e. over seeds)."""
    acc, names = results["accuracy"], [k for k in RUNGS if k in results["accuracy"]]
    n, cfg = len(acc[names[0]]), results["provenance"]["config"]
    ladder = ", ".join(f"{k} {_mean_se(acc[k])}" for k in (TEACHER, *names))
    gains = _rung_gains(results)
    used = {TEACHER: f"{cfg['teacher_lr'] or cfg['lr']:g}"}
    _, smallest = ledger.smallest_effect(gains, ledger.DEFAULT_TOLERANCE)
    lrs = "; ".join(_lr_markdown(k, v, used.get(k, f"{cfg['lr']:g}"), smallest)
                    for k, v in results.get("lr_check", {}).items())
    c = results["cost"]
    size = ", ".join(f"{k} {c[k]['size_ratio']:.1f}x (binary layers alone "
                     f"{c[k]['binary_layers_ratio']:.1f}x)" for k in names)
    return (f"**Recorded standard run** ({n} seeds, mean ± s.e.; {cfg['n_train']:,} training images, "
            f"{cfg['steps']:,} steps of batch {cfg['batch_size']} per student at learning rate {cfg['lr']:g}, "
            f"{cfg['teacher_steps']:,} at {cfg['teacher_lr'] or cfg['lr']:g} for the teacher, "
            f"{results['provenance']['wall_time_s'] / 60:.0f} min in all). Test accuracy (%): {ladder}.\n\n"
            f"Paired gain of each rung over the one before (points): "
            f"{'; '.join(_gain_markdown(b, s) for b, s in gains.items())}.\n\n"
            f"{_components_markdown(acc, names[-1])}"
            f"Convergence check (the paired change, seed mean ± s.e. where several seeds were retrained): "
            f"{_convergence_markdown(_judged(results))}.\n\n"
            f"Learning-rate check (test accuracy %, seed mean ± s.e. where several seeds): "
            f"{lrs or 'not run'}.\n\n"
            f"Whole-model storage, float32 / packed: {size}; OPs per image: " +
            ", ".join(f"{k} {c[k]['ops'] / 1e6:.3f} M" for k in (TEACHER, *names)) + ".")


def takeaways_markdown(results: dict) -> str:
    """The recorded run's takeaways as Markdown bullets, rendered from its numbers."""
    acc, names = results["accuracy"], [k for k in RUNGS if k in results["accuracy"]]
    said = {"gain": [], "null": [], "loss": []}
    for b, s in _rung_gains(results).items():
        said[ledger.direction(s).split()[-1]].append(b)
    n, last = len(acc[names[0]]), names[-1]
    out = [f"* By the evidence rule (a gain's 95% interval over {n} seeds excludes 0), these enhancements "
           f"helped at this scale: "
           f"{', '.join(said['gain']) or 'none'}; nulls: {', '.join(said['null']) or 'none'}; "
           f"losses: {', '.join(said['loss']) or 'none'}. The paper's ladder gains at every rung."]
    gap, c = ledger.summarize([t - x for t, x in zip(acc[TEACHER], acc[last])]), results["cost"]
    where = f"stays {gap['mean']:.1f} points below" if gap["mean"] > 0 else f"ends {-gap['mean']:.1f} points above"
    out.append(f"* The last rung ({last}) {where} its full-precision teacher (a plain ViT; distillation and the "
               f"pyramid together can pass it), "
               f"with {c[TEACHER]['ops'] / c[last]['ops']:.0f}x fewer OPs and {c[last]['size_ratio']:.1f}x "
               f"less storage than in float32 ({c[last]['binary_layers_ratio']:.0f}x for its binary layers).")
    conv = _judged(results)
    late = [f"{k} ({v['change']['mean']:+.2f} points at 1.5x the steps)" for k, v in conv.items()
            if not v["converged"]]
    # a fall is not under-training, but the rule reads |change|: say the direction beside the verdict
    falls = all(v["change"]["mean"] < 0 for v in conv.values() if not v["converged"])
    verb = lambda names: "moves" if len(names) == 1 else "move"  # noqa: E731
    out.append(f"* Converged: {', '.join(conv)} {verb(conv)} less than the smallest effect at 1.5x the steps."
               if not late else f"* Not converged: {', '.join(late)} still {verb(late)} more than the smallest effect "
               f"({conv[TEACHER]['smallest_effect']:.2f}); the gains are those of this "
               "training length, not of converged models." + (
                   " Each falls rather than rises: more steps do not raise it (overfitting the "
                   "training subset, or noise)." if falls else ""))
    return "\n".join(out)
