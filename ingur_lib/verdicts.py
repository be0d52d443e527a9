"""The papers' claims (`data/reported/<paper>.yaml`) and the verdict on each, judged from our numbers.

Each claim has an id, a sentence, metric, value, unit, dataset, kind (`absolute` or `relative`), and its
source in the paper (table/figure/section). A relative claim may also state its `form` (`effect`, the
default: "A beats B by ~X"; `bound`: "loses at most X"; `none`: "no effect"; `sign`: "A beats B" with no
size, read from the value's sign), a `tolerance` (the smallest effect that counts for it),
`deterministic: true` (a count such as parameters, FLOPs or bytes, which one run measures without seed
noise), `not_testable: <why>` (the quantity cannot be measured at our scale, so the row cannot be judged)
or `not_run: <why, and what it would cost>` (it could be measured, but the budget left it out), and
`of: <id>` (a count measured against the paper's number that absolute claim `<id>` holds, in %: the
ledger shows the two as one row, the paper's number beside ours in its unit).

A verdict is computed from the stored numbers against the current YAML by one rule (`judge`, on the
interval of `stats`) each time a table is drawn, never typed in by hand nor read back from a results file.
"""
from __future__ import annotations

from .errors import IngurError
from .paths import reported_dir
from .stats import _finite, interval, seeds_to_decide, summarize


VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive", "not testable at this scale", "not run")


REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE, NOT_RUN = VERDICTS


FORMS = ("effect", "bound", "none", "sign")


# The smallest effect (in the claim's unit, usually accuracy points) a verdict counts, unless a claim sets its own.
DEFAULT_TOLERANCE = 0.3


CLAIM_KEYS = ("id", "claim", "metric", "value", "unit", "dataset", "kind", "source")


PAPER_KEYS = ("paper", "ref", "title", "authors", "year", "bibkey", "claims")


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
    for key in ("not_testable", "not_run"):
        if key in c and not (isinstance(c[key], str) and c[key].strip()):
            raise IngurError(f"{where}: claim {cid!r} {key} must say why in a sentence.")
    if "not_testable" in c and "not_run" in c:
        raise IngurError(f"{where}: claim {cid!r} is both not_testable and not_run: keep the one that holds "
                         f"(not_testable: cannot be measured at our scale; not_run: the budget left it out).")
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
        raise IngurError(f"{where} lacks {', '.join(missing)}: add them (see ingur_lib/verdicts.py).")
    if not isinstance(d["claims"], list):
        raise IngurError(f"{where}: claims must be a list of claims, one `- id: ...` each.")
    ids = set()
    for c in d["claims"]:
        _validate_claim(c, where)
        if c["id"] in ids:
            raise IngurError(f"{where}: claim id {c['id']!r} appears twice: make ids unique.")
        ids.add(c["id"])
    kinds = {c["id"]: c["kind"] for c in d["claims"]}
    for c in d["claims"]:
        if "of" in c and (kinds.get(c["of"]) != "absolute" or c.get("unit") != "%"):
            raise IngurError(f"{where}: claim {c['id']!r} is `of` {c['of']!r}: name an absolute claim of this "
                             f"file holding the paper's number, and measure ours against it in %.")
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


def _num(x: float, sign: bool = False) -> str:
    """A measured number: two decimals, or three significant digits when tiny or huge; a whole number
    of 1,000 or more (a count: parameters, OPs, bytes) as a count, `39,938`, never `39,938.00`."""
    spec = "+" if sign else ""
    if x == round(x) and 1000 <= abs(x) < 1e15:
        return f"{x:{spec},.0f}"
    return f"{x:{spec},.2f}" if x == 0 or 0.01 <= abs(x) < 1e6 else f"{x:{spec}.3g}"


def _si(x: float) -> str:
    """A large count in SI units, three significant digits: 79 M, 1.93 G."""
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:g}"


def _g(x: float) -> str:
    """The paper's number in a reason: signed, as written in the YAML."""
    return f"{x:+g}"


# How close to the paper's size an effect must come, by what it measures (the ledger page states both): a
# score (accuracy, BLEU, AUC points) read over seeds within a factor of two; a cost (parameters, FLOPs,
# throughput, size: units "%" or "x") within 25%, since a reader budgets by it and we measure it tightly.
SIZE_BANDS = {"score": 2.0, "cost": 1.25}


COST_UNITS = ("%", "% less", "% more", "x")


def size_band(c: dict) -> float:
    """The factor within which our point estimate must lie of claim `c`'s size (`SIZE_BANDS`)."""
    return SIZE_BANDS["cost" if c["unit"] in COST_UNITS else "score"]


