"""Classroom exercises: automatic checks, and the student version of every notebook.

In a chapter notebook an exercise is two cells:

* a solution cell, tagged `solution` (and `hide-input`, so the rendered book folds it), whose code
  marks the part a student writes between `# BEGIN SOLUTION` and `# END SOLUTION`;
* a check cell that calls `check(name, fn)`, which compares the student's function with the
  library's reference on random inputs and says what differs.

`make_student(out)` (CLI: `python -m ingur_lib student --out DIR`) writes every notebook with each
solution region replaced by `raise NotImplementedError(...)`, and all outputs removed: the checks
then fail until the student fills the stubs in.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import torch

from .atomic import write_text
from .paths import repo_root

CHECKS: dict[str, Callable[[Callable], None]] = {}
_REGION = re.compile(r"^([ \t]*)# BEGIN SOLUTION[^\n]*\n.*?^[ \t]*# END SOLUTION[^\n]*$", re.S | re.M)
STUB = '{indent}raise NotImplementedError("Exercise: replace this line with your code.")'


def exercise(name: str):
    """Register a checker `fn(student_fn)` that raises AssertionError with a helpful message."""
    def deco(fn):
        CHECKS[name] = fn
        return fn
    return deco


def check(name: str, student_fn: Callable) -> None:
    """Run exercise `name`'s check on the student's function; print a verdict or raise with a hint."""
    if name not in CHECKS:  # a chapter module registers its exercises when it is imported
        raise KeyError(f"No exercise {name!r}: import its chapter module first (`from ingur_lib.chapters import "
                       f"{name.split('.')[0]}`); registered now: {', '.join(sorted(CHECKS)) or 'none'}.")
    CHECKS[name](student_fn)
    print(f"✓ {name}: correct")


def assert_same(got, want, what: str, atol: float = 1e-5) -> None:
    """assert_close with a message that tells a student what to look at."""
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}.")
    try:
        torch.testing.assert_close(got, want, atol=atol, rtol=1e-4)
    except AssertionError as err:
        raise AssertionError(f"{what}: values differ from the reference.\n{err}") from None


def strip_solutions(source: str) -> str:
    """Replace each BEGIN/END SOLUTION region by a NotImplementedError stub at the same indent."""
    return _REGION.sub(lambda m: STUB.format(indent=m.group(1)), source)


def student_notebook(nb: dict) -> dict:
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        if "solution" in cell.get("metadata", {}).get("tags", []):
            src = strip_solutions(src)
            cell["metadata"]["tags"] = [t for t in cell["metadata"]["tags"] if t not in ("solution", "hide-input")]
        cell["source"] = src
        cell["outputs"], cell["execution_count"] = [], None
    return nb


def make_student(out: str | Path) -> list[Path]:
    """Write the classroom version of every notebook into `out`."""
    written = []
    for path in sorted((repo_root() / "notebooks").glob("*.ipynb")):
        nb = student_notebook(json.loads(path.read_text(encoding="utf-8")))
        target = Path(out) / path.name
        write_text(target, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written
