"""The ledger on paper: reported vs reproduced as tables (pandas, Markdown, LaTeX), a chapter's rows and
the book's ledger page, each verdict judged when it is drawn (`verdicts.judge_row`) from the stored
numbers (`results`) against the claims as they stand now."""
from __future__ import annotations

import math
import re
from pathlib import Path

from .atomic import write_text
from .errors import IngurError
from .paths import repo_root
from .results import all_results, results_path
from .verdicts import (INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, NOT_TESTABLE, PARTLY, REPRODUCED, VERDICTS,
                       _join, _num, _sentence, _si, all_reported, judge_row)


def _measurement(row: dict) -> tuple:
    """What identifies one measurement inside a results file (one measurement fills one claim)."""
    nums = tuple(row["values"]) if row.get("values") else (row["ours"], row.get("ours_std", 0.0))
    return (row.get("metric"), row.get("n_seeds", 1), nums)


def _ours(c: dict, row: dict, of: dict | None = None) -> str:
    """Our number as shown: mean ± one standard error (n seeds); a count stands alone, and a count measured
    against the paper's number (`of`) reads in that number's unit: `5.72 M (+14.4%)`."""
    if of is not None:
        return f"{of['value'] * (1 + row['ours'] / 100):.3g} {of['unit']} ({row['ours']:+.1f}%)"
    ratio = c["unit"] == "x"                      # a ratio reads 12.26x, never +12.26
    n, text = row.get("n_seeds", 1), _num(row["ours"], c["kind"] == "relative" and not ratio)
    unit = _unit_after(c["unit"])
    if n > 1:  # mean and error never split across lines (no-break spaces); "(n=3)" may wrap
        return f"{text}{NBSP}±{NBSP}{_num(row.get('ours_std', 0.0) / math.sqrt(n))}{unit} (n={n})"
    return f"{text}{unit}" if c.get("deterministic") else f"{text}{unit} (n=1)"


def _unit_after(unit: str) -> str:
    """A claim's unit written after our number, as the paper's column writes it: `x` and `%` attached
    (`12.26x`, `+0.3%`), a word after a space (`+0.56 points`)."""
    return unit if unit == "x" or unit.startswith("%") else f" {unit}"


NBSP = "\u00a0"


COLUMNS = ["ref", "paper", "claim", "reported", "source", "ours", "our setting", "profile", "seeds",
           "verdict", "reason", "commit"]


def _count_of(reported: dict, paper: str, c: dict) -> dict | None:
    """The absolute claim holding the paper's number that count claim `c` is measured against, if any."""
    return next((x for x in reported[paper]["claims"] if x["id"] == c.get("of")), None)


def _minutes_per_seed(res: dict) -> float | None:
    """A recorded run's wall time per seed: a rough price of one more seed of the whole run."""
    p = res["provenance"]
    return p["wall_time_s"] / 60 / len(p["seeds"]) if p.get("seeds") else None


def _rows_of(res: dict, reported: dict, paper: str | None) -> list[dict]:
    """One results file's comparisons, judged now against the current YAML."""
    rows, filled = [], {}
    for row in res.get("comparisons", []):
        if paper and row["paper"] != paper:
            continue
        rc = _claim_of(row, reported, res)
        first = filled.setdefault(_measurement(row), row["claim"])
        if first != row["claim"]:
            verdict, rule = NOT_TESTABLE, (f"the measurement that fills claim {first!r} fills this one too; "
                                          f"one measurement cannot test two claims")
        else:
            verdict, rule = judge_row(rc, row, _minutes_per_seed(res))
        of = _count_of(reported, row["paper"], rc)
        ours, setting = _ours(rc, row, of), row["metric"]
        if verdict == NOT_TESTABLE:  # another quantity never sits in the column beside the paper's number
            ours, setting = "", f"{_sentence(setting)} Measured: {ours}"
        rows.append({"ref": reported[row["paper"]]["ref"], "paper": row["paper"], "claim": rc["claim"],
                     "reported": _fmt(of or rc), "source": rc["source"], "ours": ours,
                     "our setting": setting, "profile": res["profile"], "seeds": row.get("n_seeds", 1),
                     "verdict": verdict, "reason": _join(rule, row.get("note", "")),
                     "commit": res["provenance"]["commit"][:8], "_id": (row["paper"], row["claim"])})
    return rows


