"""The training loop data-parallel: 2 CPU processes started as a user starts them (`torchrun`, `accelerate
launch`, over gloo) equal 1 process on the same global batch, also when the last global batch is shorter
than the number of processes; a launch that would start one process stops with one sentence; gradient
accumulation equals the whole batch at once."""
import os
import subprocess
import sys

import socket

import pytest
import torch

from ingur_lib.models.vit import ViT, ViTConfig
from ingur_lib.train import TrainConfig, fit

CFG = TrainConfig(epochs=2, batch_size=16, lr=3e-3, warmup_epochs=0.5, label_smoothing=0.1)


def _data():
    g = torch.Generator().manual_seed(0)
    # 65 samples in batches of 16: the last global batch holds one sample, so rank 1's slice of it is empty
    return torch.randn(65, 1, 28, 28, generator=g), torch.randint(0, 10, (65,), generator=g)


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
        torch.save({"state": model.state_dict(), "test_acc": hist.last("test_acc"), "steps": hist.steps,
                    "train_loss": hist.epochs[-1]["train_loss"], "launch": e.describe()},
                   os.path.join(out_dir, "ddp.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    """A console script of this interpreter's environment (torchrun, accelerate)."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        pytest.skip(f"{name} is not installed beside {sys.executable}")
    return path


def _launch(argv, tmp_path, check=True):
    """Run a launcher as a user would, from the tests folder, without any `accelerate config` of theirs."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.path.dirname(here)]), "OMP_NUM_THREADS": "1",
           "HF_HOME": str(tmp_path / "hf"), "TQDM_DISABLE": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_CPU"):
        env.pop(key, None)
    return subprocess.run(argv, cwd=here, check=check, timeout=300, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def one_process():
    model = _model()
    x, y = _data()
    hist = fit(model, (x, y), (x, y), CFG, progress=False, device="cpu")
    return model.state_dict(), hist


LAUNCHERS = {
    "torchrun": lambda port: [_bin("torchrun"), "--nproc_per_node", "2", "--master_port", str(port)],
    "accelerate": lambda port: [_bin("accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
                                "--main_process_port", str(port)],
}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_launched_processes_equal_one_process_with_the_same_global_batch(launcher, tmp_path, one_process):
    pytest.importorskip("accelerate")
    out = tmp_path / "out"
    out.mkdir()
    run = _launch([*LAUNCHERS[launcher](_free_port()), "_ddp_run.py", str(out)], tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = torch.load(out / "ddp.pt", weights_only=True)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [(r["rank"], r["world"], r["local_batch"]) for r in ranks] == [(0, 2, 8), (1, 2, 8)]
    assert ddp["launch"] == {"processes": 2, "machines": 1, "devices": "2 x cpu per machine", "precision": "no"}
    state, hist = one_process
    for name, p in state.items():
        torch.testing.assert_close(ddp["state"][name], p, atol=2e-5, rtol=1e-4, msg=name)
    assert ddp["test_acc"] == pytest.approx(hist.last("test_acc"))  # gathered over both processes
    assert ddp["train_loss"] == pytest.approx(hist.epochs[-1]["train_loss"], rel=1e-4)
    # every step logs the loss of the whole global batch, not the main process's half of it
    assert ddp["steps"] == pytest.approx(hist.steps, rel=1e-4)


def test_a_launch_that_starts_one_process_of_several_stops_with_one_sentence(tmp_path):
    pytest.importorskip("accelerate")
    run = _launch([_bin("accelerate"), "launch", "--cpu", "--num_processes", "2", "--main_process_port",
                   str(_free_port()), "-m", "ingur_lib", "reproduce", "00_getting_started", "--profile", "smoke"],
                  tmp_path, check=False)
    assert run.returncode != 0
    # our one sentence, before any data is loaded (what follows it is Accelerate's report of the exit code)
    assert "error: `accelerate launch` started one process although several were asked for" in run.stderr
    assert "Fashion-MNIST" not in run.stdout


class _Disagreeing:
    """Two processes' answers, as `Engine.gather` would return them."""
    world = 2

    def __init__(self, seen):
        self.seen = seen

    def gather(self, value):
        return self.seen


def test_processes_that_resume_from_different_epochs_stop_with_one_sentence():
    from ingur_lib.distributed import Engine
    from ingur_lib.errors import IngurError
    Engine.agree(_Disagreeing([3, 3]), 3, "the epoch")  # agreeing: nothing to say
    with pytest.raises(IngurError, match=r"rank 0: 3, rank 1: 0.*shares"):
        Engine.agree(_Disagreeing([3, 0]), 3, "the epoch")


def test_gradient_accumulation_equals_the_whole_batch():
    x, y = _data()
    whole, accum = _model(), _model()
    fit(whole, (x, y), None, CFG, progress=False, device="cpu")
    fit(accum, (x, y), None, TrainConfig(**{**CFG.to_dict(), "grad_accum": 4}), progress=False, device="cpu")
    for (name, a), b in zip(whole.state_dict().items(), accum.state_dict().values()):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4, msg=name)


def test_precision_honours_the_users_setting_and_picks_what_the_card_runs_natively(monkeypatch):
    from ingur_lib import distributed as D
    from ingur_lib.errors import IngurError
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    for var in ("INGUR_PRECISION", "ACCELERATE_MIXED_PRECISION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(D, "_native_bf16", lambda device: True)
    assert (D.precision(cuda), D.precision(cpu)) == ("bf16", "no")
    monkeypatch.setattr(D, "_native_bf16", lambda device: False)  # a T4: bf16 only emulated
    assert D.precision(cuda) == "fp16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # `accelerate config` said no
    assert D.precision(cuda) == "no"
    monkeypatch.setenv("INGUR_PRECISION", "bf16")
    assert (D.precision(cuda), D.precision(cpu)) == ("bf16", "bf16")
    monkeypatch.setenv("INGUR_PRECISION", "fp8")
    with pytest.raises(IngurError, match="use one of no, fp16, bf16"):
        D.precision(cuda)
