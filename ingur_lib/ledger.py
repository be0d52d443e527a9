"""The ledger: what each paper reports beside what we reproduced, with a verdict and a reason.

Two kinds of files feed it, both validated on read:

* `data/reported/<paper>.yaml`: the paper's claims, each with an id, a sentence, metric, value, unit,
  dataset, kind (`absolute` or `relative`), and its source in the paper (table/figure/section). A relative
  claim may also state its `form` (`effect`, the default: "A beats B by ~X"; `bound`: "loses at most X";
  `none`: "no effect"; `sign`: "A beats B" with no size, read from the value's sign), a `tolerance`
  (the smallest effect that counts for it), `deterministic: true` (a count such as parameters, FLOPs or
  bytes, which one run measures without seed noise) and
  `not_testable: <why>` (we measure another quantity, so the row cannot be judged).
* `data/results/<chapter>/<profile>.json`: written only by running the code (`record`), with
  provenance (commit, dirty flag, date, machine, torch, profile, seeds, wall time, dataset, config),
  the metrics (mean, std and the per-seed values), and our numbers for claims (`compare`): mean, std,
  n and the per-seed values, never a verdict.

A verdict is computed from the stored numbers against the current YAML by one rule (`judge`) each time
a table is drawn, never typed in by hand nor read back from a results file.
"""
from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Iterable, Sequence

from . import dryrun
from .atomic import write_json, write_text
from .distributed import is_main_process
from .errors import IngurError
from .paths import repo_root, reported_dir, results_dir

VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive", "not testable at this scale")
REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE = VERDICTS
FORMS = ("effect", "bound", "none", "sign")
# The smallest effect (in the claim's unit, usually accuracy points) a verdict counts, unless a claim sets its own.
DEFAULT_TOLERANCE = 0.3
CLAIM_KEYS = ("id", "claim", "metric", "value", "unit", "dataset", "kind", "source")
PAPER_KEYS = ("paper", "ref", "title", "authors", "year", "bibkey", "claims")
PROVENANCE_KEYS = ("commit", "dirty", "date", "machine", "torch", "profile", "seeds", "wall_time_s", "dataset")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------- reported (YAML)

def _validate_claim(c, where: str) -> None:
    if not isinstance(c, dict):
        raise IngurError(f"{where}: each claim must be a mapping of keys (id, claim, value, ...), not {c!r}.")
    cid = c.get("id", "?")
    lack = [k for k in CLAIM_KEYS if k not in c]
    if lack:
        raise IngurError(f"{where}: claim {cid!r} lacks {', '.join(lack)}: add them.")
    if c["kind"] not in ("absolute", "relative"):
        raise IngurError(f"{where}: claim {cid!r} has kind {c['kind']!r}: use 'absolute' or 'relative'.")
    if not _finite(c["value"]):
        raise IngurError(f"{where}: claim {cid!r} value {c['value']!r} must be a finite number.")
    tol = c.get("tolerance", DEFAULT_TOLERANCE)
    if not _finite(tol) or tol < 0:
        raise IngurError(f"{where}: claim {cid!r} tolerance must be a finite number >= 0 (or left out).")
    form = c.get("form", "effect")
    if form not in FORMS:
        raise IngurError(f"{where}: claim {cid!r} has form {form!r}: use one of {', '.join(FORMS)}.")
    if "form" in c and c["kind"] == "absolute":
        raise IngurError(f"{where}: claim {cid!r} is absolute: only relative claims take a form; drop it.")
    if c["kind"] == "relative" and form == "effect" and abs(c["value"]) <= tol:
        raise IngurError(f"{where}: claim {cid!r} states an effect of {c['value']} within its tolerance "
                         f"{tol}: write `form: none` (no effect) or give a smaller tolerance.")
    if "not_testable" in c and not (isinstance(c["not_testable"], str) and c["not_testable"].strip()):
        raise IngurError(f"{where}: claim {cid!r} not_testable must say why in a sentence.")
    if form == "bound" and c["value"] == 0:
        raise IngurError(f"{where}: claim {cid!r} is a bound of 0: give its signed limit (-0.5: loses at most "
                         f"0.5; +5: costs at most 5) or write `form: none`.")
    if not isinstance(c.get("deterministic", False), bool):
        raise IngurError(f"{where}: claim {cid!r} deterministic must be true or false.")