def _claim_of(row: dict, reported: dict, res: dict) -> dict:
    """The YAML claim a stored comparison fills; a paper or id the YAML lacks is an error naming the known
    ones (a misspelt id would otherwise drop its row and show the claim as "not yet run")."""
    where = results_path(res["chapter"], res["profile"])
    if row["paper"] not in reported:
        raise IngurError(f"{where}: comparison {row['paper']}/{row['claim']} names an unknown paper: use one of "
                         f"{', '.join(sorted(reported))}.")
    claims = {c["id"]: c for c in reported[row["paper"]]["claims"]}
    if row["claim"] not in claims:
        raise IngurError(f"{where}: comparison {row['paper']}/{row['claim']} names no claim of "
                         f"data/reported/{row['paper']}.yaml: use one of {', '.join(claims)}.")
    return claims[row["claim"]]


def _unrun(key: str, rep: dict, rc: dict) -> dict:
    if rc.get("not_run") and rc["kind"] == "relative":
        verdict, reason = NOT_RUN, rc["not_run"]
    elif rc.get("not_testable") or rc["kind"] == "absolute":
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
        shown = {rc["of"] for rc in rep["claims"] if "of" in rc}   # the paper's number, shown in its count's row
        rows += [_unrun(key, rep, rc) for rc in rep["claims"] if (key, rc["id"]) not in seen and rc["id"] not in shown]
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
        if abs(v) >= 1e6 and not sign:   # 7.9e+07 reads as 79 M, as papers write counts
            return _si(v)
        return "0" if v == 0 else f"{v:+g}" if sign and not worded else f"{v:g}"
    if form == "bound":
        return f"no worse than {num(c['value'])}{where}"
    if form == "none":
        return f"no effect: {num(c['value'])}{where}"
    if form == "sign":
        return f"{'a gain' if c['value'] > 0 else 'a loss'} (no size stated), {unit} ({c['dataset']})"
    return f"{num(c['value'], sign=form == 'effect' and c['value'] > 0 and unit != 'x')}{where}"


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
          NOT_TESTABLE: "info", NOT_RUN: "light", "not yet run": "light"}


def _badge(verdict: str) -> str:
    return f"{{bdg-{BADGES.get(verdict, 'light')}}}`{verdict}`"


def _tally(df) -> str:
    counts = df["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in (*VERDICTS, "not yet run") if v in counts)


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
    return [f"## {chapter.heading}", "", f"Paper: {chapter.title}. Chapter: {name}. Verdicts: {_tally(sub)}.", "",
            to_markdown(_compact(sub, badges=True), cols=COMPACT), "",
            f":::{{dropdown}} {FOLD_TITLE}", *_details(sub), ":::", ""]


RULE_TEXT = [
    "One standard of evidence decides every verdict on this page, every convergence check and every sentence "
    "a chapter states about an effect: the 95% interval over seeds (Student's t, paired per seed), "
    "`ingur_lib.stats.resolved`. An effect is *resolved* when that interval excludes zero; otherwise it is a "
    "null, read with its interval. Each verdict is judged when this page is built, from the stored numbers "
    "against the claims as they stand now (`ingur_lib.verdicts.judge`).",
    "Each claim states its form. An *effect* (\"A beats B by about X\") is *reproduced* when our interval "
    "excludes zero on the paper's side and our mean lies within the size band of the paper's X: a factor "
    "of two for a score (accuracy, BLEU or AUC points), 25% for a cost (parameters, FLOPs, throughput, "
    "size, in % or x), either band widened to X ± the claim's tolerance where that is wider. It is *partly* "
    "when the sign is resolved but the mean lies outside the band (judged by the mean, so a noisy run gains "
    "nothing from a wide interval), and *not reproduced* when the interval shows the opposite sign or "
    "lies wholly below the band. A *bound* (\"loses at most X\") is reproduced when the interval stays "
    "within X plus the tolerance, and *no effect* when it stays inside ± the tolerance. A *direction* "
    "stated without a size (\"A beats B\") is reproduced when the interval lies beyond the tolerance on the "
    "paper's side. An interval too wide to tell is *inconclusive*, and the reason says about how many seeds "
    "would decide.",
    "*Ours* reads mean ± standard error over n seeds (the interval is mean ± t·s.e.: t = 4.30 for 3 seeds), "
    "not the spread of single seeds. One seed cannot show an effect, except for counts that do not depend "
    "on it (parameters, FLOPs, bytes). *Not testable at this scale* means the quantity cannot be measured "
    "at our scale: absolute numbers at the paper's scale, a claim whose quantity we measure as another, "
    "and a second claim filled by a measurement that already fills one. *Not run* means the budget left it "
    "out, and says what it would cost. The fold under each table gives every number's source, our setting "
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
             "Do not edit it by hand.\n```", "", RULE_TEXT[0], "", RULE_TEXT[1], "", RULE_TEXT[2], "",
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
