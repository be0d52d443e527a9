"""Chapter 03 [5], CaiT: going deeper with image transformers (LayerScale and class-attention).

The paper (Touvron et al. 2021) makes deep ViTs train with two changes: LayerScale (`ingur_lib.nn.layer_scale`),
a small learnable per-channel gain on every residual branch, and class-attention (`ingur_lib.nn.class_attention`),
which keeps the class token out of the self-attention stack and lets it read the patches in 2 final layers.
Talking-heads attention (`ingur_lib.nn.talking_heads`) is CaiT's third, optional piece.

Here a narrow ViT (patch 7 -> 16 tokens, so deep stacks stay cheap) trains on a Fashion-MNIST subset at
several depths, with and without LayerScale; CaiT (LayerScale + 2 class-attention layers) is compared with
the same self-attention stack whose class token enters at the first layer. Every run takes the same number
of optimizer steps. `run(profile, seed)` is what the notebook calls; `reproduce(profile, seeds)` writes
data/results/03_cait/<profile>.json. Both use the same configs and code.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from .. import ledger, measure
from ..data import Augment, ImageData, example_images, image_prepare, prepared, load_images
from ..errors import IngurError
from ..exercises import assert_same, exercise
from ..experiment import longer_check
from ..figures import figure
from ..models.vit import CAIT_XXS24, ViT, ViTConfig
from ..nn.attention import attention_entropy, attention_weights
from ..nn.layer_scale import LayerScale, layer_scale_init
from ..nn.talking_heads import TalkingHeadsAttention
from ..profiles import pick
from ..runtime import provenance, seed_everything
from ..train import History, TrainConfig, fit
from ..viz import attention_grid, curves_with_errors, lines_with_bands, matrix_heatmaps

CHAPTER, PAPER = "03_cait", "cait"
# name -> (LayerScale on, class-attention layers, attention)
VARIANTS = {"ViT": (False, 0, "mhsa"), "ViT+LS": (True, 0, "mhsa"), "CaiT": (True, 2, "mhsa"),
            "CaiT+TH": (True, 2, "talking_heads")}


@dataclass
class Config:
    model: ViTConfig
    steps: int                      # optimizer steps per run, the same for every depth and variant
    depths: tuple[int, ...]         # self-attention depths of the ViT vs ViT+LS sweep
    ca_depth: int                   # the depth at which CaiT meets ViT+LS (class token late vs early)
    n_train: int = 2000
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 64
    lr: float = 2e-3
    lrs: tuple[float, ...] = ()     # learning rates swept for ViT and ViT+LS at the deepest depth (reproduce)
    n_test: int | None = 2000
    longer: float = 1.5             # the convergence check trains the baselines this much longer
    dataset: str = "fashion_mnist"
    augment: Augment = field(default_factory=lambda: Augment(crop_padding=2, flip=True))

    def __post_init__(self):
        if self.ca_depth not in self.depths:
            raise IngurError(f"ca_depth={self.ca_depth} is not one of depths={self.depths}: CaiT is compared "
                             "with a ViT+LS of the same depth, so pick ca_depth among the depths.")
        if any(not lr > 0 for lr in self.lrs):
            raise IngurError(f"lrs={self.lrs}: every learning rate of the sweep must be > 0.")

    def train_config(self, seed: int, steps: int | None = None, lr: float | None = None) -> TrainConfig:
        """`steps` optimizer steps over `n_train` images, 10% warmup, one evaluation at the end."""
        per_epoch = -(-self.n_train // self.batch_size)  # fit's batches per epoch (the last one partial)
        epochs = ((steps or self.steps) + 0.5) / per_epoch  # + 0.5: fit truncates epochs x batches to a step
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=lr or self.lr, warmup_epochs=0.1 * epochs,
                           seed=seed, eval_every=10 ** 6)


# narrow (dim 32, 2 heads of 16) so that deep stacks fit the CPU budget; CaiT-XXS has 4 heads of 48
_NARROW = ViTConfig(patch_size=7, dim=32, heads=2, mlp_ratio=2.0)
# No augmentation: with crops and flips this tiny ViT still gained 1.4-2.9 points at 1.5x the steps after
# 100 epochs (probes on one thread), too slow to converge on the CPU budget; without it, 1,000 images should
# be fitted within the schedule (not probed before recording: the recorded convergence check says whether).
_PLAIN = Augment(crop_padding=0, flip=False)
CONFIGS = {
    "smoke": Config(_NARROW, steps=150, depths=(2, 4), ca_depth=4, n_train=1000, n_test=1000, batch_size=128,
                    lr=4e-3, augment=_PLAIN),
    # ~15 min with one torch thread on a shared 2-core machine: 800 steps of 128 = 102 epochs of 1,000 images
    "standard": Config(_NARROW, steps=800, depths=(2, 4, 8), ca_depth=4, n_train=1000, seeds=(0, 1, 2),
                       batch_size=128, lr=4e-3, lrs=(2e-3, 4e-3, 8e-3), augment=_PLAIN),
    # CaiT-XXS's width (dim 192, 4 heads, MLP 4) on Tiny-ImageNet (200 ImageNet classes at 64 px, patch 8: the
    # 64 tokens of a 224 px image cut in patches of 28); ImageNet itself is gated on the Hub and does not fit in
    # memory. 40,000 steps of 1,024 = ~400 epochs of 100,000 images, CaiT's 400 epochs. A GPU run.
    "full": Config(ViTConfig(image_size=64, patch_size=8, in_chans=3, num_classes=200, dim=192, heads=4,
                             mlp_ratio=4.0, drop_path=0.05), steps=40_000, depths=(12, 24, 36), ca_depth=24,
                   n_train=100_000, seeds=(0, 1, 2), batch_size=1024, lr=1e-3, n_test=None,
                   dataset="tiny_imagenet"),
}


def config(profile: str | None = None) -> Config:
    return pick(CONFIGS, profile)


@dataclass
class Run:
    """What one training run leaves behind for the notebook."""
    name: str
    depth: int
    model: ViT
    history: History
    prepare: object
    test_acc: float
    seconds: float


def load_data(cfg: Config, seed: int = 0) -> ImageData:
    return load_images(cfg.dataset).subset(cfg.n_train, cfg.n_test, seed=seed)


def model_config(cfg: Config, variant: str, depth: int, data: ImageData) -> ViTConfig:
    """The variant at `depth` self-attention blocks; LayerScale starts at the paper's epsilon for that depth."""
    ls, ca, attention = VARIANTS[variant]
    c, h, _ = data.image_shape
    return replace(cfg.model, depth=depth, layer_scale=layer_scale_init(depth) if ls else None,
                   class_attention=ca, attention=attention, in_chans=c, image_size=h, num_classes=data.num_classes)


