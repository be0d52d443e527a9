"""What the pages display: numbers rendered from recorded results, compact ledger tables, counts as
counts, lines within the text column, and an intro that lists only chapters that exist."""
import json

import pandas as pd
import pytest

from ingur_lib import book, ledger, pages
from ingur_lib.paths import repo_root


def test_value_renders_a_recorded_number_or_says_it_is_missing():
    fake = {"metrics": {"acc": {"mean": 0.8889, "std": 0.0, "n": 3}}}
    assert pages.value("x", "acc", fmt="{:.1f}", scale=100, results=fake) == "88.9"
    assert pages.value("no_such_chapter", "acc") == pages.MISSING
    with pytest.raises(KeyError, match="no metric"):
        pages.value("x", "loss", results=fake)


def test_counts_print_as_counts_and_tables_are_tidy():
    assert pages.count(113984.0) == "113,984"
    df = pages.tidy(pd.DataFrame({"params": [113984.0, 90000.0], "loss": [1.23456, 2.0]}))
    assert df["params"].dtype == "int64" and "113984.000" not in df.to_string()
    assert df["loss"].tolist() == [1.23, 2.0]


def test_say_wraps_to_the_column(capsys):
    pages.say("word " * 60)
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= pages.WIDTH


def test_deit_reading_is_rendered_from_the_record():
    """The review found '~a few points' typed in the prose while the JSON says 17: the sentence is
    now a template filled from data/results."""
    from ingur_lib.chapters import deit
    rec = ledger.load_results("02_deit", "standard")
    m = rec["metrics"]
    gap = 100 * (m["test_acc[cnn teacher]"]["mean"] - m["test_acc[none]"]["mean"])
    nb = json.loads((repo_root() / "notebooks" / "02_deit.ipynb").read_text(encoding="utf-8"))
    prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "only\na few points" not in prose and "ch.reading(rec)" in json.dumps(nb)
    assert f"{gap:.1f} points above the undistilled student" in deit.reading(rec)
    row = next(c for c in rec["comparisons"] if c["claim"] == "hard_vs_none")
    assert f"{row['ours']:+.2f} ± {row['ours_std'] / row['n_seeds'] ** 0.5:.2f}" in deit.reading(rec)


def test_intro_and_reading_paths_are_generated_from_the_chapters(tmp_path):
    (tmp_path / "book").mkdir()
    for name in ("intro.md", "reading-paths.md"):
        (tmp_path / "book" / name).write_text((repo_root() / "book" / name).read_text(encoding="utf-8"))
    book.write_intro(tmp_path)
    for name in ("intro.md", "reading-paths.md"):
        assert (tmp_path / "book" / name).read_text() == (repo_root() / "book" / name).read_text(), \
            f"book/{name} is stale: run python -m ingur_lib ledger --write"
    table = book.chapter_table()
    for c in book.CHAPTERS:
        row = next(line for line in table.splitlines() if line.startswith(f"| {c.id[:2]} "))
        assert ("in preparation" in row) == (c.module is None or not (repo_root() / "notebooks" /
                                                                      f"{c.id}.ipynb").exists())
