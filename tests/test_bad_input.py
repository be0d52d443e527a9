"""Bad input (issue 17's list, and the older ones): each is answered by ONE sentence that names the fix.

Library calls raise `IngurError`; the command line prints one line `error: ...` and exits with code 2,
before any work starts. Each case returns the callable to run and a pattern the fix must match.
"""
import errno
import json
import os
import re
import subprocess
import sys
import warnings

import pytest
import torch

from ingur_lib import ledger, verdicts
from ingur_lib.__main__ import main
from ingur_lib.data import images, load_images
from ingur_lib.errors import IngurError
from ingur_lib.models.vit import ViTConfig
from ingur_lib.bench import bench
from ingur_lib.nn.blocks import DropPath
from ingur_lib.paths import cache_dir, repo_root
from ingur_lib.runtime import choose_seeds, env_seed, pick_device, provenance, seed_everything, setup
from ingur_lib.train import TrainConfig


def _results(tmp_results, text):
    (tmp_results / "00_getting_started").mkdir()
    (tmp_results / "00_getting_started" / "standard.json").write_text(text)
    return lambda: ledger.load_results("00_getting_started", "standard")


def _recorded(tmp_results, drop_comparison=None, drop_provenance=None, chapter="00_getting_started", prov=None,
              **comparison):
    """A results file as `record` writes it, less a key, or with `comparison`'s keys added or changed."""
    prov = {**provenance("standard", [0], 1.0, dataset={"name": "toy"}), **(prov or {})}
    comp = {"paper": "transformer", "claim": "beats_recurrent_bleu", "ours": 1.0, "metric": "m", **comparison}
    prov.pop(drop_provenance, None)
    comp.pop(drop_comparison, None)
    d = {"chapter": chapter, "profile": "standard", "provenance": prov, "metrics": {}, "comparisons": [comp]}
    (tmp_results / chapter).mkdir()
    (tmp_results / chapter / "standard.json").write_text(json.dumps(d))
    return lambda: ledger.table(chapter=chapter)


def _yaml(tmp_path, monkeypatch, text):
    (tmp_path / "paper.yaml").write_text(text)
    monkeypatch.setattr(verdicts, "reported_dir", lambda: tmp_path)
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
    "epochs 0": (lambda t, r, m: lambda: TrainConfig(epochs=0), r"use a finite number > 0"),
    "unknown schedule": (lambda t, r, m: lambda: TrainConfig(schedule="step"), r"use one of cosine, noam"),
    "INGUR_DEVICE=gpu": (lambda t, r, m: (m.setenv("INGUR_DEVICE", "gpu"), pick_device)[1], r"use cpu, cuda or mps"),
    "INGUR_PROFILE=huge": (lambda t, r, m: (m.setenv("INGUR_PROFILE", "huge"), setup)[1], r"use one of smoke"),
    "unknown dataset": (lambda t, r, m: lambda: load_images("imagenet"), r"use one of fashion_mnist"),
    "INGUR_RESULTS misspelt": (lambda t, r, m: (m.setenv("INGUR_RESULTS", str(t / "resluts")), ledger.table)[1],
                               r"point INGUR_RESULTS at a folder"),
    # issue 34
    "INGUR_RESULTS misspelt, a notebook's table": (
        lambda t, r, m: _env(m, "INGUR_RESULTS", t / "resluts", lambda: ledger.load_results("05_spt_lsa")),
        r"does not exist: point INGUR_RESULTS at a folder"),
    "INGUR_RESULTS a file": (lambda t, r, m: _env(m, "INGUR_RESULTS", _file_at(t), ledger.table),
                             r"point INGUR_RESULTS at a folder"),
    "results store a verdict": (lambda t, r, m: _recorded(r, verdict="not testable at this scale"),
                                r"stores 'verdict', but results files hold numbers only .*: delete those keys"),
    "results store a reason": (lambda t, r, m: _recorded(r, reason="typed by hand"), r"numbers only .*: delete"),
    "results store testable": (lambda t, r, m: _recorded(r, testable=False), r"numbers only .*: delete"),
    "results field of the wrong type": (lambda t, r, m: _recorded(r, prov={"wall_time_s": "slow"}),
                                        r"provenance.wall_time_s is str .*, not int or float: .*rerun"),
    "results note not text": (lambda t, r, m: _recorded(r, note=3), r"non-text note: rerun"),
    "results claim id misspelt": (lambda t, r, m: _recorded(r, claim="beats_recurent_bleu"),
                                  r"names no claim .*: use one of bleu_base_en_de, "),
    "results paper misspelt": (lambda t, r, m: _recorded(r, paper="transfomer"), r"unknown paper: use one of .*deit"),
    "INGUR_PROFILE misspelt": (lambda t, r, m: _env(m, "INGUR_PROFILE", "smoek", setup),
                               r"\(from INGUR_PROFILE\): use one of smoke"),
    "INGUR_SEED too high for 3 seeds": (lambda t, r, m: _env(m, "INGUR_SEED", 2**32 - 2,
                                                             lambda: choose_seeds(defaults=(0, 1, 2))),
                                        r"set it to at most 4294967293"),
    "INGUR_CACHE a file": (lambda t, r, m: _env(m, "INGUR_CACHE", _file_at(t), cache_dir),
                           r"point INGUR_CACHE at a folder you can write to"),
    "epochs inf": (lambda t, r, m: lambda: TrainConfig(epochs=float("inf")), r"use a finite number > 0"),
    "epochs nan": (lambda t, r, m: lambda: TrainConfig(epochs=float("nan")), r"use a finite number > 0"),
    "drop_path 1": (lambda t, r, m: lambda: ViTConfig(drop_path=1.0), r"probability in \[0, 1\): use 0"),
    "DropPath(1.5)": (lambda t, r, m: lambda: DropPath(1.5), r"probability in \[0, 1\)"),
    "dropout 1": (lambda t, r, m: lambda: ViTConfig(dropout=1), r"dropout=1 must be a probability"),
    "bench batch 0": (lambda t, r, m: lambda: bench(batch=0), r"batch=0 measures nothing: use a whole number"),
}
if not torch.cuda.is_available():
    LIBRARY["INGUR_DEVICE=cuda without CUDA"] = (lambda t, r, m: (m.setenv("INGUR_DEVICE", "cuda"), pick_device)[1],
                                                 r"not available on this machine: unset INGUR_DEVICE")