def train_variant(cfg: Config, variant: str, depth: int, data: ImageData, seed: int = 0, progress: bool = True,
                  steps: int | None = None, lr: float | None = None) -> Run:
    """Train one variant at one depth for `cfg.steps` (or `steps`) steps at `cfg.lr` (or `lr`); evaluate."""
    seed_everything(seed)
    model = ViT(model_config(cfg, variant, depth, data))
    prepare = image_prepare(data.mean, data.std, cfg.augment, data.num_classes)
    t0 = time.perf_counter()
    hist = fit(model, (data.train_x, data.train_y), (data.test_x, data.test_y), cfg.train_config(seed, steps, lr),
               prepare=prepare, progress=progress, desc=f"{variant} depth {depth}")
    return Run(variant, depth, model, hist, prepare, hist.last("test_acc"), time.perf_counter() - t0)


def run(profile: str | None = None, seed: int = 0, data: ImageData | None = None, progress: bool = True
        ) -> dict[str, Run]:
    """The notebook's runs: ViT and ViT+LS at every depth, CaiT at `ca_depth`; keys like "ViT+LS/6"."""
    cfg = config(profile)
    data = data or load_data(cfg, seed)
    runs = {f"{v}/{d}": train_variant(cfg, v, d, data, seed, progress) for d in cfg.depths for v in ("ViT", "ViT+LS")}
    runs[f"CaiT/{cfg.ca_depth}"] = train_variant(cfg, "CaiT", cfg.ca_depth, data, seed, progress)
    return runs


# ---------------------------------------------------------------- looking inside

def model_inputs(run: Run, images: torch.Tensor) -> torch.Tensor:
    return prepared(run.prepare, images, next(run.model.parameters()).device)


