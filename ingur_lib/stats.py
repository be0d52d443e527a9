"""Statistics over seeds, and the book's one standard of evidence.

Every number the book compares is a set of per-seed values: `summarize` keeps their mean, sample std,
n and the values; `paired` does the same for per-seed differences (same seed, same data). The
uncertainty of a mean is its 95% Student t interval (`interval`), and one rule says when an effect
exists: `resolved`, the interval excludes 0. The ledger's verdicts (`verdicts.judge`), the convergence
gates (`convergence`, `smallest_effect`) and every sentence a page states about an effect
(`effect_text`, `direction`) read that rule; no chapter writes its own.
"""
from __future__ import annotations

import math
import statistics
from typing import Sequence

from .errors import IngurError


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def summarize(values: Sequence[float]) -> dict:
    """mean, std (sample; 0 for one seed), n and the values themselves."""
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """Per-seed differences a - b (same seed, same data), summarised like `summarize`."""
    return summarize([x - y for x, y in zip(a, b)])


def se(s: dict) -> float:
    """The standard error of a `summarize` dict's mean: std / sqrt(n)."""
    return s["std"] / max(s["n"], 1) ** 0.5


def mean_se(s: dict, digits: int = 1, sign: str = "") -> str:
    """'mean ± s.e.' of a `summarize` dict (`se`), the chapters' one way to write a seed mean with its
    standard error; sign="+" writes the sign of a difference."""
    return f"{s['mean']:{sign}.{digits}f} ± {se(s):.{digits}f}"


# Two-sided 95% Student t quantiles for 1-30 degrees of freedom (beyond: a Cornish-Fisher expansion).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t975(df: int) -> float:
    """The t quantile that makes mean ± t·s.e. a 95% interval with `df` = n - 1 degrees of freedom."""
    if df < 1:
        raise IngurError(f"a t interval needs at least 2 seeds (df >= 1), not df={df}.")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """The 95% interval of a mean over `n` seeds with sample std `std`: mean ± t·std/√n (a point if n < 2)."""
    if n < 2:
        return mean, mean
    half = t975(n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


def resolved(effect: dict) -> bool:
    """The book's one standard of evidence (book/how-to-run.md), its one copy: an effect (a `summarize`/`paired`
    dict over seeds) is resolved when its 95% t-interval (`interval`) excludes zero. The same rule decides
    the ledger's verdicts (`judge`), the convergence gates (`smallest_effect`) and every sentence a page
    states about an effect. A single seed has no interval and is never an effect."""
    if effect.get("n", 1) < 2:
        return False
    lo, hi = interval(effect["mean"], effect.get("std", 0.0), effect["n"])
    return lo > 0 or hi < 0


# The rule in words, for pages: what a resolved effect and a null are (a chapter never writes its own).
RESOLVED_WORDS = "its 95% interval excludes 0"


NULL_WORDS = "its 95% interval includes 0"


def effect_text(s: dict, digits: int = 1, unit: str = "") -> str:
    """A paired effect as every page writes it: '+0.56 ± 0.20 points, 95% interval [+0.13, +0.99]'
    (mean ± s.e.; one seed: its value alone, with no interval)."""
    if s.get("n", 1) < 2:
        return f"{s['mean']:+.{digits}f}{unit} (one seed)"
    lo, hi = interval(s["mean"], s["std"], s["n"])
    return f"{mean_se(s, digits, '+')}{unit}, 95% interval [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def direction(s: dict) -> str:
    """What the evidence rule (`resolved`) says of a paired effect: 'a gain', 'a loss' or 'a null'."""
    return "a null" if not resolved(s) else "a gain" if s["mean"] > 0 else "a loss"


def convergence(moved: float | dict, effects: dict, default: float | None = None) -> dict:
    """The convergence rule (book/how-to-run.md), its one copy: the baseline trained 1.5x longer must move its metric by
    less than the smallest effect the run resolves (`resolved`). With none resolved, a stated `default`
    tolerance decides; without one the check decides nothing (`converged` None, the chapter says so).
    `moved` is the change, or its summary over seeds (`summarize`, `paired`). The rule reads the mean; with
    a summary, `noisy` says that the check passed although its s.e. exceeds the smallest effect, so it
    cannot rule out a creep of that size (`NOISY_CHECK` says so in words). One seed's noise is unknown and
    is never called noisy."""
    change = moved["mean"] if isinstance(moved, dict) else moved
    name, smallest = smallest_effect(effects, default)
    converged = None if smallest is None else abs(change) < smallest
    noisy = bool(converged) and isinstance(moved, dict) and moved.get("n", 1) > 1 and se(moved) > smallest
    return {"moved": abs(change), "smallest_name": name, "smallest_effect": smallest, "converged": converged,
            "noisy": noisy}


# What a chapter adds to a `noisy` verdict, after "converged" and the effect it names.
NOISY_CHECK = "but the change's s.e. exceeds that effect, so a creep of its size is not excluded"


def smallest_effect(effects: dict, default: float | None = None) -> tuple[str | None, float | None]:
    """The smallest effect a run resolves (`resolved`: its 95% interval excludes 0), as (name, |mean|); with
    none resolved, (None, default).
    Whatever moves a run's numbers by less than this cannot change what the run concludes."""
    sizes = {k: abs(e["mean"]) for k, e in effects.items() if resolved(e)}
    name = min(sizes, key=sizes.get) if sizes else None
    return name, (sizes[name] if name else default)


def bracketed(best: float, rates) -> bool:
    """A tuned learning rate is bracketed when it lies strictly inside the swept range: a best rate at
    either edge may have a better neighbour beyond it, so the sweep did not show the baseline tuned."""
    rates = sorted(float(r) for r in rates)
    return rates[0] < float(best) < rates[-1]


def best_rate(accs: dict) -> tuple[str, bool]:
    """The winning rate of one sweep ({rate: accuracy}, the lowest of any tie) and whether it is bracketed."""
    best = max(sorted(accs, key=float), key=accs.get)
    return best, bracketed(best, accs)


def seeds_to_decide(std: float, distance: float, n_now: int, most: int = 1000) -> int | None:
    """About how many seeds shrink the 95% interval's half-width below `distance` if the per-seed spread
    stays `std` (None when no number up to `most` would)."""
    if std <= 0 or distance <= 0:
        return None
    return next((n for n in range(max(n_now + 1, 2), most + 1)
                 if t975(n - 1) * std / math.sqrt(n) < distance), None)
