"""What a chapter page displays, rendered from recorded results so that prose cannot drift from data
(the ledger table itself is `ledger.chapter_markdown`).

* `value(chapter, key, ...)`: one recorded number, formatted, for a sentence built in a code cell
  (`display(Markdown(f"... {pages.value(...)} ..."))`) instead of typed into the prose;
* `count(n)`: integer counts printed as counts (`113,984`, never `113984.000`).
"""
from __future__ import annotations

import textwrap

from . import ledger

WIDTH = 88  # the book's text column, in characters
MISSING = "(not recorded yet)"


def say(text: str, indent: str = "  ") -> None:
    """Print `text` wrapped to the book's column (continuation lines indented), never clipped."""
    print(textwrap.fill(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False))


def count(n) -> str:
    """An integer count with thousands separators, whatever numeric type holds it."""
    return f"{int(round(float(n))):,}"


def tidy(df, digits: int = 2):
    """A results table for display: columns holding whole numbers (counts) as counts with thousands
    separators (`113,984`; pandas printed a float column of counts as `113984.000`), the rest rounded
    to `digits`. For display only: count columns become text."""
    import pandas as pd
    out = df.copy()
    for col in out.columns:
        v = pd.to_numeric(out[col], errors="coerce")
        if v.notna().all() and (v == v.round()).all() and (v.abs() >= 1000).any():
            out[col] = v.astype("int64").map(count)
        elif v.notna().all():
            out[col] = v.round(digits)
    return out


def value(chapter: str, key: str, field: str = "mean", fmt: str = "{:.1f}", scale: float = 1.0,
          profile: str = "standard", results: dict | None = None) -> str:
    """A recorded metric of `chapter` (metrics[key][field] times `scale`), formatted with `fmt`.

    Returns MISSING when the chapter has no recorded run of `profile` yet, so a page still builds.
    """
    results = results or ledger.load_results(chapter, profile)
    if results is None:
        return MISSING
    if key not in results["metrics"]:
        known = ", ".join(sorted(results["metrics"]))[:300]
        raise KeyError(f"{chapter}/{profile} has no metric {key!r}; recorded: {known}")
    return fmt.format(results["metrics"][key][field] * scale)