@torch.no_grad()
def branch_norms(run: Run, images: torch.Tensor) -> dict[str, list[float]]:
    """Per self-attention block, the size of what each residual branch adds relative to the stream it adds to:
    mean over tokens of ||branch(x)|| / ||x||, for the attention ("sa") and feed-forward ("ffn") branches.

    Read at the blocks' `ls1`/`ls2` (LayerScale, or Identity without it), so it is the branch after scaling.
    """
    run.model.eval()
    out, streams, hooks = {"sa": [], "ffn": []}, [], []

    def keep_stream(_m, args):
        streams.append(args[0])

    for blk in run.model.blocks:
        hooks.append(blk.register_forward_pre_hook(keep_stream))
        for key, ls in (("sa", blk.ls1), ("ffn", blk.ls2)):
            hooks.append(ls.register_forward_hook(
                lambda _m, _a, y, key=key: out[key].append(y.norm(dim=-1) / streams[-1].norm(dim=-1))))
    try:
        run.model(model_inputs(run, images))
    finally:
        for h in hooks:
            h.remove()
    return {k: [r.mean().item() for r in v] for k, v in out.items()}


def layer_scales(model: ViT) -> dict[str, torch.Tensor]:
    """The learned LayerScale gains of the self-attention stack, (layers, channels) per branch (empty without)."""
    if not isinstance(model.blocks[0].ls1, LayerScale):
        return {}
    return {k: torch.stack([getattr(b, k).gamma.detach().cpu() for b in model.blocks]) for k in ("ls1", "ls2")}


@torch.no_grad()
def class_attention_maps(run: Run, images: torch.Tensor) -> list[torch.Tensor]:
    """The class token's attention over the patches, (B, H, grid, grid) per layer that reads it: every layer of a
    plain ViT (its query row 0), or the class-attention layers of CaiT (their one query)."""
    maps = attention_weights(run.model, model_inputs(run, images))
    g = run.model.grid
    if run.model.class_blocks:
        maps = maps[len(run.model.blocks):]  # the class-attention layers come after the stack
    return [m[:, :, 0, 1:].reshape(*m.shape[:2], g, g).cpu() for m in maps]


def map_entropy(maps: torch.Tensor) -> float:
    """Mean entropy (nats) of the class token's attention over the patches, renormalised over the patches."""
    p = maps.flatten(-2)
    return attention_entropy(p / p.sum(-1, keepdim=True)).mean().item()


def inside(runs: dict[str, Run], images: torch.Tensor) -> dict:
    """Branch norms of every run, LayerScale gains of the LS runs, class-token maps of CaiT and its ViT+LS twin."""
    out = {"branch_norms": {k: branch_norms(r, images) for k, r in runs.items()}, "layer_scale": {}, "maps": {},
           "entropy": {}}
    for k, r in runs.items():
        ls = layer_scales(r.model)
        if ls:
            out["layer_scale"][k] = {b: v.tolist() for b, v in ls.items()}
        if k.startswith("CaiT") or k == f"ViT+LS/{r.depth}" and f"CaiT/{r.depth}" in runs:
            maps = class_attention_maps(r, images)
            out["maps"][k] = [m.tolist() for m in maps]
            out["entropy"][k] = [map_entropy(m) for m in maps]
    return out


# ---------------------------------------------------------------- cost

def overhead(model_cfg: ViTConfig, batch: int = 256, reps: int = 5) -> dict[str, dict]:
    """Parameters, forward MFLOPs per image and inference throughput of each variant at `model_cfg.depth`."""
    out = {}
    for name, (ls, ca, att) in VARIANTS.items():
        torch.manual_seed(0)
        cfg = replace(model_cfg, layer_scale=layer_scale_init(model_cfg.depth) if ls else None, class_attention=ca,
                      attention=att)
        m = ViT(cfg)
        x = torch.randn(batch, cfg.in_chans, cfg.image_size, cfg.image_size)
        out[name] = {"params": measure.count_params(m), "mflops": measure.count_flops(m, x[:1]) / 1e6,
                     "images_per_s": measure.latency(m, x, warmup=1, repeats=reps)["items_per_s"]}
    return out


# ---------------------------------------------------------------- reproduce