def _env(monkeypatch, name, value, call):
    """`call`, to be made with environment variable `name` set to `value`."""
    monkeypatch.setenv(name, str(value))
    return call


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


def _reproduce_with(name, value):
    """`reproduce 05_spt_lsa` with environment variable `name` set: answered before any data loads."""
    return lambda t, m: (m.setenv(name, value(t) if callable(value) else value), ["reproduce", "05_spt_lsa"])[1]


CLI = {
    "--seeds 0 0": (lambda t, m: ["reproduce", "05_spt_lsa", "--seeds", "0", "0"], r"distinct seeds"),
    "--seeds -1": (lambda t, m: ["reproduce", "05_spt_lsa", "--seeds", "-1"], r"pick one in that range"),
    "--seeds 2**32": (lambda t, m: ["reproduce", "05_spt_lsa", "--seeds", str(2**32)], r"pick one in that range"),
    "reproduce --profile huge": (lambda t, m: ["reproduce", "05_spt_lsa", "--profile", "huge"], r"use one of smoke"),
    "unknown chapter": (lambda t, m: ["reproduce", "nope"], r"use one of 00_getting_started"),
    "figures --profile huge": (lambda t, m: ["figures", "--out", str(t), "--profile", "huge"], r"use one of smoke"),
    "figures --out under a file": (lambda t, m: ["figures", "--out", _file_at(t)], r"pass --out a folder"),
    "student --out under a file": (lambda t, m: ["student", "--out", _file_at(t)], r"pass --out a folder"),
    "ledger --latex under a file": (lambda t, m: ["ledger", "--latex", _file_at(t) + "/l.tex"],
                                    r"pass --latex a file in a"),
    "figures --out unwritable": (lambda t, m: ["figures", "--out", "/sys/ingur-out"], r"pass --out a folder"),
    # issue 34: settings checked before any data loads or training starts
    "reproduce INGUR_PROFILE misspelt": (_reproduce_with("INGUR_PROFILE", "smoek"),
                                         r"\(from INGUR_PROFILE\): use one of smoke"),
    "reproduce INGUR_SEED garbage": (_reproduce_with("INGUR_SEED", "one"), r"INGUR_SEED='one' .*: set it to one"),
    "reproduce INGUR_DEVICE=gpu": (_reproduce_with("INGUR_DEVICE", "gpu"), r"use cpu, cuda or mps"),
    "reproduce INGUR_RESULTS misspelt": (_reproduce_with("INGUR_RESULTS", lambda t: str(t / "resluts")),
                                         r"point INGUR_RESULTS at a folder"),
    "reproduce results folder read-only": (_reproduce_with("INGUR_RESULTS", "/sys"),
                                           r"point INGUR_RESULTS at a folder you can write to"),
    "reproduce INGUR_CACHE a file": (_reproduce_with("INGUR_CACHE", _file_at), r"point INGUR_CACHE at a folder"),
    "figures INGUR_RESULTS misspelt": (lambda t, m: (m.setenv("INGUR_RESULTS", str(t / "resluts")),
                                                     ["figures", "--out", str(t)])[1], r"point INGUR_RESULTS"),
    "bench --batch 0": (lambda t, m: ["bench", "--batch", "0"], r"batch=0 measures nothing"),
    "bench --rounds 0": (lambda t, m: ["bench", "--rounds", "0"], r"rounds=0 measures nothing"),
}
if not torch.cuda.is_available():
    CLI["reproduce INGUR_DEVICE=cuda without CUDA"] = (_reproduce_with("INGUR_DEVICE", "cuda"),
                                                       r"not available on this machine")


