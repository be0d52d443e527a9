"""The library installed like any other (a wheel built from pyproject.toml, outside the repository) carries
what `reproduce` needs: a smoke run from an empty folder records its results there."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install .` into a folder of its own (dependencies come from this environment)."""
    site = tmp_path_factory.mktemp("site")
    src = tmp_path_factory.mktemp("src") / "ingur"
    # a copy of the tracked tree, so the build never writes into the checkout
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, timeout=300, capture_output=True)
    return site


def _outside(site, tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGUR_")}
    env.update(PYTHONPATH=str(site), TQDM_DISABLE="1", INGUR_WORKERS="1")
    return subprocess.run([sys.executable, "-m", "ingur_lib", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)


def test_an_installed_library_reproduces_a_smoke_run_outside_the_repository(installed, tmp_path):
    where = _outside(installed, tmp_path, "reproduce", "09_matmul_free", "--profile", "smoke", "--dry-run")
    assert where.returncode == 0, where.stderr[-2000:]
    out = json.loads((tmp_path / "data" / "cache" / "dry_run" / "09_matmul_free" / "smoke.json").read_text())
    assert out["comparisons"], "the claims came from the installed package's data"
    assert (installed / "ingur_lib" / "_reported" / "matmul_free.yaml").exists()


def test_book_commands_outside_a_clone_stop_with_one_sentence(installed, tmp_path):
    for args in (["student", "--out", "s"], ["pin"], ["figures", "--out", "f"]):
        run = _outside(installed, tmp_path, *args)
        assert run.returncode == 2, args
        assert run.stderr.startswith("error: ") and len(run.stderr.strip().splitlines()) == 1, run.stderr