def _effect(v, m, lo, hi, tol, band=SIZE_BANDS["score"]):
    """A claimed effect v: our interval must exclude 0 on v's side (the evidence rule), and our point
    estimate must lie within a factor `band` of |v| (widened to |v| ± tol where that is wider)."""
    s = 1.0 if v > 0 else -1.0
    a, b = sorted((s * lo, s * hi))            # our interval, in the direction of the paper's effect
    size, x = abs(v), s * m
    low, high = min(size / band, size - tol), max(size * band, size + tol)
    within = f"within a factor of {band:g} of its {_g(v)}"
    if a > 0:
        if x < low:
            return PARTLY, f"the paper's sign, but our mean is not {within} (below {low:.3g})", 0.0
        if x > high:
            return PARTLY, f"the paper's sign, but our mean is not {within} (above {high:.3g})", 0.0
        return REPRODUCED, f"the paper's sign, and our mean {within}", 0.0
    if b < 0:
        return NOT_REPRODUCED, f"the opposite sign to the paper's {_g(v)}", 0.0
    if b < low:
        return NOT_REPRODUCED, f"excludes the paper's {_g(v)} (and anything above {low:.3g})", 0.0
    # Deciding needs a half-width below the larger of the distances to 0 and to the band's lower edge.
    return INCONCLUSIVE, f"too wide to tell no effect from the paper's {_g(v)}", max(x, low - x)


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
          tolerance: float = DEFAULT_TOLERANCE, *, form: str = "effect", n: int = 1,
          deterministic: bool = False, band: float = SIZE_BANDS["score"],
          minutes_per_seed: float | None = None) -> tuple[str, str]:
    """The verdict for one claim, from the numbers alone, with the rule that gave it.

    `ours` is the mean over `n` seeds and `ours_std` their sample std; the uncertainty is the 95% t
    interval, mean ± t·s.e. with s.e. = std/√n. One seed has no spread, so it is `inconclusive` unless
    the quantity is `deterministic` (a count: parameters, FLOPs, bytes). By the claim's `form`:
    effect: reproduced when the interval excludes 0 on the paper's side (`resolved`) and our mean lies
    within a factor `band` of the paper's size (`size_band`: 2 for a score, 1.25 for a cost; widened to
    ± `tolerance` where wider), partly when the sign is resolved but the mean lies outside that band, not
    reproduced when the interval lies on the other side of 0 or below the band; bound: reproduced when the
    interval stays within the bound plus `tolerance`, not reproduced when it lies beyond; none:
    reproduced inside ±tolerance, not reproduced outside. Otherwise inconclusive, with about how many
    seeds would decide (and, given the run's `minutes_per_seed`, about how long the extra seeds take).
    Absolute claims are `not testable at this scale` (so are claims whose YAML says `not_testable`,
    `judge_row`).
    """
    if kind == "absolute":
        return NOT_TESTABLE, "an absolute number at the paper's scale; our data and model are smaller"
    if n < 2 and not deterministic:
        return INCONCLUSIVE, f"one seed ({_num(ours, True)}) has no spread to call an effect by: run 3 or more"
    lo, hi = interval(ours, ours_std, n)
    said = (f"ours {_num(ours, True)}, without seed noise" if n < 2
            else f"95% interval [{_num(lo, True)}, {_num(hi, True)}] over {n} seeds")
    extra = (band,) if form == "effect" else ()
    verdict, why, distance = _RULES[form](reported, ours, lo, hi, tolerance, *extra)
    if verdict == INCONCLUSIVE:
        k = seeds_to_decide(ours_std, distance, n)
        why += (f"; about {k} seeds would decide if the spread stays {ours_std:.2g}" if k
                else "; more seeds at this spread would not decide")
        if k and minutes_per_seed:
            why += f" (about {(k - n) * minutes_per_seed:.0f} more minutes at this run's pace)"
    return verdict, f"{said}: {why}"


def judge_row(c: dict, row: dict, minutes_per_seed: float | None = None) -> tuple[str, str]:
    """The verdict on YAML claim `c` for our stored comparison `row` (as `compare` writes it); a run's
    `minutes_per_seed` lets an inconclusive verdict say how long deciding it would take."""
    if c.get("not_testable"):
        return NOT_TESTABLE, c["not_testable"]   # (a `not_run` claim that a run did fill is judged)
    return judge(c["value"], row["ours"], row.get("ours_std", 0.0), c["kind"], tolerance(c),
                 form=c.get("form", "effect"), n=row.get("n_seeds", 1),
                 deterministic=c.get("deterministic", False), band=size_band(c),
                 minutes_per_seed=minutes_per_seed)


def compare(paper: str, claim_id: str, ours: dict | float, metric: str, note: str = "") -> dict:
    """Our number for a claim: a `summarize` dict over seeds (or one float), kept as mean, std, n and the
    per-seed values, with what we measured (`metric`) and the chapter's `note`.

    The row also carries today's verdict and reason for display; `record` stores the numbers only, and
    every table judges them again against the current YAML (`judge_row`). Whether a claim can be tested
    at our scale is the YAML's to say (`not_testable`), never the results file's."""
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
    verdict, rule = judge_row(c, row)
    return {**row, "verdict": verdict, "reason": _join(rule, note)}


def _join(*parts: str) -> str:
    """Sentences joined, each ending in exactly one full stop."""
    return " ".join(_sentence(p) for p in parts if p and str(p).strip())


def _sentence(text: str) -> str:
    """`text` ending in exactly one full stop (sources and reasons may or may not end in one)."""
    return str(text).rstrip(".") + "."
