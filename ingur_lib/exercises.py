"""Classroom exercises: automatic checks, and the student version of every notebook.

In a chapter notebook an exercise is two cells:

* a solution cell, tagged `solution` and `remove-input` (the rendered book shows only its output,
  not the answer one click away), whose code marks the part a student writes between
  `# BEGIN SOLUTION` and `# END SOLUTION`;
* a check cell that calls `check(name, fn)`, which compares the student's function with a reference on
  random inputs and says what differs. It first rejects the library's own function passed in (or a
  wrapper that calls it): an exercise asks for code the page has not shown.

"Think" questions get their worked answer in a Markdown cell tagged `answer` (and `remove-cell`, so
the book does not show it): the teacher's version keeps it, the student's drops it.

`make_student(out)` (CLI: `python -m ingur_lib student`, into `classroom/` by default) writes every notebook
with each solution region replaced by `raise NotImplementedError(...)`, answers dropped and all outputs
removed: the checks then fail until the student fills the stubs in. `classroom/` is committed, because it
is what readers get: the Colab badge opens it and the book's download button serves it
(`sphinx_classroom`); a test keeps it equal to what `make_student` writes. `make_student(out, teacher=True)`
(`student --teacher`) keeps solutions and answers, for the teacher preparing the class.
"""
from __future__ import annotations

import functools
import inspect
import json
import re
import types
from pathlib import Path
from typing import Callable

import torch

from .atomic import write_text
from .paths import book_path

CHECKS: dict[str, Callable[[Callable], None]] = {}
REFERENCES: dict[str, tuple[Callable, ...]] = {}
SOLUTION_TAGS = ("solution", "remove-input")
_REGION = re.compile(r"^([ \t]*)# BEGIN SOLUTION[^\n]*\n.*?^[ \t]*# END SOLUTION[^\n]*$", re.S | re.M)
STUB = '{indent}raise NotImplementedError("Exercise: replace this line with your code.")'


def exercise(name: str, *library: Callable):
    """Register a checker `fn(student_fn)` that raises AssertionError with a helpful message.

    `library`: the library functions that already do what the exercise asks; `check` rejects them.
    """
    def deco(fn):
        CHECKS[name] = fn
        REFERENCES[name] = library
        return fn
    return deco


def _library_callable(obj) -> bool:
    """A function or class from ingur_lib or torch (what a student must not hand in as their own)."""
    mod = getattr(obj, "__module__", None) or ""
    return callable(obj) and mod.split(".")[0] in ("ingur_lib", "torch")


def reject_library(student_fn: Callable, *library: Callable) -> None:
    """Raise AssertionError if `student_fn` is one of `library`, a library function, or a thin wrapper
    (a partial, a lambda or a def) whose code names one of them or the library module that holds it."""
    fn = student_fn
    while isinstance(fn, functools.partial) or hasattr(fn, "__wrapped__"):
        fn = fn.func if isinstance(fn, functools.partial) else fn.__wrapped__
    hint = "write your own code: the exercise asks for what the library does not hand you"
    if fn in library or _library_callable(fn):
        raise AssertionError(f"{getattr(fn, '__qualname__', fn)} is the library's function; {hint}.")
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    names = {lib.__name__ for lib in library}
    methods = {lib.__name__ for lib in library if "." in getattr(lib, "__qualname__", "")}
    if methods & set(code.co_names):  # e.g. lambda model, x: model.tokens(x)
        raise AssertionError(f"your function calls the library's method `{(methods & set(code.co_names)).pop()}`; "
                             f"{hint}.")
    globs = getattr(fn, "__globals__", {})
    cells = {n: c.cell_contents for n, c in zip(code.co_freevars, fn.__closure__ or ()) if _filled(c)}
    for name in _names(code):
        obj = cells.get(name, globs.get(name))
        if obj is not None and (obj in library or (isinstance(obj, types.ModuleType)
                                                   and obj.__name__.startswith("ingur_lib")
                                                   and any(hasattr(obj, n) for n in names))):
            raise AssertionError(f"your function calls the library's `{name}`; {hint}.")


def _filled(cell) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def _names(code) -> set[str]:
    """Every global/free name a function's code (and the code nested in it) refers to."""
    out = set(code.co_names) | set(code.co_freevars)
    for const in code.co_consts:
        if inspect.iscode(const):
            out |= _names(const)
    return out


def check(name: str, student_fn: Callable) -> None:
    """Run exercise `name`'s check on the student's function; print a verdict or raise with a hint."""
    if name not in CHECKS:  # a chapter module registers its exercises when it is imported
        raise KeyError(f"No exercise {name!r}: import its chapter module first (`from ingur_lib.chapters import "
                       f"{name.split('.')[0]}`); registered now: {', '.join(sorted(CHECKS)) or 'none'}.")
    reject_library(student_fn, *REFERENCES.get(name, ()))
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


def student_notebook(nb: dict, teacher: bool = False) -> dict:
    """The classroom copy: solutions stubbed and answers dropped (teacher=True: both kept)."""
    nb = json.loads(json.dumps(nb))
    kept = []
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "answer" in tags and not teacher:
            continue
        kept.append(cell)
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        if "solution" in tags:
            src = src if teacher else strip_solutions(src)
            cell["metadata"]["tags"] = [t for t in tags if t not in SOLUTION_TAGS + ("hide-input",)]
        cell["source"] = src
        cell["outputs"], cell["execution_count"] = [], None
    nb["cells"] = kept
    return nb


def make_student(out: str | Path, teacher: bool = False) -> list[Path]:
    """Write the classroom version of every notebook into `out` (the teacher's with teacher=True)."""
    written = []
    for path in sorted(book_path("notebooks").glob("*.ipynb")):
        nb = student_notebook(json.loads(path.read_text(encoding="utf-8")), teacher)
        target = Path(out) / path.name
        write_text(target, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written