def paired(a: list[float], b: list[float]) -> dict:
    """Per-seed differences a - b (same seed, same subset), summarised with their standard error."""
    s = ledger.paired(a, b)
    return {**s, "se": ledger.se(s)}


def step_means(values: list[float], k: int = 10) -> list[float]:
    """Means of consecutive groups of k per-step losses (keeps the results file small)."""
    return [sum(values[i:i + k]) / len(values[i:i + k]) for i in range(0, len(values), k)]


SWEEP_SEED = 100  # the sweep's own subset and init, so the grid's test images mostly differ from the ones it used
# whose tuned learning rate each variant trains with: CaiT and CaiT+TH carry LayerScale, as ViT+LS
LR_OF = {"ViT": "ViT", "ViT+LS": "ViT+LS", "CaiT": "ViT+LS", "CaiT+TH": "ViT+LS"}


def lr_sweep(cfg: Config, progress: bool = True) -> dict:
    """ViT and ViT+LS at the deepest depth, one run per learning rate of `cfg.lrs`; each keeps its best."""
    if not cfg.lrs:
        return {"best": {"ViT": cfg.lr, "ViT+LS": cfg.lr}}
    data, deep = load_data(cfg, SWEEP_SEED), max(cfg.depths)
    acc = {v: [100 * train_variant(cfg, v, deep, data, SWEEP_SEED, progress, lr=lr).test_acc for lr in cfg.lrs]
           for v in ("ViT", "ViT+LS")}
    best = {v: cfg.lrs[a.index(max(a))] for v, a in acc.items()}
    return {"depth": deep, "seed": SWEEP_SEED, "lrs": list(cfg.lrs), "acc": acc, "best": best}


def _grid(cfg: Config, seeds, lrs: dict, progress: bool) -> tuple[dict, dict, dict]:
    """Test accuracy (%) per variant/depth over seeds, the convergence runs, and the first seed's runs."""
    acc, longer, first = {}, [], {}
    deep = max(cfg.depths)
    for seed in seeds:
        data = load_data(cfg, seed)
        jobs = [(v, d) for d in cfg.depths for v in ("ViT", "ViT+LS")]
        for v, d in jobs + [("CaiT", cfg.ca_depth), ("CaiT+TH", cfg.ca_depth)]:
            r = train_variant(cfg, v, d, data, seed, progress, lr=lrs[LR_OF[v]])
            acc.setdefault(v, {}).setdefault(d, []).append(100 * r.test_acc)
            if seed == seeds[0]:
                first[f"{v}/{d}"] = r
        steps = round(cfg.longer * cfg.steps)  # the convergence check: the deepest baseline, 1.5x the steps
        longer.append(100 * train_variant(cfg, "ViT", deep, data, seed, progress, steps, lrs["ViT"]).test_acc)
    # one `experiment.longer_check` record (and the steps as trained); judged when a page is drawn
    return acc, {f"ViT/{deep}": {**longer_check(acc["ViT"][deep], longer, seeds, cfg.longer),
                                 "steps": cfg.steps}}, first


def converged(record: dict, eff: dict) -> dict:
    """The convergence rule (book/how-to-run.md), judged by `ledger.convergence`: the ViT's move at 1.5x the steps
    (its `longer_check` record's change) against the smallest effect the evidence rule resolves
    (`ledger.resolved`); nulls are reported with their intervals and decide nothing."""
    out = ledger.convergence(record["change"], eff)
    return {"smallest_effect": out["smallest_name"], "smallest": out["smallest_effect"], "moved": out["moved"],
            "converged": out["converged"], "noisy": out["noisy"]}


def effects(acc: dict, cfg: Config) -> dict:
    """The chapter's paired effects (points): LayerScale at every depth, depth with and without it, CaiT."""
    lo, hi = min(cfg.depths), max(cfg.depths)
    out = {f"ls_gain/{d}": paired(acc["ViT+LS"][d], acc["ViT"][d]) for d in cfg.depths}
    out.update({f"depth_gain/{v}": paired(acc[v][hi], acc[v][lo]) for v in ("ViT", "ViT+LS")})
    out["ca_gain"] = paired(acc["CaiT"][cfg.ca_depth], acc["ViT+LS"][cfg.ca_depth])
    out["th_gain"] = paired(acc["CaiT+TH"][cfg.ca_depth], acc["CaiT"][cfg.ca_depth])
    return out


