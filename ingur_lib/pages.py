"""What a chapter page displays, rendered from recorded results so that prose cannot drift from data.

* `ledger_table(chapter)`: the chapter's reported-vs-reproduced rows as a compact Markdown table
  (claim, paper, ours, verdict) with the sources, settings and reasons folded below it;
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
    """A results table for display: columns holding whole numbers (counts) as integers, the rest
    rounded to `digits` (pandas prints a float column of counts as `113984.000`)."""
    import pandas as pd
    out = df.copy()
    for col in out.columns:
        v = pd.to_numeric(out[col], errors="coerce")
        if v.notna().all() and (v == v.round()).all() and (v.abs() >= 1000).any():
            out[col] = v.astype("int64")
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


def ledger_table(chapter: str):
    """The chapter's ledger rows as Markdown, as on the ledger page: a tally, four short columns
    (claim, paper, ours, verdict) and the sources, settings and reasons in a fold below."""
    from IPython.display import Markdown

    from .chapters import CHAPTERS
    ch = next(c for c in CHAPTERS if c.id == chapter)
    rows = ledger.table(chapter=chapter)
    if not len(rows):
        return Markdown(f"No claims recorded for `{chapter}` yet.")
    lines = ledger._paper_section(ch, rows)  # the ledger page's own rendering, so the two never differ
    return Markdown("\n".join(lines[2:]).replace(f"Chapter: [{ch.id}](../notebooks/{ch.id}.ipynb). ", ""))