def validate_reported(d, where: str = "reported file") -> dict:
    if not isinstance(d, dict):
        raise IngurError(f"{where} is empty or not a mapping: write the paper's keys "
                         f"({', '.join(PAPER_KEYS)}) as in data/reported/spt_lsa.yaml.")
    missing = [k for k in PAPER_KEYS if k not in d]
    if missing:
        raise IngurError(f"{where} lacks {', '.join(missing)}: add them (see ingur_lib/ledger.py).")
    if not isinstance(d["claims"], list):
        raise IngurError(f"{where}: claims must be a list of claims, one `- id: ...` each.")
    ids = set()
    for c in d["claims"]:
        _validate_claim(c, where)
        if c["id"] in ids:
            raise IngurError(f"{where}: claim id {c['id']!r} appears twice: make ids unique.")
        ids.add(c["id"])
    return d


def load_reported(paper: str) -> dict:
    import yaml
    path = reported_dir() / f"{paper}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in reported_dir().glob("*.yaml")))
        raise IngurError(f"No reported numbers for {paper!r}: add data/reported/{paper}.yaml (known: {known}).")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise IngurError(f"{path} is not valid YAML{line}: fix its syntax "
                         f"({getattr(err, 'problem', None) or 'see the line'}).") from None
    return validate_reported(d, str(path))


def all_reported() -> dict[str, dict]:
    return {p.stem: load_reported(p.stem) for p in sorted(reported_dir().glob("*.yaml"))}


def claim(paper: str, claim_id: str) -> dict:
    for c in load_reported(paper)["claims"]:
        if c["id"] == claim_id:
            return c
    raise IngurError(f"{paper} has no claim {claim_id!r}: see data/reported/{paper}.yaml for its ids.")


def tolerance(c: dict) -> float:
    """The smallest effect that counts for claim `c`: its own `tolerance`, else the default."""
    return float(c.get("tolerance", DEFAULT_TOLERANCE))


# ---------------------------------------------------------------- verdicts

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
    """DESIGN.md's test for an effect (a `summarize`/`paired` dict): two seeds at least and a mean outside
    2 standard errors of zero. A single-seed run is never an effect."""
    return effect.get("n", 1) > 1 and abs(effect["mean"]) > 2 * se(effect)


def convergence(moved: float | dict, effects: dict, default: float | None = None) -> dict:
    """DESIGN.md's convergence rule, its one copy: the baseline trained 1.5x longer must move its metric by
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
    """The smallest effect a run resolves (`resolved`), as (name, |mean|); with none resolved, (None, default).
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


def _num(x: float, sign: bool = False) -> str:
    """A measured number: two decimals, or three significant digits when tiny or huge; a whole number
    of 1,000 or more (a count: parameters, OPs, bytes) as a count, `39,938`, never `39,938.00`."""
    spec = "+" if sign else ""
    if x == round(x) and 1000 <= abs(x) < 1e15:
        return f"{x:{spec},.0f}"
    return f"{x:{spec},.2f}" if x == 0 or 0.01 <= abs(x) < 1e6 else f"{x:{spec}.3g}"


def _g(x: float) -> str:
    """The paper's number in a reason: signed, as written in the YAML."""
    return f"{x:+g}"


def _effect(v, m, lo, hi, tol):
    """A claimed effect v: our interval must exclude 0 on v's side and reach v's size within 2x."""
    s = 1.0 if v > 0 else -1.0
    a, b = sorted((s * lo, s * hi))            # our interval, in the direction of the paper's effect
    size, x = abs(v), s * m
    if a > 0:
        if b < size / 2:
            return PARTLY, f"the paper's sign, but below half its {_g(v)}", 0.0
        if a > 2 * size:
            return PARTLY, f"the paper's sign, but above twice its {_g(v)}", 0.0
        return REPRODUCED, f"the paper's sign, and its size {_g(v)} within a factor of 2", 0.0
    if b < 0:
        return NOT_REPRODUCED, f"the opposite sign to the paper's {_g(v)}", 0.0
    if b < size / 2:
        return NOT_REPRODUCED, f"excludes the paper's {_g(v)} (and anything above half of it)", 0.0
    # Deciding needs a half-width below the larger of the distances to 0 and to half the paper's size.
    return INCONCLUSIVE, f"too wide to tell no effect from the paper's {_g(v)}", max(x, size / 2 - x)