def params_comparison(params_m: float) -> dict:
    """Our count of CaiT-XXS24 (the official hyper-parameters, built at 224 px) against Table 3's 12.0M,
    as the relative difference in % (0 = the same count, within the table's rounding)."""
    reported = ledger.claim(PAPER, "xxs24_params")["value"]
    return ledger.compare(PAPER, "xxs24_params_count", 100 * (params_m / reported - 1),
                          "CaiT-XXS24 built by models.vit at 224 px, 1000 classes",
                          f"measure.count_params: {params_m:.2f}M parameters.")


def _comparisons(eff: dict, cfg: Config, n: int) -> list[dict]:
    where = f"Fashion-MNIST, {cfg.n_train} train images, {cfg.steps} steps, {n} seeds"
    mid = 12 if 12 in cfg.depths else max(cfg.depths)  # the paper's depth when we have it, else our deepest
    small = "narrow ViT (dim 32, 16 tokens), no pretraining; ImageNet in the paper."
    return [
        ledger.compare(PAPER, "ls_gain_depth12", eff[f"ls_gain/{mid}"], f"ViT+LS - ViT at depth {mid}; {where}", small),
    ]


def reproduce(profile: str = "standard", seeds=None, progress: bool = True) -> str:
    """Train the depth x LayerScale grid, CaiT and the convergence check; look inside; record with provenance."""
    t0 = time.perf_counter()
    cfg = config(profile)
    seeds = tuple(seeds or cfg.seeds)
    sweep = lr_sweep(cfg, progress)
    acc, convergence, first = _grid(cfg, seeds, sweep["best"], progress)
    data = load_data(cfg, seeds[0])
    images, labels = example_images(data)
    eff = effects(acc, cfg)
    params = measure.count_params(ViT(CAIT_XXS24)) / 1e6
    metrics = {f"test_acc/{v}/depth={d}": ledger.summarize(a) for v, per in acc.items() for d, a in per.items()}
    metrics.update(eff)
    over = overhead(model_config(cfg, "ViT", cfg.ca_depth, data))
    metrics.update({f"{k}/{v}": ledger.summarize([x]) for v, o in over.items() for k, x in o.items()})
    prov = provenance(profile, seeds, time.perf_counter() - t0, config=cfg,
                      dataset={"name": data.name, "source": data.source, "n_train": cfg.n_train,
                               "n_test": len(data.test_y)})
    deep = max(cfg.depths)
    extra = {"accuracy": {v: {str(d): a for d, a in per.items()} for v, per in acc.items()},
             "effects": eff, "convergence": convergence, "lr_sweep": sweep, "overhead": over, "xxs24_params_m": params,
             "inside": inside(first, images),
             "losses": {k: step_means(first[k].history.steps) for k in (f"ViT/{deep}", f"ViT+LS/{deep}")},
             "artifacts": {"images": images[:, 0].tolist(), "labels": labels.tolist(), "classes": list(data.classes)}}
    rows = [*_comparisons(eff, cfg, len(seeds)), params_comparison(params)]
    return str(ledger.record(CHAPTER, profile, prov, metrics, rows, extra))


# ---------------------------------------------------------------- figures for the thesis

def _deepest(results: dict) -> int:
    return max(results["provenance"]["config"]["depths"])


@figure("cait_depth", CHAPTER)
def fig_depth(results: dict):
    acc = results["accuracy"]
    depths = sorted(int(d) for d in acc["ViT"])
    series = {v: [acc[v][str(d)] for d in depths] for v in ("ViT", "ViT+LS")}
    n = len(series["ViT"][0])
    fig = curves_with_errors(depths, series, xlabel="self-attention blocks", ylabel="test accuracy (%)",
                             baseline="ViT")
    fig.suptitle(f"mean ± std over {n} seeds (gain: paired per seed)")
    fig.tight_layout()
    return fig