@pytest.mark.parametrize("case", CLI, ids=str)
def test_cli_answers_in_one_line_exit_2(case, tmp_path, monkeypatch, capsys):
    argv, fix = CLI[case]
    assert main(argv(tmp_path, monkeypatch)) == 2
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


# ---------------------------------------------------------------- failures during a run: one line, exit 1 or 130

def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "l.tex")


def _ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


# id -> (argv, what to break (object, attribute) with which function, exit code, pattern of the one line)
RUN = {
    "results field of the wrong type": (["ledger"], None, 1, r"^error: .*provenance.wall_time_s is str"),
    "results claim id misspelt": (["ledger"], None, 1, r"^error: .*names no claim .*: use one of"),
    "disk full": (["ledger", "--latex", "l.tex"], (ledger, "to_latex", _disk_full), 1,
                  r"^error: could not use l.tex \(No space left on device\): free some space"),
    "Ctrl-C during figures": (["figures", "--out", "figs"], ("ingur_lib.book.make_figures", _ctrl_c), 130,
                              r"^interrupted: the files written so far are complete .*: run the command again"),
    "Ctrl-C during reproduce": (["reproduce", "00_getting_started", "--profile", "smoke"],
                                ("ingur_lib.chapters.getting_started.reproduce", _ctrl_c), 130,
                                r"^interrupted: nothing recorded; .* checkpointed in .*: run the same command "
                                r"again to resume them"),
}


@pytest.mark.parametrize("case", RUN, ids=str)
def test_a_failing_run_says_what_happened_in_one_line(case, tmp_path, tmp_results, monkeypatch, capsys):
    argv, broken, code, line = RUN[case]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INGUR_CACHE", str(tmp_path / "cache"))  # an interrupted reproduce keeps its checkpoints
    if broken:
        monkeypatch.setattr(*broken)
    if "wrong type" in case:
        _recorded(tmp_results, prov={"wall_time_s": "slow"})
    if "misspelt" in case:
        _recorded(tmp_results, claim="beats_recurent_bleu")
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and re.search(line, err), err


def test_stdout_that_cannot_encode_the_books_characters_gets_escapes():
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    run = subprocess.run([sys.executable, "-m", "ingur_lib", "ledger"], capture_output=True, text=True, env=env,
                         cwd=repo_root(), timeout=300)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "\\xb1" in run.stdout  # the ± of "mean ± s.e."


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_read_only_results_folder_is_refused_before_training(tmp_results, monkeypatch, capsys):
    tmp_results.chmod(0o555)
    try:
        assert main(["reproduce", "00_getting_started", "--profile", "smoke"]) == 2
    finally:
        tmp_results.chmod(0o755)
    assert "point INGUR_RESULTS at a folder you can write to" in capsys.readouterr().err


# ---------------------------------------------------------------- caches: the right copy, and no code run on load

def _idx(path, array):
    """Write `array` (uint8) as a gzipped IDX file, the format of Fashion-MNIST's files."""
    import gzip
    import struct
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def _fashion_copy(folder, n):
    import numpy as np
    folder.mkdir()
    for prefix in ("train", "t10k"):
        _idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.full((n, 28, 28), 7, np.uint8))
        _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)


def test_a_cached_fashion_mnist_never_answers_for_another_folder(tmp_path, tmp_cache, monkeypatch):
    for name, n in (("copy_a", 20), ("copy_b", 30)):
        _fashion_copy(tmp_path / name, n)
        monkeypatch.setenv("INGUR_FASHION_MNIST_DIR", str(tmp_path / name))
        data = load_images("fashion_mnist", verbose=False)
        assert len(data.train_y) == n and name in data.source   # copy_b is read, not copy_a's cache


def test_a_planted_forgery_cache_runs_no_code(tmp_cache, capsys):
    from ingur_lib.data import forgery
    cfg = forgery.ForgeryConfig(n_test_sources=2, frames=1, train_videos=1)
    first = forgery.load(cfg)
    path = next((tmp_cache / "forgery").glob("*.pt"))
    flag = tmp_cache / "planted-code-ran"
    torch.save(_Planted(str(flag)), path)   # what a shared INGUR_CACHE could hold
    again = forgery.load(cfg)
    assert not flag.exists() and "unreadable; rebuilding" in capsys.readouterr().out
    assert torch.equal(again.train.x, first.train.x) and again.variants == first.variants


class _Planted:
    """A pickle that would create a file when unpickled (with weights_only=False)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))
