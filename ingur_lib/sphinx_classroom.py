"""Sphinx extension (listed in `_config.yml`): the book's download button serves the classroom notebook.

Sphinx copies every page's source into `_sources/`, and the theme's download button (".ipynb") links
there, so a reader would download the teacher's notebook with its solutions and worked answers. When the
build finishes, each copied chapter notebook is replaced by its classroom version
(`exercises.student_notebook`): the page shows the worked solutions' outputs, the download gives the
exercises to fill in. The teacher's version stays in the repository (`notebooks/`, `make teacher`).
"""
from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_text
from .exercises import student_notebook


def classroom_sources(outdir: str | Path, srcdir: str | Path) -> list[Path]:
    """Overwrite `outdir/_sources/notebooks/*.ipynb` with the classroom version of `srcdir/notebooks/*`."""
    written = []
    for copied in sorted((Path(outdir) / "_sources" / "notebooks").glob("*.ipynb")):
        source = Path(srcdir) / "notebooks" / copied.name
        if source.exists():
            nb = student_notebook(json.loads(source.read_text(encoding="utf-8")))
            write_text(copied, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            written.append(copied)
    return written


def _on_finished(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        classroom_sources(app.outdir, app.srcdir)


def setup(app):
    app.connect("build-finished", _on_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
