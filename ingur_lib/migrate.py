"""Bring older results files to today's rules: results hold numbers only, in the book's one format.

`python -m ingur_lib.migrate` rewrites every data/results/*/*.json (or `INGUR_RESULTS`) that
* stores text the ledger now judges itself in its comparisons (a `verdict`, a `reason`, a `testable` flag):
  those keys are dropped (`migrated`);
* stores its convergence check in an older per-chapter format, some with a stored `converged` verdict: it
  is rewritten into `experiment.longer_check`'s record per checked model ({"seeds", "factor", "base",
  "longer", "change"}, plus what the chapter's page says of the run, e.g. its epochs), and every stored
  verdict (`converged`, `moved`, `smallest_effect`, a `rule`) is dropped: the ledger's rule judges the
  record when a page is drawn (`convergence_migrated`). The provenance says so under "migrated".
Every per-seed number stays as it was (tests compare them with the files before the migration); whether a
claim is testable at our scale is said by its YAML (`not_testable`), and the verdict is judged when a table
is drawn.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .atomic import write_json
from .paths import results_dir

JUDGED = ("verdict", "reason", "testable")
RECORD = ("seeds", "factor", "base", "longer", "change")
# What the provenance of a file whose convergence check was rewritten says (no date: rerunning changes nothing).
CONVERGENCE_NOTE = ("convergence check rewritten into experiment.longer_check's record per checked model "
                    "(seeds, factor, base, longer, change); stored verdicts dropped, every per-seed number kept")


def migrated(d: dict) -> dict:
    """`d` with its comparisons stripped of what the ledger judges (a new dict; `d` is left alone)."""
    comparisons = [{k: v for k, v in c.items() if k not in JUDGED} for c in d.get("comparisons", [])]
    return {**d, "comparisons": comparisons} if "comparisons" in d else dict(d)


def _record(base, longer, seeds, factor, change=None, percent: bool = False, **context) -> dict:
    """`experiment.longer_check`'s record of stored numbers; a stored per-seed `change` is kept as stored
    (its summary's mean, std, n, values), so no number is recomputed."""
    from .experiment import longer_check
    rec = longer_check([float(x) for x in base], [float(x) for x in longer], seeds, factor, percent=percent)
    if change is not None:
        rec["change"] = {k: change[k] for k in ("mean", "std", "n", "values")}
    return {**rec, **context}


def is_one_format(conv) -> bool:
    """A convergence entry already in the one format: {model: a `longer_check` record (+ context)}."""
    return isinstance(conv, dict) and bool(conv) and all(
        isinstance(v, dict) and set(RECORD) <= set(v) and "converged" not in v for v in conv.values())


def _transformer(c: dict, d: dict) -> dict:
    seed = d["provenance"]["seeds"][0]
    return {name: _record([v["exact"]], [v["exact_longer"]], [seed], v["epochs_longer"] / v["epochs"],
                          epochs=v["epochs"])
            for name, v in c.items() if isinstance(v, dict)}


def _deit(c: dict, d: dict) -> dict:
    (e0, e1), out = c["epochs"], {}
    out[c["variant"]] = _record(c["base"]["values"], c["longer"]["values"], c["seeds"], e1 / e0,
                                c["change_points"], epochs=e0)
    last = c.get("teacher_last_two_evals") or {}
    for name, t in (c.get("teacher_longer") or {}).items():
        (t0, t1) = t["epochs"]
        out[f"teacher {name}"] = _record([t["acc"]], [t["acc_longer"]], [0], t1 / t0, epochs=t0,
                                         **({"last_two_evals": last[name]} if name in last else {}))
    return out


def _cait(c: dict, d: dict) -> dict:
    depth = c["model"].split("/")[1]
    base = d["accuracy"]["ViT"][depth]
    longer = c["acc_longer"]["values"]
    return {c["model"]: _record(base, longer, d["provenance"]["seeds"][:len(longer)],
                                c["longer_steps"] / c["steps"], c["delta"], steps=c["steps"])}


def _augreg(c: dict, d: dict) -> dict:
    seeds = d["provenance"]["seeds"]
    return {f"{s}/n={n}": _record(v["base"], v["longer"], seeds[:len(v["longer"])], v["factor"], v["change"],
                                  setting=s, n_train=int(n))
            for n, per in c.items() for s, v in per.items()}


def _vtp(c: dict, d: dict) -> dict:
    return {c["arm"]: _record([c["acc"]], [c["acc_longer"]], [c["seed"]], c["factor"], epochs=c["epochs"])}


def _binaryvit(c: dict, d: dict) -> dict:
    return {name: _record(v["acc"], v["acc_1.5x"], v["seeds"], 1.5, steps=v["steps"]) for name, v in c.items()}


def _matmul_free(c: dict, d: dict) -> dict:
    if "models" in c:  # the format its code already wrote, one wrapper away from the one format
        return {name: {**rec, "epochs": c["epochs"]} for name, rec in c["models"].items()}
    return {c["model"]: _record([c["val_loss"]], [c["val_loss_longer"]], [d["provenance"]["seeds"][0]],
                                c["epochs_longer"] / c["epochs"], percent=True, lr=c["lr"], epochs=c["epochs"])}


CONVERTERS = {"01_transformer": _transformer, "02_deit": _deit, "03_cait": _cait, "04_augreg": _augreg,
              "07_vtp": _vtp, "08_binaryvit": _binaryvit, "09_matmul_free": _matmul_free}


def convergence_migrated(d: dict) -> dict:
    """`d` with its convergence check in the one format and a note in its provenance (a new dict; `d` is left
    alone); unchanged when it is already so, or its chapter has no converter."""
    conv, convert = d.get("convergence"), CONVERTERS.get(d.get("chapter"))
    if not conv or convert is None or is_one_format(conv):
        return dict(d)
    prov = {**d["provenance"], "migrated": {**d["provenance"].get("migrated", {}), "convergence": CONVERGENCE_NOTE}}
    return {**d, "provenance": prov, "convergence": convert(conv, d)}


def migrate(root: Path | None = None) -> list[Path]:
    """Rewrite (atomically) each results file under `root` that the migrations change; returns their paths."""
    changed = []
    for path in sorted((root or results_dir()).glob("*/*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        new = convergence_migrated(migrated(d))
        if new != d:
            write_json(path, new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    paths = migrate()
    print("\n".join(f"migrated {p}" for p in paths) or "every results file already holds numbers only, in one format")
    sys.exit(0)