def _bound(v, m, lo, hi, tol):
    """A claimed bound v ("loses at most |v|" when v < 0, "costs at most v" when v > 0), with margin tol."""
    s = 1.0 if v > 0 else -1.0
    a, b = sorted((s * lo, s * hi))            # how far we go in the bad direction
    limit = abs(v) + tol
    what = f"the paper's bound (no worse than {_g(v)}, margin {tol:g})"
    if b <= limit:
        return REPRODUCED, f"within {what}", 0.0
    if a > limit:
        return NOT_REPRODUCED, f"beyond {what}", 0.0
    return INCONCLUSIVE, f"straddles {what}", abs(s * m - limit)


def _none(v, m, lo, hi, tol):
    """A claimed absence of effect: our interval must stay inside ±tol (or leave it, to refute)."""
    if -tol <= lo and hi <= tol:
        return REPRODUCED, f"inside ±{tol:g}: no effect that counts, as the paper says", 0.0
    if lo > tol or hi < -tol:
        return NOT_REPRODUCED, f"outside ±{tol:g}: an effect where the paper reports none", 0.0
    return INCONCLUSIVE, f"too wide to tell whether the effect stays inside ±{tol:g}", abs(abs(m) - tol)


def _sign(v, m, lo, hi, tol):
    """A claimed direction without a size (the sign of v): our interval must lie beyond tol on v's side."""
    s = 1.0 if v > 0 else -1.0
    a, b = sorted((s * lo, s * hi))
    side = "the paper's direction" + (" (a gain)" if v > 0 else " (a loss)")
    if a > tol:
        return REPRODUCED, f"{side}, beyond the smallest effect that counts ({tol:g}); the paper states no size", 0.0
    if b < tol:
        return NOT_REPRODUCED, f"excludes an effect of {tol:g} or more in {side}", 0.0
    return INCONCLUSIVE, f"too wide to tell whether the effect goes beyond {tol:g} in {side}", abs(s * m - tol)


_RULES = {"effect": _effect, "bound": _bound, "none": _none, "sign": _sign}


def judge(reported: float, ours: float, ours_std: float = 0.0, kind: str = "relative",
          tolerance: float = DEFAULT_TOLERANCE, testable: bool = True, *, form: str = "effect", n: int = 1,
          deterministic: bool = False) -> tuple[str, str]:
    """The verdict for one claim, from the numbers alone, with the rule that gave it.

    `ours` is the mean over `n` seeds and `ours_std` their sample std; the uncertainty is the 95% t
    interval, mean ± t·s.e. with s.e. = std/√n. One seed has no spread, so it is `inconclusive` unless
    the quantity is `deterministic` (a count: parameters, FLOPs, bytes). By the claim's `form`:
    effect: reproduced when the interval excludes 0 on the paper's side and reaches its size within 2x,
    partly when the sign is right but the interval lies below half or above twice the size, not
    reproduced when it lies on the other side of 0 or below half the size; bound: reproduced when the
    interval stays within the bound plus `tolerance`, not reproduced when it lies beyond; none:
    reproduced inside ±tolerance, not reproduced outside. Otherwise inconclusive, with about how many
    seeds would decide. Absolute claims and untestable ones are `not testable at this scale`.
    """
    if kind == "absolute":
        return NOT_TESTABLE, "an absolute number at the paper's scale; our data and model are smaller"
    if not testable:
        return NOT_TESTABLE, "the chapter measures another quantity or setting than the paper's"
    if n < 2 and not deterministic:
        return INCONCLUSIVE, f"one seed ({_num(ours, True)}) has no spread to call an effect by: run 3 or more"
    lo, hi = interval(ours, ours_std, n)
    said = (f"ours {_num(ours, True)}, without seed noise" if n < 2
            else f"95% interval [{_num(lo, True)}, {_num(hi, True)}] over {n} seeds")
    verdict, why, distance = _RULES[form](reported, ours, lo, hi, tolerance)
    if verdict == INCONCLUSIVE:
        k = seeds_to_decide(ours_std, distance, n)
        why += (f"; about {k} seeds would decide if the spread stays {ours_std:.2g}" if k
                else "; more seeds at this spread would not decide")
    return verdict, f"{said}: {why}"


