"""The convergence migration (`python -m ingur_lib.migrate`): the committed results files hold their convergence
checks in `experiment.longer_check`'s one format, with no stored verdict, and every per-seed number is the one
recorded before the migration (read from git)."""
import json
import subprocess

import pytest

from ingur_lib import migrate
from ingur_lib.paths import repo_root, results_dir

BEFORE = "4958c66"  # the last commit whose results files stored the per-chapter convergence formats
VERDICTS = {"converged", "moved", "smallest_effect", "smallest", "smallest_name", "smallest_effect_points",
            "smallest_effect_name", "smallest_effect_pct", "rule", "noisy"}


def _before(chapter: str) -> dict | None:
    out = subprocess.run(["git", "show", f"{BEFORE}:data/results/{chapter}/standard.json"], cwd=repo_root(),
                         capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None  # a shallow clone may lack the commit


def _now(chapter: str) -> dict:
    return json.loads((results_dir() / chapter / "standard.json").read_text())


# Per chapter: the old record's per-seed numbers, as {new record name: (base, longer, change or None)}; a
# change is None where the old record stored none per seed (one seed's scalar, or a mean only).
def _old_numbers(chapter: str, d: dict) -> dict:
    c = d["convergence"]
    if chapter == "01_transformer":
        return {n: ([v["exact"]], [v["exact_longer"]], [v["change"]]) for n, v in c.items() if isinstance(v, dict)}
    if chapter == "02_deit":
        out = {c["variant"]: (c["base"]["values"], c["longer"]["values"], c["change_points"]["values"])}
        out.update({f"teacher {n}": ([t["acc"]], [t["acc_longer"]], [t["change"]])
                    for n, t in c["teacher_longer"].items()})
        return out
    if chapter == "03_cait":
        depth = c["model"].split("/")[1]
        return {c["model"]: (d["accuracy"]["ViT"][depth], c["acc_longer"]["values"], c["delta"]["values"])}
    if chapter == "04_augreg":
        return {f"{s}/n={n}": (v["base"], v["longer"], v["change"]["values"])
                for n, per in c.items() for s, v in per.items()}
    if chapter == "07_vtp":
        return {c["arm"]: ([c["acc"]], [c["acc_longer"]], [c["change"]])}
    if chapter == "08_binaryvit":
        return {n: (v["acc"], v["acc_1.5x"], None) for n, v in c.items()}
    if chapter == "09_matmul_free":
        return {c["model"]: ([c["val_loss"]], [c["val_loss_longer"]], [c["change_pct"]])}
    raise AssertionError(chapter)


@pytest.mark.parametrize("chapter", sorted(migrate.CONVERTERS))
def test_the_migration_kept_every_per_seed_number_and_dropped_every_stored_verdict(chapter):
    before, now = _before(chapter), _now(chapter)
    assert migrate.is_one_format(now["convergence"]), "the committed file is in the one format"
    for name, rec in now["convergence"].items():
        assert not VERDICTS & set(rec), f"{chapter} {name} still stores a verdict"
        assert rec["change"]["n"] == len(rec["seeds"]) == len(rec["base"]) == len(rec["longer"])
    if before is None:
        pytest.skip(f"{BEFORE} is not in this clone")
    old = _old_numbers(chapter, before)
    assert list(old) == list(now["convergence"]), "one record per checked model, in the order stored"
    for name, (base, longer, change) in old.items():
        rec = now["convergence"][name]
        assert rec["base"] == base and rec["longer"] == longer, name              # exactly, not approximately
        if change is not None:
            assert rec["change"]["values"] == change, name
        else:   # a mean only was stored: the per-seed change is longer minus base, exactly as the chapter takes it
            assert rec["change"]["values"] == [b - a for a, b in zip(base, longer)]
    # everything else is as it was: the other fields, and the provenance with only a note added
    rest = lambda d: {k: v for k, v in d.items() if k not in ("convergence", "provenance")}  # noqa: E731
    assert rest(now) == rest(before)
    prov = dict(now["provenance"])
    assert prov.pop("migrated") == {"convergence": migrate.CONVERGENCE_NOTE}
    assert prov == before["provenance"]
    # the migration reproduces the committed file from the old one, and rerunning it changes nothing
    assert migrate.convergence_migrated(migrate.migrated(before)) == now
    assert migrate.convergence_migrated(now) == now


def test_migrate_rewrites_a_file_once(tmp_path):
    if _before("07_vtp") is None:
        pytest.skip(f"{BEFORE} is not in this clone")
    (tmp_path / "07_vtp").mkdir()
    path = tmp_path / "07_vtp" / "standard.json"
    path.write_text(json.dumps(_before("07_vtp")))
    assert migrate.migrate(tmp_path) == [path] and migrate.migrate(tmp_path) == []
    assert json.loads(path.read_text()) == _now("07_vtp")
