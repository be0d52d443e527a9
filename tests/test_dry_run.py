"""Every chapter's `full` profile, dry: its loaders (the Hub ones answered by tiny stand-ins of the Hub's
parquet datasets), models, grids, measurements and results file, two optimizer steps per training on a few
images per class, on CPU, through `python -m ingur_lib reproduce <chapter> --profile full --dry-run`."""
import json
import time

import pytest

from ingur_lib.__main__ import main
from ingur_lib.chapters import landed

TIMES = {}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for the module: the chapters share the derived datasets, as they do in a real run."""
    return tmp_path_factory.mktemp("dry_cache")


# 06's full profile names the paper's CViT at 224 px, but its only loader is the 24 px synthetic forgery set
# (no deepfake set on the Hub has a loader yet): the dry run stops at the model's first image. Strict: when
# a loader lands, this test fails until the mark is removed.
KNOWN = {"06_cvit": pytest.mark.xfail(strict=True, reason="06 full: 224 px models, 24 px data; no loader yet")}


@pytest.mark.parametrize("chapter", [pytest.param(c.id, marks=KNOWN.get(c.id, ())) for c in landed()])
def test_the_full_profile_runs_dry(chapter, shared_cache, tmp_results, fake_hub, monkeypatch, capsys):
    from ingur_lib.data import images
    for key, value in {"INGUR_CACHE": str(shared_cache), "INGUR_WORKERS": "1", "INGUR_OFFLINE": "0"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("INGUR_DRY_RUN", raising=False)
    images._load.cache_clear()
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        assert main(["reproduce", chapter, "--profile", "full", "--dry-run"]) == 0
    finally:
        monkeypatch.delenv("INGUR_DRY_RUN", raising=False)  # the flag set it for this process
        images._load.cache_clear()
    TIMES[chapter] = time.perf_counter() - t0, time.process_time() - cpu0
    out = json.loads((shared_cache / "dry_run" / chapter / "full.json").read_text())
    assert (out["chapter"], out["profile"]) == (chapter, "full")
    assert out["provenance"]["launch"]["processes"] == 1
    assert not list(tmp_results.rglob("*.json")), "a dry run never writes the results folder"
    with capsys.disabled():
        print(f"\n{chapter}: full profile dry in {TIMES[chapter][0]:.0f} s ({TIMES[chapter][1]:.0f} s of CPU)")