def branch_norm_figure(norms: dict, depth: int, note: str = ""):
    """‖branch‖ / ‖stream‖ per block, attention and feed-forward branch side by side, one line per run
    (`norms` maps "ViT/8" or "ViT" to `branch_norms`' output)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(6.3, 2.4), sharey=True)
    for ax, (branch, label) in zip(axes, (("sa", "attention branch"), ("ffn", "feed-forward branch"))):
        series = {k.split("/")[0]: (n[branch], None) for k, n in norms.items()}
        lines_with_bands(range(1, depth + 1), series, "block", "‖branch‖ / ‖stream‖", ax=ax, logy=True)
        ax.set_title(f"{label}, depth {depth}{note}")
    axes[1].set_ylabel("")  # shared with the left panel
    fig.tight_layout()
    return fig


@figure("cait_branch_norms", CHAPTER)
def fig_branch_norms(results: dict):
    d = _deepest(results)
    norms = results["inside"]["branch_norms"]
    return branch_norm_figure({k: norms[k] for k in (f"ViT/{d}", f"ViT+LS/{d}")}, d, ", seed 0")


@figure("cait_losses", CHAPTER)
def fig_losses(results: dict):
    d = _deepest(results)
    losses = results["losses"]
    series = {k.split("/")[0]: (v, None) for k, v in losses.items()}
    steps = [10 * (i + 1) for i in range(len(next(iter(losses.values()))))]
    fig = lines_with_bands(steps, series, "optimizer step (mean of 10)", "training loss")
    fig.axes[0].set_title(f"depth {d}, seed 0")
    fig.tight_layout()
    return fig


def layer_scale_figure(gammas: dict, name: str):
    """|λ| per block and channel of one run's two LayerScale branches, on one colour scale."""
    mats = {f"{name}: {label}": torch.as_tensor(gammas[key], dtype=torch.float32).abs()
            for key, label in (("ls1", "attention"), ("ls2", "feed-forward"))}
    return matrix_heatmaps(mats, "channel", "block", "|λ|", first_row=1)


@figure("cait_layer_scale", CHAPTER)
def fig_layer_scale(results: dict):
    name = f"ViT+LS/{_deepest(results)}"
    return layer_scale_figure(results["inside"]["layer_scale"][name], name)


def attention_rows(inside_: dict, depth: int) -> tuple[torch.Tensor, list[str]]:
    """Per-head class-token maps, (rows, B, g, g): ViT+LS's last layer, then CaiT's last class-attention layer."""
    rows, titles = [], []
    for name, label in ((f"ViT+LS/{depth}", f"ViT+LS L{depth}"), (f"CaiT/{depth}", "CaiT CA2")):
        last = torch.tensor(inside_["maps"][name][-1])  # (B, H, g, g)
        for h in range(last.shape[1]):
            rows.append(last[:, h])
            titles.append(f"{label}\nhead {h}")
    return torch.stack(rows), titles


@figure("cait_attention", CHAPTER)
def fig_attention(results: dict):
    art = results["artifacts"]
    images = torch.tensor(art["images"], dtype=torch.uint8)[:, None]
    heats, titles = attention_rows(results["inside"], results["provenance"]["config"]["ca_depth"])
    return attention_grid(images, heats, titles, [art["classes"][i] for i in art["labels"]])


# ---------------------------------------------------------------- exercises

@exercise("cait.layer_scale_vector")
def _check_layer_scale_vector(student):
    for depth in (1, 12, 18, 19, 24, 25, 36):
        got = student(depth, 8)
        if not torch.is_tensor(got):
            raise AssertionError(f"layer_scale_vector({depth}, 8) returned {type(got).__name__}: return a tensor.")
        assert_same(got, torch.full((8,), layer_scale_init(depth)), f"layer_scale_vector({depth}, 8)", atol=0)


def attention_macs(n: int, dim: int, sa_depth: int, ca_depth: int) -> int:
    """Multiply-accumulates of CaiT's two attention products (q k^T and a v), Sec. 3.2: `sa_depth`
    self-attention layers among the n patches (the class token is not there yet), then `ca_depth`
    class-attention layers where only the class token asks, over all n + 1 tokens."""
    return 2 * sa_depth * n * n * dim + 2 * ca_depth * (n + 1) * dim


