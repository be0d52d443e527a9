"""Bring older results files to today's rule: results hold numbers only.

`python -m ingur_lib.migrate` rewrites every data/results/*/*.json (or `INGUR_RESULTS`) whose comparisons
store text the ledger now judges itself (a `verdict`, a `reason`, a `testable` flag) without those keys.
Every number stays as it was (a test compares them leaf for leaf); whether a claim is testable at our
scale is said by its YAML (`not_testable`), and the verdict is judged when a table is drawn.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .atomic import write_json
from .paths import results_dir

JUDGED = ("verdict", "reason", "testable")


def migrated(d: dict) -> dict:
    """`d` with its comparisons stripped of what the ledger judges (a new dict; `d` is left alone)."""
    comparisons = [{k: v for k, v in c.items() if k not in JUDGED} for c in d.get("comparisons", [])]
    return {**d, "comparisons": comparisons} if "comparisons" in d else dict(d)


def migrate(root: Path | None = None) -> list[Path]:
    """Rewrite (atomically) each results file under `root` that `migrated` changes; returns their paths."""
    changed = []
    for path in sorted((root or results_dir()).glob("*/*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        new = migrated(d)
        if new != d:
            write_json(path, new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    paths = migrate()
    print("\n".join(f"migrated {p}" for p in paths) or "every results file already holds numbers only")
    sys.exit(0)
