"""The experiment base: what every chapter's standard run does the same way, written once.

A chapter declares what is new in its paper (its models and effects); the plumbing of a converged,
tuned, powered comparison lives here:

* `sweep_bracketed`: a learning-rate sweep extended beyond whichever end wins until the best rate lies
  inside it (a best rate at an edge may have a better neighbour beyond it: the baseline is not tuned);
* `longer_check`: the convergence check's record, one format for every chapter: per model, the seeds,
  the metric as trained and at `factor` x the training, and the paired change. It stores numbers only:
  the verdict is `ledger.convergence`'s, judged when a page is drawn;
* `Experiment`: a chapter's comparison declared as variants x seeds, paired effects and checked
  variants, run, judged and recorded by the base.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from . import ledger
from .errors import IngurError


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
    paper: it trains one model and returns the compared metric. A two-variant, three-seed experiment:

        exp = Experiment("10_demo", train_one, variants=("ViT", "ViT+LS"), seeds=(0, 1, 2),
                         effects={"LayerScale": ("ViT+LS", "ViT")}, checked=("ViT", "ViT+LS"))
        exp.record("standard", exp.run())

    The record holds numbers only (per-seed metrics, paired effects, convergence runs); `judge` applies
    the ledger's one rule when a page is drawn."""
    chapter: str
    train: Callable[[str, int, float], float]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    effects: dict = field(default_factory=dict)     # name -> (variant, baseline): variant minus baseline
    checked: tuple[str, ...] = ()
    check_seeds: int = 3
    factor: float = 1.5

    def __post_init__(self):
        unknown = {v for pair in self.effects.values() for v in pair} | set(self.checked)
        unknown -= set(self.variants)
        if unknown:
            raise IngurError(f"{self.chapter}: effects or checks name {sorted(unknown)}, which are not among the "
                             f"variants {list(self.variants)}: declare them as variants.")
        if len(self.seeds) < 2 or not 1 <= self.check_seeds <= len(self.seeds):
            raise IngurError(f"{self.chapter}: an experiment needs 2 seeds or more (3 to resolve an effect) and "
                             f"1 to {len(self.seeds)} check seeds, not {len(self.seeds)} and {self.check_seeds}.")

    def run(self) -> dict:
        """Every variant on every seed, the paired effects, and the longer runs of the checked variants."""
        metric = {v: [float(self.train(v, s, 1.0)) for s in self.seeds] for v in self.variants}
        checked = self.seeds[:self.check_seeds]
        return {"metric": metric,
                "effects": {k: ledger.paired(metric[a], metric[b]) for k, (a, b) in self.effects.items()},
                "convergence": {v: longer_check(metric[v], [float(self.train(v, s, self.factor)) for s in checked],
                                                checked, self.factor) for v in self.checked}}

    def judge(self, out: dict, default: float | None = None) -> dict:
        """Each checked variant's convergence by the ledger's rule, against the smallest resolved effect."""
        return {v: ledger.convergence(c["change"], out["effects"], default) for v, c in out["convergence"].items()}

    def record(self, profile: str, out: dict, wall_time_s: float, comparisons=(), dataset=None, config=None):
        """`out` written to data/results/<chapter>/<profile>.json with its provenance (`results.record`)."""
        from .runtime import provenance
        metrics = {**{v: ledger.summarize(m) for v, m in out["metric"].items()}, **out["effects"]}
        prov = provenance(profile, self.seeds, wall_time_s, dataset=dataset, config=config)
        return ledger.record(self.chapter, profile, prov, metrics, comparisons,
                             {"per_seed": out["metric"], "convergence": out["convergence"]})
