"""The experiment base: what every chapter's standard run does the same way, written once.

A chapter declares what is new in its paper (its models and effects); the plumbing of a converged,
tuned, powered comparison lives here:

* `sweep_bracketed`: a learning-rate sweep extended beyond whichever end wins until the best rate lies
  inside it (a best rate at an edge may have a better neighbour beyond it: the baseline is not tuned);
* `longer_check`: the convergence check's record, one format for every chapter: per model, the seeds,
  the metric as trained and at `factor` x the training, and the paired change. It stores numbers only:
  the verdict is `ledger.convergence`'s, judged when a page is drawn.
"""
from __future__ import annotations

from typing import Callable, Iterable

from . import ledger


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