def judge_row(c: dict, row: dict) -> tuple[str, str]:
    """The verdict on YAML claim `c` for our stored comparison `row` (as `compare` writes it)."""
    if c.get("not_testable"):
        return NOT_TESTABLE, c["not_testable"]
    return judge(c["value"], row["ours"], row.get("ours_std", 0.0), c["kind"], tolerance(c),
                 row.get("testable", True), form=c.get("form", "effect"), n=row.get("n_seeds", 1),
                 deterministic=c.get("deterministic", False))


def compare(paper: str, claim_id: str, ours: dict | float, metric: str, note: str = "",
            testable: bool = True) -> dict:
    """Our number for a claim: a `summarize` dict over seeds (or one float), kept as mean, std, n and the
    per-seed values, with what we measured (`metric`) and the chapter's `note`.

    The row also carries today's verdict and reason for display; `record` stores the numbers only, and
    every table judges them again against the current YAML (`judge_row`)."""
    c = claim(paper, claim_id)
    s = ours if isinstance(ours, dict) else summarize([ours])
    if not _finite(s.get("mean")):
        raise IngurError(f"our number for {paper}/{claim_id} is {s.get('mean')!r}: a claim needs a finite "
                         f"measurement; check the run that produced it.")
    row = {"paper": paper, "claim": claim_id, "metric": metric, "ours": float(s["mean"]),
           "ours_std": float(s.get("std", 0.0)), "n_seeds": int(s.get("n", len(s.get("values", [0])))),
           "note": note.strip()}
    if "values" in s:
        row["values"] = [float(v) for v in s["values"]]
    if not testable:
        row["testable"] = False
    verdict, rule = judge_row(c, row)
    return {**row, "verdict": verdict, "reason": _join(rule, note)}


def _join(*parts: str) -> str:
    """Sentences joined, each ending in exactly one full stop."""
    return " ".join(_sentence(p) for p in parts if p and str(p).strip())


# ---------------------------------------------------------------- results (JSON)

def _validate_comparison(c, where: str) -> None:
    if not isinstance(c, dict):
        raise IngurError(f"{where}: each comparison must be a mapping written by ledger.compare, not {c!r}.")
    lack = [k for k in ("paper", "claim", "metric", "ours") if k not in c]
    name = f"{c.get('paper', '?')}/{c.get('claim', '?')}"
    if lack:
        raise IngurError(f"{where}: comparison {name} lacks {', '.join(lack)}: rerun the chapter to rewrite it.")
    n, std = c.get("n_seeds", 1), c.get("ours_std", 0.0)
    if not _finite(c["ours"]) or not _finite(std) or std < 0:
        raise IngurError(f"{where}: comparison {name} needs a finite number and std >= 0: rerun the chapter.")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise IngurError(f"{where}: comparison {name} has n_seeds {n!r}: it must be a whole number >= 1.")
    vals = c.get("values")
    if vals is not None and (not isinstance(vals, list) or len(vals) != n or not all(map(_finite, vals))):
        raise IngurError(f"{where}: comparison {name} must store its {n} per-seed values as finite numbers.")
    if vals is not None:
        s = summarize(vals)
        if not (math.isclose(s["mean"], c["ours"], rel_tol=1e-9, abs_tol=1e-12)
                and math.isclose(s["std"], std, rel_tol=1e-6, abs_tol=1e-12)):
            raise IngurError(f"{where}: comparison {name} stores a mean or std that its per-seed values do not "
                             f"give: numbers are written by ledger.compare only; rerun the chapter.")


def validate_results(d, where: str = "results file") -> dict:
    if not isinstance(d, dict):
        raise IngurError(f"{where} holds {type(d).__name__}, not a results record: rerun the chapter to rewrite it.")
    for key in ("chapter", "profile", "provenance", "metrics"):
        if key not in d:
            raise IngurError(f"{where} lacks {key!r}: results are written by ingur_lib.ledger.record only.")
    if not isinstance(d["provenance"], dict):
        raise IngurError(f"{where}: provenance must be a mapping: rerun the chapter to record it.")
    lack = [k for k in PROVENANCE_KEYS if k not in d["provenance"]]
    if lack:
        raise IngurError(f"{where}: provenance lacks {', '.join(lack)}: rerun the chapter to record them.")
    # Verdicts stored by older versions are ignored (never shown): every table judges the numbers again.
    for c in d.get("comparisons", []):
        _validate_comparison(c, where)
    return d


