"""The training loop data-parallel: 2 CPU processes (gloo, through Accelerate) equal 1 process on the same
global batch; gradient accumulation equals the whole batch at once."""
import os
import subprocess
import sys

import pytest
import torch

from ingur_lib.models.vit import ViT, ViTConfig
from ingur_lib.train import TrainConfig, fit

CFG = TrainConfig(epochs=2, batch_size=16, lr=3e-3, warmup_epochs=0.5, label_smoothing=0.1)


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)


def _model():
    torch.manual_seed(0)
    return ViT(ViTConfig(patch_size=7, dim=32, depth=2, heads=2))


def _train_in_a_process(out_dir):
    torch.set_num_threads(1)
    model = _model()
    x, y = _data()
    hist = fit(model, (x, y), (x, y), CFG, progress=False, device="cpu")
    from ingur_lib.distributed import engine
    e = engine()
    torch.save({"rank": e.rank, "world": e.world, "local_batch": len(e.shard(torch.arange(CFG.batch_size)))},
               os.path.join(out_dir, f"rank{e.rank}.pt"))
    if e.is_main:  # only the main process writes results
        torch.save({"state": model.state_dict(), "test_acc": hist.last("test_acc"),
                    "train_loss": hist.epochs[-1]["train_loss"]}, os.path.join(out_dir, "ddp.pt"))


def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    pytest.importorskip("accelerate")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, os.path.join(here, "_ddp_run.py"), str(tmp_path)], cwd=here, check=True,
                   timeout=240, env={**os.environ, "PYTHONPATH": here})
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [(r["rank"], r["world"], r["local_batch"]) for r in ranks] == [(0, 2, 8), (1, 2, 8)]
    model = _model()
    x, y = _data()
    hist = fit(model, (x, y), (x, y), CFG, progress=False, device="cpu")
    for name, p in model.state_dict().items():
        torch.testing.assert_close(ddp["state"][name], p, atol=2e-5, rtol=1e-4, msg=name)
    assert ddp["test_acc"] == pytest.approx(hist.last("test_acc"))  # gathered over both processes
    assert ddp["train_loss"] == pytest.approx(hist.epochs[-1]["train_loss"], rel=1e-4)


def test_gradient_accumulation_equals_the_whole_batch():
    x, y = _data()
    whole, accum = _model(), _model()
    fit(whole, (x, y), None, CFG, progress=False, device="cpu")
    fit(accum, (x, y), None, TrainConfig(**{**CFG.to_dict(), "grad_accum": 4}), progress=False, device="cpu")
    for (name, a), b in zip(whole.state_dict().items(), accum.state_dict().values()):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4, msg=name)
