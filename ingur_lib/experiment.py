"""The experiment base: what every chapter's standard run does the same way, written once.

A chapter declares what is new in its paper (its models and effects); the plumbing of a converged,
tuned, powered comparison lives here:

* `sweep_bracketed`: a learning-rate sweep extended beyond whichever end wins until the best rate lies
  inside it (a best rate at an edge may have a better neighbour beyond it: the baseline is not tuned);
* `longer_check`: the convergence check's record, one format for every chapter: per model, the seeds,
  the metric as trained and at `factor` x the training, and the paired change. It stores numbers only:
  the verdict is `ledger.convergence`'s, judged when a page is drawn;
* `Experiment`: a chapter's comparison declared as variants x seeds, paired effects (a difference of two
  variants, or any contrast of several, e.g. an interaction AB - A - B + base) and checked variants, run
  (on worker processes if asked), judged and recorded by the base.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from . import ledger
from .errors import IngurError
from .pool import run_jobs


def sweep_bracketed(score: Callable[[float], float], rates: Iterable[float], most: int = 2,
                    factor: float = 2.0, higher_is_better: bool = True) -> dict[str, float]:
    """`score(rate)` at every rate of `rates`, then one rate a `factor` beyond whichever end wins, up to
    `most` times, so that the best rate ends strictly inside the sweep (unless `most` extensions did not
    reach it: `ledger.bracketed` then says so). Returns {str(rate): score} in rate order."""
    got = {r: score(r) for r in sorted(float(r) for r in rates)}
    pick = max if higher_is_better else min
    for _ in range(most):
        best, ends = pick(got, key=got.get), sorted(got)
        if len(ends) == 1 or ends[0] < best < ends[-1]:
            break
        rate = best * factor if best == ends[-1] else best / factor
        got[rate] = score(rate)
    return {f"{r:g}": got[r] for r in sorted(got)}


def best_of(sweep: dict[str, float], higher_is_better: bool = True) -> float:
    """The winning rate of a `sweep_bracketed` result."""
    return float((max if higher_is_better else min)(sweep, key=sweep.get))


def longer_check(base: list[float], longer: list[float], seeds: Iterable[int], factor: float,
                 percent: bool = False) -> dict:
    """One model's convergence record: the metric per seed as trained (`base`, the first len(longer)
    seeds) and at `factor` x the training (`longer`), and their paired change (`ledger.paired`; with
    `percent`, in % of the metric as trained, e.g. of a loss)."""
    k = len(longer)
    base = list(base[:k])
    change = (ledger.summarize([100 * (b / a - 1) for a, b in zip(base, longer)]) if percent
              else ledger.paired(longer, base))
    return {"seeds": list(seeds)[:k], "factor": factor, "base": base, "longer": list(longer), "change": change}


@dataclass(frozen=True)
class Experiment:
    """A chapter's standard comparison, declared rather than programmed: `variants` trained on `seeds`, the
    paired `effects` between them, and the convergence check of the `checked` variants (`factor` x the
    training on the first `check_seeds` seeds). `train(variant, seed, factor)` is what is new in the
    paper: it trains one model and returns the compared metric, or a dict holding it under "metric" with
    whatever else the chapter measures of that model (kept in the run's "details"). An effect is a pair
    (variant, baseline), the paired difference, or a contrast {variant: coefficient}, summed per seed. With
    `workers` > 1 the trainings run on that many one-thread processes (`pool.run_jobs`: `train` must then be
    a module-level function or a `functools.partial` of one). A two-variant, three-seed experiment:

        exp = Experiment("10_demo", train_one, variants=("ViT", "ViT+LS"), seeds=(0, 1, 2),
                         effects={"LayerScale": ("ViT+LS", "ViT")}, checked=("ViT", "ViT+LS"))
        exp.record("standard", exp.run())

    The record holds numbers only (per-seed metrics, paired effects, convergence runs); `judge` applies
    the ledger's one rule when a page is drawn."""
    chapter: str
    train: Callable[[str, int, float], float]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    effects: dict = field(default_factory=dict)     # name -> (variant, baseline) or {variant: coefficient}
    checked: tuple[str, ...] = ()
    check_seeds: int = 3
    factor: float = 1.5
    workers: int = 1
    cost: Callable[[str, float], float] | None = None  # (variant, factor) -> relative cost: dearest first

    def __post_init__(self):
        unknown = {v for e in self.effects.values() for v in contrast(e)} | set(self.checked)
        unknown -= set(self.variants)
        if unknown:
            raise IngurError(f"{self.chapter}: effects or checks name {sorted(unknown)}, which are not among the "
                             f"variants {list(self.variants)}: declare them as variants.")
        # one seed runs (a smoke or dry run: the code path), but resolves nothing (`ledger.resolved`)
        if len(self.seeds) < 1 or not 1 <= self.check_seeds <= len(self.seeds):
            raise IngurError(f"{self.chapter}: an experiment needs 1 seed or more (3 to resolve an effect) and "
                             f"1 to {len(self.seeds)} check seeds, not {len(self.seeds)} and {self.check_seeds}.")

    def jobs(self) -> list[tuple[str, int, float]]:
        """(variant, seed, factor) of every training: the grid, then the checked variants' longer runs."""
        checked = self.seeds[:self.check_seeds]
        return ([(v, s, 1.0) for v in self.variants for s in self.seeds]
                + [(v, s, self.factor) for v in self.checked for s in checked])

    def run(self) -> dict:
        """Every variant on every seed, the paired effects, and the longer runs of the checked variants."""
        jobs = self.jobs()
        cost = [self.cost(v, f) for v, _, f in jobs] if self.cost else None
        got = dict(zip(jobs, run_jobs(self.train, jobs, self.workers, cost)))
        metric = {v: [_metric(got[v, s, 1.0]) for s in self.seeds] for v in self.variants}
        checked = self.seeds[:self.check_seeds]
        out = {"metric": metric, "effects": {k: effect(metric, e) for k, e in self.effects.items()},
               "convergence": {v: longer_check(metric[v], [_metric(got[v, s, self.factor]) for s in checked],
                                               checked, self.factor) for v in self.checked}}
        if any(isinstance(o, dict) for o in got.values()):
            out["details"] = {v: [got[v, s, 1.0] for s in self.seeds] for v in self.variants}
        return out

    def judge(self, out: dict, default: float | None = None) -> dict:
        """Each checked variant's convergence by the ledger's rule, against the smallest resolved effect."""
        return {v: ledger.convergence(c["change"], out["effects"], default) for v, c in out["convergence"].items()}

    def record(self, profile: str, out: dict, wall_time_s: float, comparisons=(), dataset=None, config=None,
               extra: dict | None = None):
        """`out` written to data/results/<chapter>/<profile>.json with its provenance (`results.record`);
        `extra` adds the chapter's own entries (its measurements, its artifacts)."""
        from .runtime import provenance
        metrics = {**{v: ledger.summarize(m) for v, m in out["metric"].items()}, **out["effects"]}
        prov = provenance(profile, self.seeds, wall_time_s, dataset=dataset, config=config)
        return ledger.record(self.chapter, profile, prov, metrics, comparisons,
                             {"per_seed": out["metric"], "convergence": out["convergence"], **(extra or {})})


def contrast(e) -> dict[str, float]:
    """An effect's declaration as {variant: coefficient}: a pair (a, b) is {a: 1, b: -1}."""
    if isinstance(e, dict):
        return {k: float(c) for k, c in e.items()}
    a, b = e
    return {a: 1.0, b: -1.0}


def effect(metric: dict[str, list[float]], e) -> dict:
    """The per-seed contrast sum_v c_v * metric_v (same seed, same data), summarised (`ledger.summarize`);
    for a pair it is `ledger.paired`, the per-seed difference."""
    if not isinstance(e, dict):
        return ledger.paired(metric[e[0]], metric[e[1]])
    c = contrast(e)
    n = len(next(iter(metric.values())))
    return ledger.summarize([sum(k * metric[v][i] for v, k in c.items()) for i in range(n)])


def _metric(out) -> float:
    return float(out["metric"] if isinstance(out, dict) else out)
