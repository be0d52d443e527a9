"""Interrupted runs resume: a run killed with SIGKILL and started again gives the uninterrupted numbers."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ingur_lib import resume
from ingur_lib.models.vit import ViT, ViTConfig
from ingur_lib.train import TrainConfig, fit

SCRIPT = r'''
import json, time, torch
from ingur_lib.models.vit import ViT, ViTConfig
from ingur_lib.resume import resumable
from ingur_lib.train import TrainConfig, fit

def slow(batch, train, gen):  # slow enough that the test can kill the run in the middle
    if train:
        time.sleep(0.04)
    return batch

torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x, y = torch.rand(256, 1, 8, 8, generator=g), torch.arange(256) % 2
x[y == 0, :, :4, :4] += 1
out = {}
with resumable("test", "smoke"):
    for variant, depth in (("A", 1), ("B", 2)):  # two trainings, as a chapter's variants
        torch.manual_seed(0)
        m = ViT(ViTConfig(image_size=8, patch_size=4, num_classes=2, dim=16, depth=depth, heads=2))
        cfg = TrainConfig(epochs=5, batch_size=64, lr=3e-3, warmup_epochs=0.5, seed=1)
        h = fit(m, (x, y), (x, y), cfg, prepare=slow, desc=variant, progress=False)
        out[variant] = {"steps": h.steps, "acc": h.last("test_acc"), "next_draw": torch.rand(1).item(),
                        "weights": [p.sum().item() for p in m.parameters()]}
print("RESULT " + json.dumps(out))
'''


def run(cache, tmp_path, kill_when=None):
    (tmp_path / "script.py").write_text(SCRIPT)
    env = {**os.environ, "INGUR_CACHE": str(cache), "TQDM_DISABLE": "1"}
    p = subprocess.Popen([sys.executable, str(tmp_path / "script.py")], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_when:
        folder = cache / "checkpoints" / "test-smoke"
        deadline = time.time() + 60
        while not list(folder.glob(kill_when)) and p.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert p.poll() is None, "the run ended before the test could kill it"
        p.send_signal(signal.SIGKILL)
        p.wait()
        return None
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return out


def test_killed_run_resumes_to_the_same_numbers(tmp_path):
    whole = run(tmp_path / "a", tmp_path)
    run(tmp_path / "b", tmp_path, kill_when="B-*.pt")        # killed inside B's training, A finished
    left = list((tmp_path / "b" / "checkpoints" / "test-smoke").glob("*.pt"))
    assert {p.name[0] for p in left} == {"A", "B"}
    resumed = run(tmp_path / "b", tmp_path)
    assert "A: resumed after epoch 5/5" in resumed and "B: resumed after epoch" in resumed
    result = lambda out: json.loads(out.split("RESULT ", 1)[1])
    assert result(resumed) == result(whole)                   # bit-identical, RNG state after it too
    assert not (tmp_path / "b" / "checkpoints" / "test-smoke").exists(), "removed when the run ends"


def toy(seed, n=128):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 2, (n,), generator=g)


def model(depth=1):
    torch.manual_seed(0)
    return ViT(ViTConfig(image_size=8, patch_size=4, num_classes=2, dim=16, depth=depth, heads=2))


CFG = TrainConfig(epochs=2, batch_size=64, seed=0)


def test_fingerprint_covers_config_model_data_functions_and_code(monkeypatch):
    data = toy(0)
    base = resume.fingerprint(model(), data, data, CFG)
    assert base == resume.fingerprint(model(), toy(0), toy(0), CFG)          # stable
    assert base != resume.fingerprint(model(), toy(1), toy(1), CFG)          # other data, same size
    assert base != resume.fingerprint(model(2), data, data, CFG)             # other model
    assert base != resume.fingerprint(model(), data, data, TrainConfig(epochs=2, batch_size=64, seed=1))
    smoothing = lambda s: (lambda m, b: s)                                   # noqa: E731  a closure's value
    assert resume.fingerprint(model(), data, data, CFG, loss_fn=smoothing(0.1)) != \
        resume.fingerprint(model(), data, data, CFG, loss_fn=smoothing(0.2))
    monkeypatch.setattr(resume, "code_version", lambda: "another commit")
    assert base != resume.fingerprint(model(), data, data, CFG)


def test_another_dataset_of_the_same_size_does_not_resume(tmp_cache, capsys):
    with resume.resumable("t", "smoke") as folder:
        fit(model(), toy(0), None, CFG, progress=False)
        assert len(list(folder.glob("*.pt"))) == 1
        h = fit(model(), toy(1), None, CFG, progress=False)
        assert "resumed" not in capsys.readouterr().out and len(h.steps) == 4
        assert len(list(folder.glob("*.pt"))) == 2
    assert not folder.exists()


def test_an_error_keeps_the_checkpoints_for_the_next_try(tmp_cache):
    with pytest.raises(KeyboardInterrupt):
        with resume.resumable("t", "smoke") as folder:
            fit(model(), toy(0), None, CFG, progress=False)
            raise KeyboardInterrupt
    assert len(list(folder.glob("*.pt"))) == 1
    assert resume.active() is None


def test_cli_reproduce_runs_inside_resumable(monkeypatch, tmp_cache, tmp_results):
    import types

    from ingur_lib import __main__ as cli
    seen = {}
    fake = types.SimpleNamespace(CHAPTER="99_fake", config=lambda profile: types.SimpleNamespace(seeds=(0,)),
                                 reproduce=lambda profile, **kw: seen.setdefault("f", resume.active()))
    monkeypatch.setattr("ingur_lib.chapters.get", lambda name: fake)
    assert cli.main(["reproduce", "99_fake", "--profile", "smoke"]) == 0
    assert seen["f"] == resume.checkpoint_folder("99_fake", "smoke") and not seen["f"].exists()


def test_a_resumed_runs_wall_time_counts_the_interrupted_attempt(tmp_cache):
    """05's recording left out the time before its resume: the provenance now adds it (until the
    interrupted attempt's last checkpoint) and says which attempt finished the run."""
    from ingur_lib.runtime import provenance
    with pytest.raises(KeyboardInterrupt):
        with resume.resumable("t", "smoke") as folder:
            assert resume.earlier_attempts() == {"seconds": 0.0, "attempts": 1}
            fit(model(), toy(0), None, CFG, progress=False)
            raise KeyboardInterrupt
    clock = json.loads((folder / "wall_clock.json").read_text())
    clock["start"] -= 100.0                     # as if the first attempt had started 100 s before its checkpoint
    (folder / "wall_clock.json").write_text(json.dumps(clock))
    with resume.resumable("t", "smoke"):
        earlier = resume.earlier_attempts()
        assert earlier["attempts"] == 2 and 100.0 <= earlier["seconds"] < 160.0
        p = provenance("smoke", [0], 5.0)
        assert p["attempts"] == 2 and p["wall_time_s"] == pytest.approx(5.0 + earlier["seconds"], abs=0.1)
    assert resume.earlier_attempts() == {"seconds": 0.0, "attempts": 1}
    assert "attempts" not in provenance("smoke", [0], 5.0)
