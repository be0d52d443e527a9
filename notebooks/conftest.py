"""nbval runs every notebook once; this plugin keeps what it ran, so the book build does not run it again.

For each notebook whose every cell passed under nbval, the outputs nbval collected are put back into the
notebook and the executed copy is stored in the book's execution cache (jupyter-cache, the one that
`_config.yml`'s `execute_notebooks: cache` reads). The book build then finds every notebook there, by the
hash of its code, and renders it without executing it. A notebook with a failing cell is not cached:
the build runs it itself (and fails on the error, as it should).

`make test` keeps this cache between its nbval step and its book build; `make book` empties it first,
so a book built alone always executes what is on disk now.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parents[1] / "_build" / ".jupyter_cache"
_FAILED: set[str] = set()
_FILES: dict[str, object] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not hasattr(item, "test_outputs") or call.when != "call":
        return
    notebook = item.parent
    _FILES[str(notebook.fspath)] = notebook
    if outcome.get_result().failed or item.test_outputs is None:
        _FAILED.add(str(notebook.fspath))
        return
    outputs = item.test_outputs
    if quiet(item.cell.source):
        # nbval runs cells without storing them in IPython's history, so IPython cannot see a final ';'
        # and shows the value anyway: every `viz.figure(...);` came out twice in the book (issue 18)
        outputs = [o for o in outputs if o.get("output_type") != "execute_result"]
    item.cell.outputs = outputs
    counts = [o["execution_count"] for o in outputs if "execution_count" in o]
    item.cell.execution_count = counts[0] if counts else None


def quiet(source: str) -> bool:
    """IPython's rule: a cell whose last token (comments aside) is ';' shows no value."""
    import io
    import tokenize
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT}
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]
    except (tokenize.TokenError, SyntaxError):
        return False
    return bool(toks) and toks[-1].string == ";"


def pytest_sessionfinish(session, exitstatus):
    # INGUR_NBVAL_CACHE=0 turns storing off; a run under another seed (INGUR_SEED) is never stored,
    # because the book shows the seed-0 run and the cache is keyed by the notebook's code alone
    if os.environ.get("INGUR_NBVAL_CACHE", "1") == "0" or os.environ.get("INGUR_SEED", "0").strip() not in ("", "0"):
        return
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    cache = get_cache(str(CACHE))
    for path, notebook in _FILES.items():
        if path in _FAILED:
            continue
        bundle = CacheBundleIn(nb=notebook.nb, uri=path, data={"executed_by": "nbval"})
        cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