def results_path(chapter: str, profile: str) -> Path:
    return results_dir() / chapter / f"{profile}.json"


def record(chapter: str, profile: str, provenance: dict, metrics: dict, comparisons: Iterable[dict] = (),
           extra: dict | None = None) -> Path:
    """Validate and write data/results/<chapter>/<profile>.json atomically. Returns the path.

    Comparisons are stored as numbers (and the chapter's note) only: their verdicts are dropped, since
    the ledger judges them again against the current YAML whenever it draws a table."""
    stored = [{k: v for k, v in c.items() if k not in ("verdict", "reason")} for c in comparisons]
    d = {"chapter": chapter, "profile": profile, "provenance": provenance, "metrics": metrics,
         "comparisons": stored, **(extra or {})}
    validate_results(d, f"results for {chapter}/{profile}")
    path = dryrun.results_path(chapter, profile) if dryrun.active() else results_path(chapter, profile)
    if is_main_process():  # under a multi-process launch only the first process writes
        write_json(path, d)
    return path


def load_results(chapter: str, profile: str = "standard") -> dict | None:
    """The recorded results of a chapter in a profile, or None if that run was never recorded."""
    path = results_path(chapter, profile)
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise IngurError(f"{path} is not valid JSON ({err}): rerun `python -m ingur_lib reproduce {chapter} "
                         f"--profile {profile}` to rewrite it.") from err
    return validate_results(d, str(path))


def all_results() -> list[dict]:
    """Every recorded results file. A missing results folder is an error, not an empty ledger: a misspelt
    `INGUR_RESULTS` would otherwise publish every claim as "not yet run"."""
    root = results_dir()
    if not root.is_dir():
        raise IngurError(f"The results folder {root} does not exist: point INGUR_RESULTS at a folder of "
                         f"recorded results (or unset it to use data/results).")
    return [load_results(p.parent.name, p.stem) for p in sorted(root.glob("*/*.json"))]


# ---------------------------------------------------------------- tables

def _note(row: dict) -> str:
    """The chapter's note on a comparison. Files written before notes were stored separately keep it
    after the old rule's first sentence in `reason`."""
    if "note" in row:
        return row["note"]
    parts = str(row.get("reason", "")).split(". ", 1)
    return parts[1] if len(parts) == 2 else ""


def _legacy_testable(row: dict) -> dict:
    """Older files said "not testable" only through their verdict; read it as the chapter's testable=False."""
    if "testable" not in row and row.get("verdict") == NOT_TESTABLE:
        return {**row, "testable": False}
    return row


def _measurement(row: dict) -> tuple:
    """What identifies one measurement inside a results file (one measurement fills one claim)."""
    nums = tuple(row["values"]) if row.get("values") else (row["ours"], row.get("ours_std", 0.0))
    return (row.get("metric"), row.get("n_seeds", 1), nums)


def _ours(c: dict, row: dict) -> str:
    """Our number as shown: mean ± one standard error (n seeds); a count stands alone."""
    n, text = row.get("n_seeds", 1), _num(row["ours"], c["kind"] == "relative")
    if n > 1:  # mean and error never split across lines (no-break spaces); "(n=3)" may wrap
        return f"{text}{NBSP}±{NBSP}{_num(row.get('ours_std', 0.0) / math.sqrt(n))} (n={n})"
    return text if c.get("deterministic") else f"{text} (n=1)"


NBSP = "\u00a0"

COLUMNS = ["ref", "paper", "claim", "reported", "source", "ours", "our setting", "profile", "seeds",
           "verdict", "reason", "commit"]


