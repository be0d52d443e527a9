"""Bad input (issue 17's list, and the older ones): each is answered by ONE sentence that names the fix.

Library calls raise `IngurError`; the command line prints one line `error: ...` and exits with code 2,
before any work starts. Each case returns the callable to run and a pattern the fix must match.
"""
import json
import os
import warnings

import pytest
import torch

from ingur_lib import ledger
from ingur_lib.__main__ import main
from ingur_lib.data import images, load_images
from ingur_lib.errors import IngurError
from ingur_lib.models.vit import ViTConfig
from ingur_lib.runtime import env_seed, pick_device, seed_everything, setup
from ingur_lib.train import TrainConfig


def _results(tmp_results, text):
    (tmp_results / "00_getting_started").mkdir()
    (tmp_results / "00_getting_started" / "standard.json").write_text(text)
    return lambda: ledger.load_results("00_getting_started", "standard")


def _recorded(tmp_results, drop_comparison=None, drop_provenance=None):
    prov = {k: "x" for k in ledger.PROVENANCE_KEYS}
    comp = {"paper": "p", "claim": "c", "ours": 1.0, "metric": "m", "verdict": ledger.VERDICTS[0], "reason": ""}
    prov.pop(drop_provenance, None)
    comp.pop(drop_comparison, None)
    d = {"chapter": "00_getting_started", "profile": "standard", "provenance": prov, "metrics": {},
         "comparisons": [comp]}
    return _results(tmp_results, json.dumps(d))


def _yaml(tmp_path, monkeypatch, text):
    (tmp_path / "paper.yaml").write_text(text)
    monkeypatch.setattr(ledger, "reported_dir", lambda: tmp_path)
    return lambda: ledger.load_reported("paper")


GOOD_YAML = """paper: p
ref: 1
title: t
authors: a
year: 2020
bibkey: k
claims:
  - {id: c, claim: c, metric: acc, value: VALUE, unit: points, dataset: d, kind: relative, source: Table 1}
"""


def _file_at(tmp_path):
    (tmp_path / "a_file").write_text("x")
    return str(tmp_path / "a_file" / "out")


# id -> (make(tmp_path, tmp_results, monkeypatch) -> callable, pattern naming the fix)
LIBRARY = {
    "seed -1": (lambda t, r, m: lambda: seed_everything(-1), r"pick one in that range"),
    "seed 2**32": (lambda t, r, m: lambda: TrainConfig(seed=2**32), r"\[0, 2\*\*32 - 1\]: pick one"),
    "INGUR_SEED garbage": (lambda t, r, m: (m.setenv("INGUR_SEED", "one"), env_seed)[1], r"set it to one in"),
    "INGUR_SEED -1": (lambda t, r, m: (m.setenv("INGUR_SEED", "-1"), env_seed)[1], r"Seed -1 .*: pick one"),
    "results JSON null": (lambda t, r, m: _results(r, "null"), r"rerun the chapter"),
    "results JSON broken": (lambda t, r, m: _results(r, "{"), r"rerun `python -m ingur_lib reproduce"),
    "results lack ours": (lambda t, r, m: _recorded(r, drop_comparison="ours"), r"lacks ours: rerun"),
    "results lack commit": (lambda t, r, m: _recorded(r, drop_provenance="commit"), r"lacks commit: rerun"),
    "YAML syntax error": (lambda t, r, m: _yaml(t, m, "paper: [p\nref: 1\n"), r"not valid YAML at line \d+.*: fix"),
    "YAML empty": (lambda t, r, m: _yaml(t, m, ""), r"empty or not a mapping: write"),
    "YAML value .nan": (lambda t, r, m: _yaml(t, m, GOOD_YAML.replace("VALUE", ".nan")), r"finite number"),
    "ViT patch 0": (lambda t, r, m: lambda: ViTConfig(patch_size=0), r"patch_size=0 must be a whole number"),
    "ViT depth 0": (lambda t, r, m: lambda: ViTConfig(depth=0), r"depth=0 must be a whole number >= 1"),
    "ViT patch 5 on 28 px": (lambda t, r, m: lambda: ViTConfig(patch_size=5), r"use a patch size in"),
    "ViT unknown attention": (lambda t, r, m: lambda: ViTConfig(attention="x"), r"use one of"),
    "batch_size 0": (lambda t, r, m: lambda: TrainConfig(batch_size=0), r"batch_size=0 must be .* >= 1"),
    "batch_size -1": (lambda t, r, m: lambda: TrainConfig(batch_size=-1), r"batch_size=-1 must be .* >= 1"),
    "eval_every 0": (lambda t, r, m: lambda: TrainConfig(eval_every=0), r"eval_every=0 must be .* >= 1"),
    "epochs 0": (lambda t, r, m: lambda: TrainConfig(epochs=0), r"use a number > 0"),
    "unknown schedule": (lambda t, r, m: lambda: TrainConfig(schedule="step"), r"use one of cosine, noam"),
    "INGUR_DEVICE=gpu": (lambda t, r, m: (m.setenv("INGUR_DEVICE", "gpu"), pick_device)[1], r"use cpu, cuda or mps"),
    "INGUR_PROFILE=huge": (lambda t, r, m: (m.setenv("INGUR_PROFILE", "huge"), setup)[1], r"use one of smoke"),
    "unknown dataset": (lambda t, r, m: lambda: load_images("imagenet"), r"use one of fashion_mnist"),
    "INGUR_RESULTS misspelt": (lambda t, r, m: (m.setenv("INGUR_RESULTS", str(t / "resluts")), ledger.table)[1],
                               r"point INGUR_RESULTS at a folder"),
}
if not torch.cuda.is_available():
    LIBRARY["INGUR_DEVICE=cuda without CUDA"] = (lambda t, r, m: (m.setenv("INGUR_DEVICE", "cuda"), pick_device)[1],
                                                 r"not available on this machine: unset INGUR_DEVICE")