@exercise("cait.attention_macs")
def _check_attention_macs(student):
    for n, dim, sa, ca in ((16, 32, 6, 2), (196, 384, 24, 2), (49, 64, 0, 2), (64, 8, 3, 0)):
        got, want = student(n, dim, sa, ca), attention_macs(n, dim, sa, ca)
        if got == want:
            continue
        hint = {2 * (sa + ca) * (n + 1) ** 2 * dim: "that is a ViT of the same depth: in CaiT the class token "
                "joins only in the class-attention layers",
                2 * sa * (n + 1) ** 2 * dim + 2 * ca * (n + 1) * dim: "the self-attention layers run among "
                "the n patches only: the class token is not there yet",
                2 * sa * n * n * dim + 2 * ca * (n + 1) ** 2 * dim: "in class-attention only the class token "
                "queries: one row of scores, not n + 1"}.get(got, "count q k^T and a v: (queries x keys x dim) each")
        raise AssertionError(f"attention_macs({n}, {dim}, {sa}, {ca}) = {got}, expected {want}: {hint}.")


def mixed_row_sums(w_w: torch.Tensor, b_w: torch.Tensor, n: int) -> torch.Tensor:
    """What every row of talking-heads' weights sums to over its n keys: the softmax rows sum to 1 before
    the second mix, so head g's rows sum to sum_h w[g, h] + n b[g], whatever the scores."""
    return w_w.sum(1) + n * b_w


@exercise("cait.mixed_row_sums")
def _check_mixed_row_sums(student):
    g = torch.Generator().manual_seed(4)
    for heads, n in ((3, 5), (4, 9)):
        th = TalkingHeadsAttention(4 * heads, heads)
        w, b = (torch.randn(heads, heads, generator=g), torch.randn(heads, generator=g))
        with torch.no_grad():
            th.proj_w.weight.copy_(w)
            th.proj_w.bias.copy_(b)
            mixed = th.mix(torch.randn(2, heads, n, n, generator=g).softmax(-1), th.proj_w)
        torch.testing.assert_close(mixed.sum(-1), mixed_row_sums(w, b, n).view(1, -1, 1).expand(2, -1, n))
        got = torch.as_tensor(student(w, b, n)).float()
        if got.shape == (heads,) and torch.allclose(got, w.sum(1) + b):
            raise AssertionError("the bias is added to each of the n weights of a row, not once per row.")
        if got.shape == (heads,) and torch.allclose(got, w.sum(0) + n * b):
            raise AssertionError("new[g] = sum_h w[g, h] old[h]: sum w over its second axis (h).")
        assert_same(got, mixed_row_sums(w, b, n), f"row sums for {heads} heads over {n} keys (one per head)")


# ---------------------------------------------------------------- prose from recorded results

def _pm(s: dict, key: str = "std") -> str:
    return f"{s['mean']:.1f} ± {s[key]:.1f}"


def depth_table(results: dict) -> str:
    """The depth x LayerScale table (test accuracy, mean ± std over seeds; gain = paired, mean ± s.e.)."""
    acc, eff = results["accuracy"], results["effects"]
    cait = [v for v in ("CaiT", "CaiT+TH") if v in acc]
    lines = ["| depth | ViT | ViT+LS | LS gain (± s.e.) | " + " | ".join(cait) + " |", "|---" * (4 + len(cait)) + "|"]
    for d in sorted(acc["ViT"], key=int):
        late = [_pm(ledger.summarize(acc[v][d])) if d in acc[v] else "" for v in cait]
        lines.append(f"| {d} | {_pm(ledger.summarize(acc['ViT'][d]))} | {_pm(ledger.summarize(acc['ViT+LS'][d]))} "
                     f"| {eff[f'ls_gain/{d}']['mean']:+.2f} ± {eff[f'ls_gain/{d}']['se']:.2f} | "
                     + " | ".join(late) + " |")
    return "\n".join(lines)


def _effect(s: dict) -> str:
    """mean ± s.e. with its 95% interval, and what the evidence rule (`ledger.resolved`) calls it."""
    return f"{ledger.effect_text(s, 2, ' points')} (n = {s['n']}; {ledger.direction(s)})"


