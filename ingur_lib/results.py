"""The results store: `data/results/<chapter>/<profile>.json`, written only by running the code (`record`).

A file holds the provenance (commit, dirty flag, date, machine, torch, profile, seeds, wall time,
dataset, config), the metrics (mean, std and the per-seed values), and our numbers for claims
(`verdicts.compare`): mean, std, n and the per-seed values, never a verdict. Files are validated on
read and written atomically, by the main process only under a multi-process launch.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from . import dryrun
from .atomic import write_json
from .distributed import is_main_process
from .errors import IngurError
from .paths import results_dir
from .stats import _finite, summarize


PROVENANCE_KEYS = ("commit", "dirty", "date", "machine", "torch", "profile", "seeds", "wall_time_s", "dataset")


# What a stored comparison may hold: its claim, what we measured, our numbers and the chapter's note. A verdict,
# a reason or a `testable` flag is judged from the numbers against the YAML when a table is drawn, never stored.
COMPARISON_TEXT = ("paper", "claim", "metric", "note")


COMPARISON_KEYS = (*COMPARISON_TEXT, "ours", "ours_std", "n_seeds", "values")


def _validate_comparison(c, where: str) -> None:
    if not isinstance(c, dict):
        raise IngurError(f"{where}: each comparison must be a mapping written by ledger.compare, not {c!r}.")
    lack = [k for k in ("paper", "claim", "metric", "ours") if k not in c]
    name = f"{c.get('paper', '?')}/{c.get('claim', '?')}"
    if lack:
        raise IngurError(f"{where}: comparison {name} lacks {', '.join(lack)}: rerun the chapter to rewrite it.")
    extra = [k for k in c if k not in COMPARISON_KEYS]
    if extra:
        raise IngurError(f"{where}: comparison {name} stores {', '.join(map(repr, extra))}, but results files hold "
                         f"numbers only (the ledger judges them against the YAML): delete those keys, or run "
                         f"`python -m ingur_lib.migrate`.")
    wrong = [k for k in COMPARISON_TEXT if k in c and not isinstance(c[k], str)]
    if wrong:
        raise IngurError(f"{where}: comparison {name} has a non-text {', '.join(wrong)}: rerun the chapter.")
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
    _validate_types(d, where)
    for c in d.get("comparisons", []):
        _validate_comparison(c, where)
    return d


# The type each field a page reads must have (None: any); `runtime.provenance` writes them so.
_TYPES = {"chapter": str, "profile": str, "metrics": dict, "comparisons": list}


_PROVENANCE_TYPES = {"commit": str, "dirty": (bool, type(None)), "date": str, "machine": str, "torch": str,
                     "profile": str, "seeds": list, "wall_time_s": (int, float), "dataset": dict}


def _validate_types(d: dict, where: str) -> None:
    """A field of the wrong type is named here, not met later as a traceback inside a page."""
    fields = [(k, d[k], t) for k, t in _TYPES.items() if k in d]
    fields += [(f"provenance.{k}", d["provenance"][k], t) for k, t in _PROVENANCE_TYPES.items()]
    for name, value, types in fields:
        if not isinstance(value, types) or (types == (int, float) and isinstance(value, bool)):
            want = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise IngurError(f"{where}: {name} is {type(value).__name__} {value!r:.40}, not {want}: "
                             f"results are written by ingur_lib.ledger.record only; rerun the chapter.")
    bad = [k for k, m in d["metrics"].items()
           if not (isinstance(m, dict) and _finite(m.get("mean")) and _finite(m.get("std", 0.0)))]
    if bad:
        raise IngurError(f"{where}: metric {bad[0]!r} is not a summary with a finite mean and std "
                         f"(ledger.summarize): rerun the chapter.")


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
    """Every recorded results file (a missing results folder is an error: `paths.results_dir`)."""
    return [load_results(p.parent.name, p.stem) for p in sorted(results_dir().glob("*/*.json"))]
