"""Notebook hygiene: no committed outputs, Colab badge, parameters + setup cells, in the toc, exercises strip."""
import json
import re

import pytest
import yaml

from ingur_lib.book import source
from ingur_lib.chapters import CHAPTERS, landed
from ingur_lib.exercises import strip_solutions, student_notebook
from ingur_lib.paths import repo_root

ROOT = repo_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for c in cells(path):
        if c["cell_type"] == "code":
            assert not c["outputs"] and c["execution_count"] is None, f"{path.name}: clear outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_its_own_id(path):
    # nbformat 4.5 needs one (a missing id is a warning now, an error in later nbformat versions)
    ids = [c.get("id") for c in cells(path)]
    assert None not in ids and len(set(ids)) == len(ids), f"{path.name}: give every cell a unique id"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badge_parameters_setup(path):
    cs = cells(path)
    first = "".join(cs[0]["source"])
    url, ref = source()
    badge = f"colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/{ref}/classroom/"
    assert first.startswith("# ") and badge + path.name in first, "run `python -m ingur_lib pin`"
    assert "/notebooks/" not in first.split("colab.research.google.com")[1].split(")")[0], \
        "the badge opens the classroom copy, not the teacher's notebook"
    assert "(../book/colab-badge.svg)" in first, "the badge image ships with the book (offline reading)"
    params = [c for c in cs if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert params and "PROFILE" in "".join(params[0]["source"])
    assert any("from ingur_lib import setup" in "".join(c["source"]) for c in cs), "setup cell"
    text = "".join("".join(c["source"]) for c in cs if c["cell_type"] == "markdown")
    for section in ("## Takeaways", "## Deviations", "## Exercises"):
        assert section in text, f"{path.name}: missing {section}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_are_short_and_have_no_absolute_paths(path):
    for c in cells(path):
        if c["cell_type"] == "code":
            src = "".join(c["source"])
            assert src.count("\n") < 20, f"{path.name}: a code cell of {src.count(chr(10)) + 1} lines; split it"
            assert not re.search(r"['\"]/(home|work|Users|tmp)/", src), f"{path.name}: absolute path"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_lines_fit_the_text_column(path):
    """The book's column is about 88 characters: wider code lines scroll sideways on the page."""
    for i, c in enumerate(cells(path)):
        if c["cell_type"] == "code":
            for line in "".join(c["source"]).splitlines():
                assert len(line) <= 88, f"{path.name} cell {i}: a {len(line)}-character line: {line[:60]}..."


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_wrapped_prose_does_not_turn_into_a_list(path):
    """03's exercise 3 wrapped before `+ b[g]`: the line rendered as a bullet (the book's lists use - or *)."""
    for i, c in enumerate(cells(path)):
        if c["cell_type"] == "markdown":
            for line in "".join(c["source"]).splitlines():
                assert not re.match(r"\s*\+\s", line), f"{path.name} cell {i}: a line starts with '+': {line[:50]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_plots_are_drawn_by_the_library(path):
    """03 called plt.subplots itself: a notebook's plots come from viz or its chapter's figure functions."""
    for i, c in enumerate(cells(path)):
        if c["cell_type"] == "code":
            assert "matplotlib" not in "".join(c["source"]), f"{path.name} cell {i}: plot through viz/the chapter"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ledger_rows_use_the_compact_table(path):
    """03 printed six ledger columns (one word per line): chapters show `ledger.chapter_markdown`."""
    code = "".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "code")
    assert not re.search(r"ledger\.(table|to_markdown)\(", code), f"{path.name}: use ledger.chapter_markdown"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_printed_floats_are_rounded_in_python(path):
    """06 printed `ratio.round(decimals=2).tolist()`: float32 rounding, then float64 digits (0.6899999976)."""
    code = "".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "code")
    assert not re.search(r"\.round\(decimals=\d+\)\.tolist\(\)", code), \
        f"{path.name}: round after .tolist() ([round(v, 2) for v in t.tolist()])"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_glyphs_the_book_font_lacks(path):
    assert "\U0001f917" not in path.read_text(encoding="utf-8"), f"{path.name}: write 'Hugging Face'"


def test_every_notebook_is_in_the_toc_and_every_landed_chapter_has_one():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {c["file"] for part in toc["parts"] for c in part["chapters"]}
    for path in NOTEBOOKS:
        assert f"notebooks/{path.stem}" in files
    for ch in landed():
        assert (ROOT / "notebooks" / f"{ch.id}.ipynb").exists(), ch.id
    assert len({c.id for c in CHAPTERS}) == len(CHAPTERS)