def _one_sentence(msg: str, fix: str):
    assert "\n" not in msg and "Traceback" not in msg, msg
    assert msg.rstrip().endswith("."), f"one sentence, ending with a full stop: {msg}"
    assert __import__("re").search(fix, msg), f"the message should name the fix ({fix}): {msg}"


@pytest.mark.parametrize("case", LIBRARY, ids=str)
def test_library_answers_in_one_sentence(case, tmp_path, tmp_results, monkeypatch):
    make, fix = LIBRARY[case]
    call = make(tmp_path, tmp_results, monkeypatch)
    with pytest.raises(IngurError) as err:
        call()
    _one_sentence(str(err.value), fix)


CLI = {
    "--seeds 0 0": (lambda t: ["reproduce", "05_spt_lsa", "--seeds", "0", "0"], r"distinct seeds"),
    "--seeds -1": (lambda t: ["reproduce", "05_spt_lsa", "--seeds", "-1"], r"pick one in that range"),
    "--seeds 2**32": (lambda t: ["reproduce", "05_spt_lsa", "--seeds", str(2**32)], r"pick one in that range"),
    "reproduce --profile huge": (lambda t: ["reproduce", "05_spt_lsa", "--profile", "huge"], r"use one of smoke"),
    "unknown chapter": (lambda t: ["reproduce", "nope"], r"use one of 00_getting_started"),
    "figures --profile huge": (lambda t: ["figures", "--out", str(t), "--profile", "huge"], r"use one of smoke"),
    "figures --out under a file": (lambda t: ["figures", "--out", _file_at(t)], r"pass --out a folder"),
    "student --out under a file": (lambda t: ["student", "--out", _file_at(t)], r"pass --out a folder"),
    "ledger --latex under a file": (lambda t: ["ledger", "--latex", _file_at(t) + "/l.tex"], r"pass --latex a file in a"),
    "figures --out unwritable": (lambda t: ["figures", "--out", "/sys/ingur-out"], r"pass --out a folder"),
}


@pytest.mark.parametrize("case", CLI, ids=str)
def test_cli_answers_in_one_line_exit_2(case, tmp_path, capsys):
    argv, fix = CLI[case]
    assert main(argv(tmp_path)) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("error: ") and out.err.count("\n") == 1, out
    _one_sentence(out.err[len("error: "):].rstrip("\n"), fix)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_cli_unwritable_existing_folder(tmp_path, capsys):
    tmp_path.chmod(0o555)
    try:
        assert main(["student", "--out", str(tmp_path)]) == 2
    finally:
        tmp_path.chmod(0o755)
    assert "is not writable: pass --out" in capsys.readouterr().err


def test_cli_misspelt_results_folder_never_publishes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INGUR_RESULTS", str(tmp_path / "resluts"))
    assert main(["ledger", "--write"]) == 2
    assert "INGUR_RESULTS" in capsys.readouterr().err


# ---------------------------------------------------------------- Fashion-MNIST folder: fall back, say so

needs_debian = pytest.mark.skipif(not any(os.path.exists(d) for d in images.DEBIAN_FASHION_DIRS),
                                  reason="Debian package dataset-fashion-mnist not installed")


def _build_without_dataset(monkeypatch):
    """Read the IDX files only (skip turning them into a 🤗 dataset, which a test need not wait for)."""
    monkeypatch.setattr(images, "_to_dsd", lambda arrays, classes: arrays)
    return images._build_fashion_mnist()


@needs_debian
@pytest.mark.parametrize("garbage", [False, True], ids=["empty folder", "garbage files"])
def test_bad_fashion_mnist_dir_falls_back_and_says_so(garbage, tmp_path, monkeypatch):
    if garbage:
        for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
            (tmp_path / f"{name}-ubyte.gz").write_bytes(b"not gzip at all")
    monkeypatch.setenv("INGUR_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="holds no|unreadable") as said:
        arrays, source = _build_without_dataset(monkeypatch)
    assert str(tmp_path) not in source and arrays["train"][0].shape == (60000, 1, 28, 28)
    assert "Using" in str(said[0].message) or "using the Debian copy" in str(said[0].message)


def test_bad_fashion_mnist_dir_and_no_good_copy_fails_clearly(tmp_path, monkeypatch):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"junk")
    monkeypatch.setenv("INGUR_FASHION_MNIST_DIR", str(tmp_path))
    monkeypatch.setattr(images, "DEBIAN_FASHION_DIRS", ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(IngurError) as err:
            _build_without_dataset(monkeypatch)
    _one_sentence(str(err.value), r"point INGUR_FASHION_MNIST_DIR at the package's folder")
