"""What the pages display: numbers rendered from recorded results, compact ledger tables, counts as
counts, lines within the text column, and an intro that lists only chapters that exist."""
import json
import re

import pandas as pd
import pytest

from ingur_lib import book, ledger, pages, publish, verdicts
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
    assert df["parameters"].tolist() == ["113,984", "90,000"] and "113984" not in df.to_string()
    assert df["loss"].tolist() == [1.23, 2.0]


def test_results_tables_show_headers_in_words_and_accuracies_in_percent():
    """01's table showed `epoch_s`, `time_to_target_s` and a fraction (0.9019) beside percentages."""
    raw = pd.DataFrame({"exact": [94.1], "epoch_s": [0.37], "time_to_target_s": [61.0],
                        "val_token_acc": [0.9019], "train_tokens_per_s": [74432.232]})
    df = pages.tidy(raw)
    assert list(df.columns) == ["exact match (%)", "s per epoch", "s to target", "val. token accuracy (%)",
                                "training tokens/s"]
    assert df["val. token accuracy (%)"].tolist() == [90.19] and df["training tokens/s"].tolist() == ["74,432"]
    assert not any("_" in c for c in df.columns)


def test_a_missing_value_shows_as_a_dash():
    """07's table printed NaN at the ratios its profile does not fine-tune."""
    df = pages.tidy(pd.DataFrame({"pruned": ["0%", "20%"], "acc after FT": [None, 81.234],
                                  "params": [146984.0, None]}))
    assert df["acc after FT"].tolist() == [pages.NONE, "81.23"]
    assert df["parameters"].tolist() == ["146,984", pages.NONE] and df["pruned"].tolist() == ["0%", "20%"]
    assert "nan" not in df.to_string().lower() and "None" not in df.to_string()


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
        row = next(line for line in table.splitlines() if c.heading in line)
        assert ("in preparation" in row) == (c.module is None or not (repo_root() / "notebooks" /
                                                                      f"{c.id}.ipynb").exists())


def test_one_numbering_in_titles_and_sidebar():
    """Chapters 00-09 and the thesis's [1]-[9] in one name (issue 33): "Chapter 3 · CaiT [5]" heads the page
    (and so the sidebar), the intro's table and the reading paths."""
    import json
    for c in book.CHAPTERS:
        nb = json.loads((repo_root() / "notebooks" / f"{c.id}.ipynb").read_text(encoding="utf-8"))
        title = "".join(nb["cells"][0]["source"]).splitlines()[0]
        assert title.startswith(f"# {c.heading}"), f"{c.id}: the page title starts with {c.heading!r}"
    assert book.CHAPTERS[3].heading == "Chapter 3 · CaiT [5]"


def test_reading_paths_are_links():
    """A route names chapters as links, never as plain "[6] Transformer" text."""
    import re
    text = (repo_root() / "book" / "reading-paths.md").read_text(encoding="utf-8")
    plain = re.sub(r"\{doc\}`[^`]*`", "", text)
    assert not re.search(r"\[[1-9]\]|Getting started →", plain), "name chapters with book.chapter_link"
    for c in book.CHAPTERS:
        assert book.chapter_link(c) in text, f"{c.heading} is on no reading path"


def test_intro_lists_the_chapters_once():
    text = (repo_root() / "book" / "intro.md").read_text(encoding="utf-8")
    assert "{tableofcontents}" not in text, "the generated chapter table is the intro's one list of chapters"


# ---------------------------------------------------------------- what the screenshots showed (issue 18)

def test_ledger_counts_print_as_counts_and_arrows_do_not_split():
    """BinaryViT's OPs showed as `39,938.00`, a baseline's parameters as `4.077e+05`, and a claim's
    `57.07 -> 61.07` broke between `-` and `>` in a narrow column."""
    assert verdicts._num(39938.0) == "39,938" and verdicts._num(-15.61, sign=True) == "-15.61"
    assert verdicts._num(100.0) == "100.00" and verdicts._num(6.68e-6, sign=True) == "+6.68e-06"
    assert publish._baseline_value({"mean": 407690.0, "n": 1}) == "407,690"
    assert publish._baseline_value({"mean": 0.9019, "n": 1}) == "0.9019"
    assert publish._md_cell("ViT (57.07 -> 61.07)") == "ViT (57.07 → 61.07)"