def test_book_renders_displayed_tables_and_math_offline():
    """Chapters display their ledger rows as Markdown tables: CommonMark (myst-nb's default) prints the
    pipes as text. And MathJax from a CDN leaves raw TeX in a book read offline."""
    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert sphinx["config"]["nb_render_markdown_format"] == "myst"
    assert "sphinx-mathjax-offline" in sphinx["extra_extensions"]
    assert "sphinx-mathjax-offline" in (ROOT / "pyproject.toml").read_text()  # the book extra
    assert "ingur.css" in sphinx["config"]["html_css_files"], "the column fits 88-character code lines"
    assert (ROOT / "book" / "_static" / "ingur.css").exists()


def test_strip_solutions_keeps_indent_and_rest():
    src = "def f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\n"
    out = strip_solutions(src)
    assert "return x + y" not in out and "    raise NotImplementedError" in out and "y = 1" in out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_version_stubs_every_solution(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    sol = [c for c in nb["cells"] if "solution" in c.get("metadata", {}).get("tags", [])]
    assert sol, f"{path.name}: exercises need solution cells"
    for c in sol:
        assert "# BEGIN SOLUTION" in "".join(c["source"])
    student = student_notebook(nb)
    text = "".join("".join(c["source"]) for c in student["cells"])
    assert "BEGIN SOLUTION" not in text and text.count("NotImplementedError") >= len(sol)


def test_student_stub_fails_the_check():
    import ingur_lib.chapters.getting_started  # noqa: F401  (importing a chapter registers its exercises)
    from ingur_lib.exercises import check
    ns = {}
    exec(strip_solutions("def patchify(x, p):\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n"), ns)
    with pytest.raises(NotImplementedError):
        check("getting_started.patchify", ns["patchify"])
    with pytest.raises(AssertionError, match="shape"):
        check("getting_started.patchify", lambda x, p: x)


def test_setup_cells_are_one_copy():
    """Each notebook must run alone in Colab, so the setup cell is repeated; it must not drift."""
    def setup_cell(path):
        return next("".join(c["source"]) for c in cells(path) if "from ingur_lib import setup" in "".join(c["source"]))
    reference = setup_cell(NOTEBOOKS[0])
    assert "subprocess.run" in reference and "!git" not in reference
    url, ref = source()   # Colab installs the version the page was written for, set in _config.yml
    assert f'REPO, REF = "{url}", "{ref}"' in reference and "--branch {REF} {REPO}" in reference, \
        "run `python -m ingur_lib pin`"
    assert ref not in ("main", "master"), "pin a version (a tag), not the moving tip of a branch"
    assert "setup(PROFILE)" in reference, "the seed comes from INGUR_SEED (runtime.setup), not the cell"
    # the clone Colab makes must not hand a student the teacher's notebooks (solutions, worked answers)
    assert "sparse-checkout set --no-cone /* !/notebooks/" in reference and "/content/ingur/classroom" in reference
    for path in NOTEBOOKS[1:]:
        assert setup_cell(path) == reference, f"{path.name}: copy the setup cell of {NOTEBOOKS[0].name}"


def test_pin_writes_a_forks_address_and_version(tmp_path, monkeypatch, capsys):
    from ingur_lib.__main__ import main
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/someone/fork\n  branch: v9.9\n")
    (tmp_path / "notebooks" / NOTEBOOKS[0].name).write_bytes(NOTEBOOKS[0].read_bytes())
    monkeypatch.setenv("INGUR_ROOT", str(tmp_path))
    assert main(["pin"]) == 0
    assert "1 notebooks now install https://github.com/someone/fork@v9.9" in capsys.readouterr().out
    text = (tmp_path / "notebooks" / NOTEBOOKS[0].name).read_text()
    assert f"github/someone/fork/blob/v9.9/classroom/{NOTEBOOKS[0].name}" in text
    classroom = (tmp_path / "classroom" / NOTEBOOKS[0].name).read_text()   # the copy Colab opens, re-pinned
    assert 'REPO, REF = \\"https://github.com/someone/fork\\", \\"v9.9\\"' in classroom
    assert 'REPO, REF = \\"https://github.com/someone/fork\\", \\"v9.9\\"' in text
    assert "ingur-book" not in text
    json.loads(text)                                       # still a notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_classroom_copy_is_current(path):
    """classroom/ is what Colab opens and the download button serves: the student version of today's notebook."""
    copy = ROOT / "classroom" / path.name
    want = json.dumps(student_notebook(json.loads(path.read_text(encoding="utf-8"))), indent=1, ensure_ascii=False)
    assert copy.exists() and copy.read_text(encoding="utf-8") == want + "\n", \
        f"classroom/{path.name} is stale: run `make student` (python -m ingur_lib student) and commit it"
    text = copy.read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in text and "Answer (teacher" not in text


def test_classroom_has_no_notebook_the_book_lacks():
    assert sorted(p.name for p in (ROOT / "classroom").glob("*.ipynb")) == [p.name for p in NOTEBOOKS]


def test_the_download_button_serves_the_classroom_copy(tmp_path):
    from ingur_lib.sphinx_classroom import classroom_sources
    sources = tmp_path / "_sources" / "notebooks"
    sources.mkdir(parents=True)
    for path in NOTEBOOKS[:2]:
        (sources / path.name).write_bytes(path.read_bytes())   # what Sphinx copies: the teacher's
    assert len(classroom_sources(tmp_path, ROOT)) == 2
    for path in NOTEBOOKS[:2]:
        text = (sources / path.name).read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" in path.read_text(encoding="utf-8") and "BEGIN SOLUTION" not in text
        assert "NotImplementedError" in text
    conf = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert "ingur_lib.sphinx_classroom" in conf["sphinx"]["extra_extensions"]
    assert not conf.get("launch_buttons", {}).get("colab_url"), "the theme's Colab button opens notebooks/"


def test_pinned_ref_is_the_version_the_release_step_tags():
    import tomllib
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert source()[1] == f"v{version}", "_config.yml's repository.branch is v + pyproject.toml's version"


def test_the_pinned_ref_is_the_release_tag_that_make_release_creates():
    """Colab clones `--branch REF`: a ref missing from the repository fails the first reader. The pin is the
    release tag `v<pyproject version>`; `make release` creates exactly that tag on a clean commit (then push
    it), and where the tag exists it must name a commit (a clone without tags, as CI's, checks the rest)."""
    import re
    import shutil
    import subprocess
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    ref = source()[1]
    assert ref == f"v{version}", (f"the notebooks pin {ref!r}, not the release tag v{version}: set it in "
                                  "_config.yml and run `python -m ingur_lib pin`")
    if not shutil.which("make") or not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("no make or git checkout: the release step cannot be read")
    plan = subprocess.run(["make", "-n", "-C", str(ROOT), "release"], capture_output=True, text=True).stdout
    assert f"git tag -a v{version}" in plan, "make release must tag the version the notebooks pin"
    tags = subprocess.run(["git", "-C", str(ROOT), "tag", "--list", ref], capture_output=True, text=True).stdout
    if tags.strip():
        assert subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                              capture_output=True).returncode == 0, f"tag {ref} names no commit"