def _rows_of(res: dict, reported: dict, paper: str | None) -> list[dict]:
    """One results file's comparisons, judged now against the current YAML."""
    rows, filled = [], {}
    for row in map(_legacy_testable, res.get("comparisons", [])):
        rc = next((x for x in reported.get(row["paper"], {}).get("claims", []) if x["id"] == row["claim"]), None)
        if rc is None or (paper and row["paper"] != paper):
            continue
        first = filled.setdefault(_measurement(row), row["claim"])
        if first != row["claim"]:
            verdict, rule = NOT_TESTABLE, (f"the measurement that fills claim {first!r} fills this one too; "
                                          f"one measurement cannot test two claims")
        else:
            verdict, rule = judge_row(rc, row)
        ours, setting = _ours(rc, row), row["metric"]
        if verdict == NOT_TESTABLE:  # another quantity never sits in the column beside the paper's number
            ours, setting = "", f"{_sentence(setting)} Measured: {ours}"
        rows.append({"ref": reported[row["paper"]]["ref"], "paper": row["paper"], "claim": rc["claim"],
                     "reported": _fmt(rc), "source": rc["source"], "ours": ours,
                     "our setting": setting, "profile": res["profile"], "seeds": row.get("n_seeds", 1),
                     "verdict": verdict, "reason": _join(rule, _note(row)),
                     "commit": res["provenance"]["commit"][:8], "_id": (row["paper"], row["claim"])})
    return rows


def _unrun(key: str, rep: dict, rc: dict) -> dict:
    if rc.get("not_testable") or rc["kind"] == "absolute":
        verdict, reason = NOT_TESTABLE, rc.get("not_testable") or "context: the paper's scale"
    else:
        verdict, reason = "not yet run", ""
    return {"ref": rep["ref"], "paper": key, "claim": rc["claim"], "reported": _fmt(rc), "source": rc["source"],
            "ours": "", "our setting": "", "profile": "", "seeds": 0, "verdict": verdict, "reason": reason,
            "commit": ""}


def _paper_of(chapter: str | None, reported: dict) -> str | None:
    """The paper a chapter rebuilds, by the book's naming (chapter `06_cvit` rebuilds `cvit`), so that
    a chapter without a recorded run still lists its paper's claims. (The ledger sits below the
    chapters and does not import their registry.)"""
    key = chapter.split("_", 1)[-1] if chapter else None
    return key if key in reported else None


def table(chapter: str | None = None, paper: str | None = None):
    """A pandas DataFrame: every reported claim, with our number and a verdict judged now (from the stored
    numbers against the current YAML) where a run compared it."""
    import pandas as pd
    reported = all_reported()
    rows = []
    for res in all_results():
        if not chapter or res["chapter"] == chapter:
            rows += _rows_of(res, reported, paper)
    seen = {r.pop("_id") for r in rows}
    own = _paper_of(chapter, reported)
    for key, rep in reported.items():
        if (paper and key != paper) or (chapter and key != own and not any(r["paper"] == key for r in rows)):
            continue
        rows += [_unrun(key, rep, rc) for rc in rep["claims"] if (key, rc["id"]) not in seen]
    df = pd.DataFrame(rows, columns=COLUMNS)
    order = {v: i for i, v in enumerate((*VERDICTS, "not yet run"))}     # reproduced first, unrun last
    return df.sort_values(["ref", "verdict"], key=lambda col: col.map(order) if col.name == "verdict" else col,
                          kind="stable").reset_index(drop=True)


def _fmt(c: dict) -> str:
    """The paper's number as the ledger shows it, in its form: `-22% (ImageNet-1K)`, `+8.68x`, `85.7% less`
    (a unit that says the direction takes no sign), `no effect: 0 points (ImageNet)` (never `+0`)."""
    unit = c["unit"]
    worded = bool(re.search(r"\b(less|more|fewer)\b", unit))   # "% less": the word is the sign
    where = f"{'' if unit.startswith('%') or unit == 'x' else ' '}{unit} ({c['dataset']})"
    form = c.get("form", "effect") if c["kind"] == "relative" else None

    def num(v: float, sign: bool = True) -> str:
        return "0" if v == 0 else f"{v:+g}" if sign and not worded else f"{v:g}"
    if form == "bound":
        return f"no worse than {num(c['value'])}{where}"
    if form == "none":
        return f"no effect: {num(c['value'])}{where}"
    if form == "sign":
        return f"{'a gain' if c['value'] > 0 else 'a loss'} (no size stated), {unit} ({c['dataset']})"
    return f"{num(c['value'], sign=form == 'effect' and c['value'] > 0)}{where}"


