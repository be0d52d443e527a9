"""Every chapter's `reproduce` in the smoke profile, through the command line and the recording path.

Issue 34: `reproduce 07_vtp --profile smoke` trained and then died on a claim its profile does not measure,
and no test ran a chapter's smoke `reproduce`. Here each one runs end to end (data, models, evaluation,
comparisons, the results file, the ledger's table of it) with one seed and as a dry run (`--dry-run`,
`ingur_lib.dryrun`), which caps every training at two steps of two samples and every dataset at a few
examples per class. The timings below were taken under the older step cap alone, on the whole smoke data.
Measured on the shared 2-core machine (load 10-12, five other jobs): a real smoke run of 01 had not ended
after 10 minutes; capped with each chapter's smoke seeds (02: three),
six chapters took 20 minutes under pytest; capped with one seed, the ten take 63 CPU seconds at one torch
thread (01, the dearest, 27 s: its evaluation decodes; most 1-9 s), but 22.6 min wall (6.8 CPU min) under
pytest's two threads fighting the other jobs for the two cores (a rerun at load 8: 11.4 min wall, 7.5 CPU
min; 01 3.4 min, 06 2.6 min, the rest under 1.6 min each). What breaks the recording path (07's KeyError)
breaks it after two steps as after two thousand. A dry run writes its results file under the cache
(`<cache>/dry_run/<chapter>/<profile>.json`, laid out as a results folder) and never in the results folder
(INGUR_RESULTS, a folder of the test's own); the ledger then reads it with INGUR_RESULTS pointed there."""
import pytest

from ingur_lib import dryrun, ledger
from ingur_lib.__main__ import main
from ingur_lib.chapters import landed
from ingur_lib.paths import repo_root


def _cache_sharing_datasets(tmp_path):
    """A cache of the test's own that links the checkout's built datasets (not its checkpoints), so that a
    dry run neither rebuilds 70,000 images nor touches a real run's checkpoints."""
    cache, real = tmp_path / "cache", repo_root() / "data" / "cache"
    cache.mkdir()
    for entry in real.iterdir() if real.is_dir() else ():
        if entry.name != "checkpoints" and not entry.name.startswith("."):
            (cache / entry.name).symlink_to(entry)
    return cache


@pytest.mark.parametrize("chapter", [c.id for c in landed()])
def test_smoke_reproduce_records_a_results_file_the_ledger_reads(chapter, tmp_path, monkeypatch, capsys):
    (tmp_path / "results").mkdir()
    monkeypatch.setenv("INGUR_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("INGUR_CACHE", str(_cache_sharing_datasets(tmp_path)))
    monkeypatch.setenv("INGUR_WORKERS", "1")  # 08's trainings in this process: no worker start-up to wait for
    for name in ("INGUR_PROFILE", "INGUR_SEED", "INGUR_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("INGUR_DRY_RUN", raising=False)
    code = main(["reproduce", chapter, "--profile", "smoke", "--seeds", "0", "--dry-run"])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    assert f"reproduce {chapter}: profile smoke (from --profile)" in out.out
    assert not list((tmp_path / "results").rglob("*.json")), "a dry run never writes the results folder"
    dry = tmp_path / "cache" / "dry_run"
    assert (dry / chapter / "smoke.json").is_file()
    monkeypatch.setenv("INGUR_RESULTS", str(dry))  # the ledger reads the dry run's file as a results file
    d = ledger.load_results(chapter, "smoke")
    assert d["provenance"]["profile"] == "smoke" and d["provenance"]["dry_run"]["steps"] == dryrun.STEPS
    table = ledger.table(chapter=chapter)   # every comparison names a claim of its paper's YAML
    ran = [c["claim"] for c in d["comparisons"]]
    assert len(table[table["profile"] == "smoke"]) == len(ran)
    assert not (tmp_path / "cache" / "checkpoints" / f"{chapter}-smoke").exists()  # removed at the end