def test_setup_reads_the_seed_beside_the_profile(monkeypatch):
    from ingur_lib import setup
    monkeypatch.setenv("INGUR_SEED", "2")
    assert setup("smoke", quiet=True).seed == 2
    assert setup("smoke", seed=1, quiet=True).seed == 1    # an explicit seed wins
    monkeypatch.delenv("INGUR_SEED")
    assert setup("smoke", quiet=True).seed == 0


def test_nbval_outputs_keep_ipythons_semicolon_rule():
    """nbval runs cells with store_history=False, so IPython cannot see a final ';' and returns the figure
    as a value too: the book built from nbval's outputs (make test) showed every figure twice."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("nb_conftest", ROOT / "notebooks" / "conftest.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    assert plugin.quiet("viz.sample_grid(x, y);")
    assert plugin.quiet("fig = f()\nviz.class_balance(s);  # the split\n")
    assert not plugin.quiet("table.round(2)") and not plugin.quiet("x = ';'")
    assert not plugin.quiet("for i in range(2):\n    f(i);\nprint(1)")


# A cell draws a figure when it calls a plotting helper (viz.*, a chapter's *figure* / fig_* / draw_*), an
# explorer (its static twin), or ends in ";"; data-loading calls such as ch.config do not count.
_DRAWS = re.compile(r"\b(viz\.(?!thesis_style|cls_attention)\w+|ch\.(?:\w+_)?(?:fig|figure|draw)\w*|\w+_explorer)\(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_caption_and_alt_text(path):
    """myst-nb turns the cell's `mystnb.figure.caption` into a numbered <figcaption> and `mystnb.image.alt`
    into the image's alt text (without them a reader gets a hash file name and no caption)."""
    # a figure call or a cell ending in ";" (the notebooks' way of showing a returned figure without its repr)
    drawn = [c for c in cells(path) if c["cell_type"] == "code" and (_DRAWS.search("".join(c["source"]))
                                                                     or "".join(c["source"]).rstrip().endswith(";"))]
    assert drawn, f"{path.name}: no figure found (is the pattern out of date?)"
    for c in drawn:
        meta = c["metadata"].get("mystnb", {})
        caption, alt = meta.get("figure", {}).get("caption", ""), meta.get("image", {}).get("alt", "")
        assert len(caption.split()) >= 5, f"{path.name} cell {c['id']}: give the figure a caption (mystnb.figure)"
        assert len(alt.split()) >= 4 and not re.fullmatch(r"[0-9a-f]{16,}.*", alt), \
            f"{path.name} cell {c['id']}: describe the image in mystnb.image.alt"
