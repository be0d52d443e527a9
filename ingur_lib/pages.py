"""What a chapter page displays, rendered from recorded results so that prose cannot drift from data
(the ledger table itself is `ledger.chapter_markdown`).

* `value(chapter, key, ...)`: one recorded number, formatted, for a sentence built in a code cell
  (`display(Markdown(f"... {pages.value(...)} ..."))`) instead of typed into the prose;
* `count(n)`: integer counts printed as counts (`113,984`, never `113984.000`);
* `tidy(df)`: a table of counts, rounded numbers and dashes where a value does not exist.
"""
from __future__ import annotations

import textwrap

from . import ledger

WIDTH = 88  # the book's text column, in characters
MISSING = "(not recorded yet)"
NONE = "–"  # a table cell with no value


def say(text: str, indent: str = "  ") -> None:
    """Print `text` wrapped to the book's column (continuation lines indented), never clipped."""
    print(textwrap.fill(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False))


def count(n) -> str:
    """An integer count with thousands separators, whatever numeric type holds it."""
    return f"{int(round(float(n))):,}"


# A metric's key as a table header, in words with its unit: every results table goes through `tidy`, so no
# page shows `epoch_s` or a fraction beside percentages.
HEADERS = {
    "params": "parameters", "exact": "exact match (%)", "bleu": "char-BLEU", "chrf": "chrF",
    "decode_s": "decoding (s)", "epoch_s": "s per epoch", "time_to_target_s": "s to target", "train_s": "training (s)",
    "mflops": "MFLOPs", "images_per_s": "images/s", "bops": "BOPs (M)", "flops": "FLOPs (M)", "ops": "OPs (M)",
    "fp32_bytes": "float32 bytes", "packed_bytes": "packed bytes", "size_ratio": "float32 / packed",
    "binary_layers_ratio": "binary layers: float32 / packed", "val_loss": "val. loss (nats/char)",
    "bpc": "bits per char", "perplexity": "perplexity", "lr": "learning rate", "train_minutes": "training (min)",
    "train_tokens_per_s": "training tokens/s", "val_token_acc": "val. token accuracy (%)",
    "val_acc": "val. accuracy (%)", "test_acc": "test accuracy (%)",
}
# Accuracies stored as fractions, shown in % beside the book's other percentages.
FRACTIONS = ("val_token_acc", "val_acc", "test_acc")


def headed(df):
    """`df` with its known metric keys as headers in words (`HEADERS`) and fractions as percentages."""
    out = df.copy()
    for key in FRACTIONS:
        if key in out.columns:
            out[key] = 100 * out[key]
    return out.rename(columns=HEADERS)


def tidy(df, digits: int = 2):
    """A results table for display, the book's one table formatter: headers in words with units and
    accuracies in % (`headed`), columns holding whole numbers (counts) as counts with thousands
    separators (`113,984`; pandas printed a float column of counts as `113984.000`), the rest rounded
    to `digits`, and a cell with no value (a ratio the profile does not fine-tune) as a dash, never `NaN`.
    For display only: count columns and columns with a dash become text."""
    import pandas as pd
    out = headed(df)
    for col in out.columns:
        v = pd.to_numeric(out[col], errors="coerce")
        known = v.dropna()
        if known.empty or v.isna().sum() > out[col].isna().sum():
            continue  # a text column
        if (known.abs() >= 1000).any() and ((known == known.round()).all() or (known.abs() >= 100).all()):
            # counts, and large measured rates (9,006 images/s, not 9005.68): whole, with separators
            out[col] = v.map(lambda x: NONE if pd.isna(x) else count(x))
        elif v.isna().any():
            out[col] = v.map(lambda x: NONE if pd.isna(x) else f"{x:.{digits}f}")
        else:
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