def test_provenance_is_plain_text_within_the_column():
    """Chapters print these lines: backticks showed as raw markup and each line ran off the page."""
    lines = ledger.provenance_lines()
    assert lines, "no recorded run"
    for entry in lines:
        assert "`" not in entry
        assert max(len(line) for line in entry.splitlines()) <= 88
        assert all(line.startswith("  ") for line in entry.splitlines()[1:])


def test_inconclusive_and_partly_badges_differ():
    """With this theme `secondary` is an orange next to `partly`'s warning orange."""
    assert len({ledger.BADGES[v] for v in ledger.VERDICTS}) == len(ledger.VERDICTS)
    assert ledger.BADGES[ledger.INCONCLUSIVE] not in ("secondary", ledger.BADGES[ledger.PARTLY])


def test_text_column_rule_outranks_the_theme():
    """`.bd-article-container` alone lost to the theme's `.bd-main .bd-content .bd-article-container`
    (the column stayed ~690 px at 1280 px): the book's rule must use at least that selector."""
    css = (repo_root() / "book" / "_static" / "ingur.css").read_text(encoding="utf-8")
    assert ".bd-main .bd-content .bd-article-container" in css
    assert "--pst-sidebar-secondary" in css
    # printed lines wider than the column wrap (configs, dicts and provenance lines were clipped)
    assert re.search(r"div\.cell_output pre[^{]*\{[^}]*white-space:\s*pre-wrap", css)


def test_code_blocks_of_the_book_pages_fit_the_column():
    """how-to-run's commands carried their comments on the same line and ran off the page."""
    for page in sorted((repo_root() / "book").glob("*.md")):
        info = None                       # the open fence's info string, None outside a fence
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                info = line[3:].strip() if info is None else None
            elif info is not None and not info.startswith("{"):   # code, not a {directive}'s prose
                assert len(line) <= 80, f"{page.name}: a {info or 'code'} line of {len(line)} characters"


def test_provenance_shows_the_cache_from_the_checkout():
    """Recorded runs name the recording machine's folder (/work/wt-ch03/data/cache/...): pages show
    data/cache/... (the record itself is left as it was written)."""
    src = "offline: Debian package (/usr/share/datasets/fashion-mnist); read from cache /work/x/data/cache/fm"
    assert publish._cache_relative(src).endswith("(/usr/share/datasets/fashion-mnist); read from cache data/cache/fm")
    assert not any("/work/" in line for line in ledger.provenance_lines())


# Notes the authors wrote to themselves (issue 33): which session re-read what, private file names, the
# section numbers of a literature review the book does not include.
_WORK_NOTES = re.compile(r"papers\.md|re-read|this session|later session|paper digest|§\s?\d|\(none open\)", re.I)


@pytest.mark.parametrize("name", ["intro.md", "reading-paths.md", "how-to-run.md", "errata.md", "references.md"])
def test_reader_pages_carry_no_work_notes(name):
    text = (repo_root() / "book" / name).read_text(encoding="utf-8")
    assert not _WORK_NOTES.search(text), f"book/{name}: {_WORK_NOTES.search(text).group(0)!r} is a work note"


def test_chapter_pages_carry_no_work_notes():
    import json
    for path in sorted((repo_root() / "notebooks").glob("*.ipynb")):
        for c in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if c["cell_type"] == "markdown":
                hit = _WORK_NOTES.search("".join(c["source"]))
                assert not hit, f"{path.name} cell {c['id']}: {hit.group(0)!r} is a work note"


def test_the_reference_list_labels_entries_as_the_text_cites_them():
    """Inline citations are author-year; the list's labels were alpha ("[TCS+21]"): one style (issue 33)."""
    import yaml
    from pybtex.database import parse_file

    from ingur_lib.sphinx_bib import STYLE, AuthorYearStyle
    conf = yaml.safe_load((repo_root() / "_config.yml").read_text(encoding="utf-8"))["sphinx"]
    assert conf["config"]["bibtex_reference_style"] == "author_year"
    assert conf["config"]["bibtex_default_style"] == STYLE and "ingur_lib.sphinx_bib" in conf["extra_extensions"]
    entries = parse_file(str(repo_root() / "book" / "references.bib")).entries
    labels = {e.key: e.label for e in AuthorYearStyle().format_entries(entries.values())}
    assert labels["vaswani2017attention"] == "Vaswani et al., 2017"
    assert all(re.fullmatch(r".+, (\d{4}|n\.d\.)[a-z]?", lab) for lab in labels.values()), labels
    assert len(set(labels.values())) == len(labels), "two entries share a label"