def summary(results: dict) -> str:
    """The chapter's findings as Markdown sentences, every number read from the results file."""
    eff, conv = results["effects"], results["convergence"]
    cfg = results["provenance"]["config"]
    lo, hi, ca = min(cfg["depths"]), max(cfg["depths"]), cfg["ca_depth"]
    return "\n".join([
        f"- Going from {lo} to {hi} blocks changes a plain ViT by {_effect(eff['depth_gain/ViT'])}, "
        f"and a ViT with LayerScale by {_effect(eff['depth_gain/ViT+LS'])}.",
        f"- LayerScale at depth {hi}: {_effect(eff[f'ls_gain/{hi}'])}.",
        f"- Class-attention (CaiT, {ca} blocks + 2 class-attention) against the class token from the first block "
        f"(ViT+LS, {ca} blocks): {_effect(eff['ca_gain'])}.",
        *([f"- Talking-heads in CaiT's self-attention blocks: {_effect(eff['th_gain'])}."] if "th_gain" in eff else []),
        *(f"- Convergence check: {model} trained {round(c['steps'] * c['factor'])} instead of {c['steps']} steps "
          f"moves by {_effect(c['change'])}. {_convergence_verdict(converged(c, eff))}" for model, c in conv.items()),
        *([_sweep_line(results["lr_sweep"])] if results.get("lr_sweep", {}).get("lrs") else []),
        _talking_heads_cost(results["overhead"]),
    ])


def _convergence_verdict(conv: dict) -> str:
    """The rule's verdict in words (judged from the stored numbers when the text is drawn)."""
    if conv["converged"] is None:
        return ("No effect is resolved (no effect's 95% interval excludes 0), so the check has no effect to "
                "compare this move with: it decides nothing.")
    ok = conv["converged"]
    return (f"That is {'less' if ok else 'more'} than the smallest resolved effect ({conv['smallest_effect']}, "
            f"{conv['smallest']:.2f} points): {'converged' if ok else 'not converged'} by the book's rule"
            f"{'; ' + ledger.NOISY_CHECK if conv['noisy'] else ''}.")


def _sweep_line(sweep: dict) -> str:
    """The learning-rate sweep at the deepest depth, one run per rate on its own subset."""
    rows = "; ".join(f"{v}: " + ", ".join(f"{lr:g} → {a:.1f}%" for lr, a in zip(sweep["lrs"], accs))
                     for v, accs in sweep["acc"].items())
    best = ", ".join(f"{v} {lr:g}" for v, lr in sweep["best"].items())
    return (f"- Learning rates swept at depth {sweep['depth']} (seed {sweep['seed']}, its own subset): {rows}. "
            f"Each variant trains with its best ({best}); CaiT takes ViT+LS's.")


def _talking_heads_cost(over: dict) -> str:
    """What talking-heads adds to CaiT at our size: parameters and measured inference throughput."""
    a, b = over["CaiT"], over["CaiT+TH"]
    return (f"- Talking-heads adds {b['params'] - a['params']} parameters to CaiT's {a['params']:,} and changes "
            f"its inference throughput from {a['images_per_s']:,.0f} to {b['images_per_s']:,.0f} images/s "
            "(no fused attention kernel).")


def _direction(s: dict) -> str:
    """'helps', 'hurts' or a null, by the evidence rule (`ledger.resolved`)."""
    if not ledger.resolved(s):
        return "makes no difference we can resolve (a null)"
    return "helps" if s["mean"] > 0 else "hurts"


def reading(results: dict) -> str:
    """What the recorded effects say about the paper's claims, in words chosen from the numbers' signs."""
    eff, cfg = results["effects"], results["provenance"]["config"]
    lo, hi = min(cfg["depths"]), max(cfg["depths"])
    plain, scaled = _direction(eff["depth_gain/ViT"]), _direction(eff["depth_gain/ViT+LS"])
    pattern = plain != "helps" and scaled == "helps"
    ls = "; ".join(f"at depth {d} it {_direction(eff[f'ls_gain/{d}'])}" for d in sorted(cfg["depths"]))
    lines = [
        f"- Going from {lo} to {hi} blocks {plain} for the plain ViT and {scaled} with LayerScale, so the "
        f"paper's pattern (depth pays only with LayerScale) {'appears' if pattern else 'does not appear'} "
        "at our depths.",
        f"- LayerScale itself: {ls}.",
        f"- Class-attention against the class token from the first block {_direction(eff['ca_gain'])}.",
    ]
    if "th_gain" in eff:
        lines.append(f"- Talking-heads inside CaiT {_direction(eff['th_gain'])}.")
    return "\n".join(lines)