def to_latex(df, path: str | Path | None = None) -> str:
    """A booktabs LaTeX table for the thesis (optionally written atomically to `path`)."""
    cols = ["ref", "claim", "reported", "ours", "our setting", "verdict"]
    tex = df[cols].to_latex(index=False, escape=True, column_format="rp{4.5cm}lllp{2.2cm}")
    if path:
        write_text(path, tex)
    return tex


def _md_cell(x) -> str:
    # "->" in a claim ("81.8 -> 81.3") would break between its two characters in a narrow column.
    return str(x).replace("|", "\\|").replace("\n", " ").replace(" -> ", " → ")


def to_markdown(df, cols=("claim", "reported", "source", "ours", "our setting", "verdict", "reason")) -> str:
    if not len(df):  # a header with no rows reads as a broken table
        return "*No claim of this chapter's paper is in the ledger yet.*"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_md_cell(r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join(lines)


PROVENANCE_WIDTH = 88  # the book's text column, in characters


def _cache_relative(source: str) -> str:
    """A recorded data source as the page shows it: the cache path from the checkout's root
    (runs recorded the recording machine's folder, e.g. /work/wt-ch03/data/cache/fashion_mnist)."""
    return re.sub(r"/\S*?/(data/cache/)", r"\1", source)


def provenance_lines(chapter: str | None = None) -> list[str]:
    """One entry per recorded run: where, when and how it ran. Plain text (chapters print it), each
    entry wrapped to the book's 88-character column with indented continuation lines, so neither a
    printed cell nor a Markdown list item shows markup or runs off the page."""
    import textwrap
    out = []
    for res in all_results():
        if chapter and res["chapter"] != chapter:
            continue
        p = res["provenance"]
        text = (f"{res['chapter']}/{res['profile']}: commit {p['commit'][:10]}"
                f"{' (dirty)' if p['dirty'] else ''}, {p['date']}, {p['machine']}, torch {p['torch']}, "
                f"seeds {p['seeds']}, {p['wall_time_s'] / 60:.1f} min, "
                f"data: {_cache_relative(p['dataset'].get('source', '?'))}")
        out.append(textwrap.fill(text, PROVENANCE_WIDTH, subsequent_indent="  ", break_on_hyphens=False,
                                 break_long_words=False))
    return out


# sphinx-design badge colour per verdict, so a reader can scan a paper's column of verdicts.
# (The theme's "secondary" is an orange beside "partly"'s: undecided reads grey.)
BADGES = {REPRODUCED: "success", PARTLY: "warning", NOT_REPRODUCED: "danger", INCONCLUSIVE: "muted",
          NOT_TESTABLE: "info", "not yet run": "light"}


def _badge(verdict: str) -> str:
    return f"{{bdg-{BADGES.get(verdict, 'light')}}}`{verdict}`"


def _tally(df) -> str:
    counts = df["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in (*VERDICTS, "not yet run") if v in counts)


def _sentence(text: str) -> str:
    """`text` ending in exactly one full stop (sources and reasons may or may not end in one)."""
    return str(text).rstrip(".") + "."


def _compact(sub, badges: bool):
    """The four columns a reader scans (claim, paper, ours, verdict), numbered to match the details."""
    return sub.assign(**{"#": range(1, len(sub) + 1), "paper": sub["reported"],
                         "ours": sub["ours"].replace("", "–"),
                         "verdict": sub["verdict"].map(_badge) if badges else sub["verdict"]})


def _details(sub) -> list[str]:
    """One numbered line per row: the paper's source, our setting, and why the verdict."""
    return [f"{i}. **Paper:** {_sentence(r['source'])}"
            + (f" **Ours:** {_sentence(r['our setting'])}" if r["our setting"] else "")
            + (f" **Why:** {_sentence(r['reason'])}" if r["reason"] else "")
            for i, (_, r) in enumerate(sub.iterrows(), 1)]


COMPACT = ("#", "claim", "paper", "ours", "verdict")
FOLD_TITLE = "Where each number comes from, and why the verdict"


def chapter_markdown(chapter: str) -> str:
    """A chapter's ledger rows for its notebook: claim, paper, ours (mean ± s.e.), verdict, with sources,
    settings and reasons folded below (an HTML <details>, which Jupyter and the book both render)."""
    sub = table(chapter=chapter)
    if not len(sub):
        return (f"No recorded run of {chapter} compares with the paper yet: "
                f"`python -m ingur_lib reproduce {chapter} --profile standard`.")
    return "\n".join([to_markdown(_compact(sub, badges=False), cols=COMPACT), "",
                      f"<details><summary>{FOLD_TITLE}</summary>", "", *_details(sub), "", "</details>"])


def _paper_section(chapter, sub) -> list[str]:
    """One paper: its tally, a four-column table (claim, paper, ours, verdict), and the details folded."""
    # A chapter whose notebook has not landed has no page to link to (a dead link fails the -W build).
    name = f"[{chapter.id}](../notebooks/{chapter.id}.ipynb)" if chapter.module else chapter.id
    return [f"## [{chapter.ref}] {chapter.title}", "", f"Chapter: {name}. Verdicts: {_tally(sub)}.", "",
            to_markdown(_compact(sub, badges=True), cols=COMPACT), "",
            f":::{{dropdown}} {FOLD_TITLE}", *_details(sub), ":::", ""]


RULE_TEXT = [
    "Each claim states its form, and its verdict is judged when this page is built, from the stored numbers "
    "against the claims as they stand now (`ingur_lib.ledger.judge`). An *effect* (\"A beats B by about "
    "X\") is *reproduced* when our 95% interval excludes zero on the paper's side and reaches its size "
    "within a factor of two; *partly* when the sign is right but the size is off; *not reproduced* when the "
    "interval shows the opposite sign or excludes half the paper's size. A *bound* (\"loses at most X\") "
    "is reproduced when the interval stays within X plus the claim's tolerance (losing less than the paper "
    "counts), and *no effect* when it stays inside ± the tolerance. A *direction* stated without a size "
    "(\"A beats B\") is reproduced when the interval lies beyond the tolerance on the paper's side. "
    "An interval too wide to tell is "
    "*inconclusive*, and the reason says about how many seeds would decide.",
    "*Ours* reads mean ± standard error over n seeds; the interval is mean ± t·s.e. (Student's t, 4.30 "
    "for 3 seeds), not the spread of single seeds. One seed cannot show an effect, except for counts that "
    "do not depend on it (parameters, FLOPs, bytes). Absolute numbers at the paper's scale, claims we "
    "measure as another quantity, and a second claim filled by a measurement that already fills one are "
    "*not testable at this scale*. The fold under each table gives every number's source, our setting "
    "and the reason.",
]


def _baseline_value(m: dict) -> str:
    """A baseline metric on the ledger page: counts as counts (`407,690`, not `4.077e+05`)."""
    v = m["mean"]
    val = f"{v:,.0f}" if v == round(v) and abs(v) >= 1000 else f"{v:.4g}"
    return val + (f" ± {m['std']:.2g} std" if m.get("n", 1) > 1 else "")


def book_page(chapters) -> str:
    """The book's ledger page, generated from data/reported and data/results, one section per chapter of
    `chapters` (the book's list, `ingur_lib.chapters.CHAPTERS`, passed in by `ingur_lib.book`)."""
    df = table()
    parts = ["# The ledger: reported vs reproduced", "",
             "```{note}\nThis page is generated by `python -m ingur_lib ledger --write` from "
             "`data/reported/*.yaml` (what each paper reports, with its table or section) and "
             "`data/results/*/*.json` (what running this book's code produced, with provenance). "
             "Do not edit it by hand.\n```", "", RULE_TEXT[0], "", RULE_TEXT[1], "",
             f"Totals: {_tally(df)}.", ""]
    for c in chapters:
        sub = df[df["paper"] == c.paper]
        if c.paper and len(sub):
            parts += _paper_section(c, sub)
    baselines = [r for r in all_results() if not r.get("comparisons")]
    if baselines:
        parts += ["## Baselines measured by the book", "",
                  "| chapter | profile | metric | value |", "|---|---|---|---|"]
        for r in baselines:
            for name, m in r["metrics"].items():
                val = _baseline_value(m)
                parts.append(f"| {r['chapter']} | {r['profile']} | {name} | {val} |")
        parts.append("")
    parts += ["## Provenance", ""] + [f"- {line}" for line in provenance_lines()] + [""]
    return "\n".join(parts)


def write_book_page(chapters, path: str | Path | None = None) -> Path:
    path = Path(path or repo_root() / "book" / "ledger.md")
    write_text(path, book_page(chapters))
    return path
