"""The ledger: what each paper reports beside what we reproduced, with a verdict and a reason.

Two kinds of files feed it, both validated on read:

* `data/reported/<paper>.yaml`: the paper's claims, each with an id, a sentence, metric, value, unit,
  dataset, kind (`absolute` or `relative`), and its source in the paper (table/figure/section); optionally a
  `tolerance`, the smallest effect that counts for that claim (what "close" means), used by every verdict on it.
* `data/results/<chapter>/<profile>.json`: written only by running the code (`record`), with
  provenance (commit, dirty flag, date, machine, torch, profile, seeds, wall time, dataset, config),
  the metrics (mean, std and the per-seed values), and comparisons of our numbers with claims.

A verdict is computed from the numbers by one rule (`judge`), never typed in by hand.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Iterable, Sequence

from .atomic import write_json, write_text
from .distributed import is_main_process
from .errors import IngurError
from .paths import repo_root, reported_dir, results_dir

VERDICTS = ("reproduced", "partly", "not reproduced", "not testable at this scale")
# The smallest effect (in the claim's unit, usually accuracy points) a verdict counts, unless a claim sets its own.
DEFAULT_TOLERANCE = 0.3
CLAIM_KEYS = ("id", "claim", "metric", "value", "unit", "dataset", "kind", "source")
PAPER_KEYS = ("paper", "ref", "title", "authors", "year", "bibkey", "claims")
PROVENANCE_KEYS = ("commit", "dirty", "date", "machine", "torch", "profile", "seeds", "wall_time_s", "dataset")


# ---------------------------------------------------------------- reported (YAML)

def validate_reported(d: dict, where: str = "reported file") -> dict:
    missing = [k for k in PAPER_KEYS if k not in d]
    if missing:
        raise IngurError(f"{where} lacks {', '.join(missing)}: add them (see ingur_lib/ledger.py).")
    ids = set()
    for c in d["claims"]:
        lack = [k for k in CLAIM_KEYS if k not in c]
        if lack:
            raise IngurError(f"{where}: claim {c.get('id', '?')!r} lacks {', '.join(lack)}: add them.")
        if c["kind"] not in ("absolute", "relative"):
            raise IngurError(f"{where}: claim {c['id']!r} has kind {c['kind']!r}: use 'absolute' or 'relative'.")
        if not isinstance(c["value"], (int, float)):
            raise IngurError(f"{where}: claim {c['id']!r} value must be a number.")
        tol = c.get("tolerance", DEFAULT_TOLERANCE)
        if not isinstance(tol, (int, float)) or tol < 0:
            raise IngurError(f"{where}: claim {c['id']!r} tolerance must be a number >= 0 (or left out).")
        if c["id"] in ids:
            raise IngurError(f"{where}: claim id {c['id']!r} appears twice: make ids unique.")
        ids.add(c["id"])
    return d


def load_reported(paper: str) -> dict:
    import yaml
    path = reported_dir() / f"{paper}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in reported_dir().glob("*.yaml")))
        raise IngurError(f"No reported numbers for {paper!r}: add data/reported/{paper}.yaml (known: {known}).")
    return validate_reported(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def all_reported() -> dict[str, dict]:
    return {p.stem: load_reported(p.stem) for p in sorted(reported_dir().glob("*.yaml"))}


def claim(paper: str, claim_id: str) -> dict:
    for c in load_reported(paper)["claims"]:
        if c["id"] == claim_id:
            return c
    raise IngurError(f"{paper} has no claim {claim_id!r}: see data/reported/{paper}.yaml for its ids.")


# ---------------------------------------------------------------- verdicts

def summarize(values: Sequence[float]) -> dict:
    """mean, std (sample; 0 for one seed) and the values themselves."""
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}


def judge(reported: float, ours: float, ours_std: float = 0.0, kind: str = "relative",
          tolerance: float = DEFAULT_TOLERANCE, testable: bool = True) -> tuple[str, str]:
    """The verdict for one claim, from the numbers alone, with the rule that gave it.

    Relative claims (a gain or drop, in points): the effect must clear the noise
    (max(2 std, tolerance)); it is `reproduced` with the paper's sign and within a factor 2 of its
    size, `partly` with the sign but another size, `not reproduced` otherwise. A reported effect
    that is itself within tolerance of 0 is reproduced by an effect within the noise.
    Absolute claims on another dataset or scale are `not testable at this scale`.
    """
    if not testable or kind == "absolute":
        return VERDICTS[3], "an absolute number at the paper's scale; our dataset and model are smaller"
    noise = max(2 * ours_std, tolerance)
    if abs(reported) <= tolerance:
        ok = abs(ours) <= noise
        return (VERDICTS[0] if ok else VERDICTS[2],
                f"paper reports no effect; ours {ours:+.2f} is {'within' if ok else 'outside'} the noise ±{noise:.2f}")
    if abs(ours) <= noise:
        return VERDICTS[2], f"our effect {ours:+.2f} is within the noise ±{noise:.2f}"
    if math.copysign(1, ours) != math.copysign(1, reported):
        return VERDICTS[2], f"opposite sign: paper {reported:+.2f}, ours {ours:+.2f}"
    ratio = ours / reported
    if 0.5 <= ratio <= 2.0:
        return VERDICTS[0], f"same sign, size within 2x ({ratio:.2f}x the paper's)"
    return VERDICTS[1], f"same sign, size {ratio:.2f}x the paper's"


def tolerance(c: dict) -> float:
    """The smallest effect that counts for claim `c`: its own `tolerance`, else the default."""
    return float(c.get("tolerance", DEFAULT_TOLERANCE))


def compare(paper: str, claim_id: str, ours: dict | float, metric: str, note: str = "",
            testable: bool = True) -> dict:
    """A comparison row: a reported claim, our number (a `summarize` dict or a float), the verdict
    (judged with the claim's `tolerance`)."""
    c = claim(paper, claim_id)
    s = ours if isinstance(ours, dict) else summarize([ours])
    verdict, rule = judge(c["value"], s["mean"], s["std"], c["kind"], tolerance(c), testable)
    return {"paper": paper, "claim": claim_id, "metric": metric, "ours": s["mean"], "ours_std": s["std"],
            "n_seeds": s["n"], "verdict": verdict, "reason": f"{rule}. {note}".strip()}


# ---------------------------------------------------------------- results (JSON)

def validate_results(d: dict, where: str = "results file") -> dict:
    for key in ("chapter", "profile", "provenance", "metrics"):
        if key not in d:
            raise IngurError(f"{where} lacks {key!r}: results are written by ingur_lib.ledger.record only.")
    lack = [k for k in PROVENANCE_KEYS if k not in d["provenance"]]
    if lack:
        raise IngurError(f"{where}: provenance lacks {', '.join(lack)}: rerun the chapter to record them.")
    for c in d.get("comparisons", []):
        if c.get("verdict") not in VERDICTS:
            raise IngurError(f"{where}: verdict {c.get('verdict')!r} is not one of {VERDICTS}.")
    return d


def results_path(chapter: str, profile: str) -> Path:
    return results_dir() / chapter / f"{profile}.json"


def record(chapter: str, profile: str, provenance: dict, metrics: dict, comparisons: Iterable[dict] = (),
           extra: dict | None = None) -> Path:
    """Validate and write data/results/<chapter>/<profile>.json atomically. Returns the path."""
    d = {"chapter": chapter, "profile": profile, "provenance": provenance, "metrics": metrics,
         "comparisons": list(comparisons), **(extra or {})}
    validate_results(d, f"results for {chapter}/{profile}")
    path = results_path(chapter, profile)
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
    out = []
    for path in sorted(results_dir().glob("*/*.json")):
        out.append(load_results(path.parent.name, path.stem))
    return out


# ---------------------------------------------------------------- tables

def table(chapter: str | None = None, paper: str | None = None):
    """A pandas DataFrame: every reported claim, with our number and verdict where a run compared it."""
    import pandas as pd
    reported = all_reported()
    rows, seen = [], set()
    for res in all_results():
        if chapter and res["chapter"] != chapter:
            continue
        prov = res["provenance"]
        for c in res.get("comparisons", []):
            if paper and c["paper"] != paper:
                continue
            rc = next((x for x in reported.get(c["paper"], {}).get("claims", []) if x["id"] == c["claim"]), None)
            if rc is None:
                continue
            seen.add((c["paper"], c["claim"]))
            ours = f"{c['ours']:+.2f}" if rc["kind"] == "relative" else f"{c['ours']:.2f}"
            if c.get("n_seeds", 1) > 1:
                ours += f" ± {c['ours_std']:.2f}"
            rows.append({"ref": reported[c["paper"]]["ref"], "paper": c["paper"], "claim": rc["claim"],
                         "reported": _fmt(rc), "source": rc["source"], "ours": ours, "our setting": c["metric"],
                         "profile": res["profile"], "seeds": len(prov["seeds"]), "verdict": c["verdict"],
                         "reason": c["reason"], "commit": prov["commit"][:8]})
    for key, rep in reported.items():
        if paper and key != paper:
            continue
        if chapter and not any(r["paper"] == key for r in rows):
            continue
        for rc in rep["claims"]:
            if (key, rc["id"]) not in seen:
                rows.append({"ref": rep["ref"], "paper": key, "claim": rc["claim"], "reported": _fmt(rc),
                             "source": rc["source"], "ours": "", "our setting": "", "profile": "", "seeds": 0,
                             "verdict": "not yet run" if rc["kind"] == "relative" else VERDICTS[3],
                             "reason": "" if rc["kind"] == "relative" else "context: the paper's scale", "commit": ""})
    df = pd.DataFrame(rows, columns=["ref", "paper", "claim", "reported", "source", "ours", "our setting",
                                     "profile", "seeds", "verdict", "reason", "commit"])
    return df.sort_values(["ref", "verdict"], kind="stable").reset_index(drop=True)


def _fmt(c: dict) -> str:
    sign = "+" if c["kind"] == "relative" and c["value"] > 0 else ""
    return f"{sign}{c['value']:g} {c['unit']} ({c['dataset']})"


def to_latex(df, path: str | Path | None = None) -> str:
    """A booktabs LaTeX table for the thesis (optionally written atomically to `path`)."""
    cols = ["ref", "claim", "reported", "ours", "our setting", "verdict"]
    tex = df[cols].to_latex(index=False, escape=True, column_format="rp{4.5cm}lllp{2.2cm}")
    if path:
        write_text(path, tex)
    return tex


def _md_cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def to_markdown(df, cols=("claim", "reported", "source", "ours", "our setting", "verdict", "reason")) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_md_cell(r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join(lines)


def provenance_lines(chapter: str | None = None) -> list[str]:
    out = []
    for res in all_results():
        if chapter and res["chapter"] != chapter:
            continue
        p = res["provenance"]
        out.append(f"`{res['chapter']}/{res['profile']}`: commit `{p['commit'][:10]}`"
                   f"{' (dirty)' if p['dirty'] else ''}, {p['date']}, {p['machine']}, torch {p['torch']}, "
                   f"seeds {p['seeds']}, {p['wall_time_s'] / 60:.1f} min, data: {p['dataset'].get('source', '?')}")
    return out


# sphinx-design badge colour per verdict, so a reader can scan a paper's column of verdicts.
BADGES = {VERDICTS[0]: "success", VERDICTS[1]: "warning", VERDICTS[2]: "danger", VERDICTS[3]: "info",
          "not yet run": "light"}


def _badge(verdict: str) -> str:
    return f"{{bdg-{BADGES.get(verdict, 'light')}}}`{verdict}`"


def _tally(df) -> str:
    counts = df["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in (*VERDICTS, "not yet run") if v in counts)


def _sentence(text: str) -> str:
    """`text` ending in exactly one full stop (sources and reasons may or may not end in one)."""
    return str(text).rstrip(".") + "."


def _paper_section(chapter, sub) -> list[str]:
    """One paper: its tally, a four-column table (claim, paper, ours, verdict), and the details folded."""
    # A chapter whose notebook has not landed has no page to link to (a dead link fails the -W build).
    name = f"[{chapter.id}](../notebooks/{chapter.id}.ipynb)" if chapter.module else chapter.id
    view = sub.assign(**{"#": range(1, len(sub) + 1), "paper": sub["reported"],
                         "ours": sub["ours"].replace("", "–"), "verdict": sub["verdict"].map(_badge)})
    details = [f"{i}. **Paper:** {_sentence(r['source'])}"
               + (f" **Ours:** {_sentence(r['our setting'])}" if r["our setting"] else "")
               + (f" **Why:** {_sentence(r['reason'])}" if r["reason"] else "")
               for i, (_, r) in enumerate(sub.iterrows(), 1)]
    return [f"## [{chapter.ref}] {chapter.title}", "", f"Chapter: {name}. Verdicts: {_tally(sub)}.", "",
            to_markdown(view, cols=("#", "claim", "paper", "ours", "verdict")), "",
            ":::{dropdown} Where each number comes from, and why the verdict", *details, ":::", ""]


def book_page(chapters) -> str:
    """The book's ledger page, generated from data/reported and data/results, one section per chapter of
    `chapters` (the book's list, `ingur_lib.chapters.CHAPTERS`, passed in by `ingur_lib.book`)."""
    df = table()
    parts = ["# The ledger: reported vs reproduced", "",
             "```{note}\nThis page is generated by `python -m ingur_lib ledger --write` from "
             "`data/reported/*.yaml` (what each paper reports, with its table or section) and "
             "`data/results/*/*.json` (what running this book's code produced, with provenance). "
             "Do not edit it by hand.\n```", "",
             "Verdicts are computed by one rule (`ingur_lib.ledger.judge`): a relative claim is *reproduced* "
             "when our effect clears the noise (twice the seed-to-seed std, at least 0.3 points), has the "
             "paper's sign and is within a factor of two of its size; *partly* with the sign but another size; "
             "*not reproduced* otherwise. Absolute numbers at ImageNet scale are shown for context as "
             "*not testable at this scale*. Each paper's table is followed by a fold with the source of every "
             "reported number, the setting of ours, and the reason for the verdict.", "",
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
                val = f"{m['mean']:.4g}" + (f" ± {m['std']:.2g}" if m.get("n", 1) > 1 else "")
                parts.append(f"| {r['chapter']} | {r['profile']} | {name} | {val} |")
        parts.append("")
    parts += ["## Provenance", ""] + [f"- {line}" for line in provenance_lines()] + [""]
    return "\n".join(parts)


def write_book_page(chapters, path: str | Path | None = None) -> Path:
    path = Path(path or repo_root() / "book" / "ledger.md")
    write_text(path, book_page(chapters))
    return path
