"""The training loop: it learns, it is repeatable, and a resumed run equals an uninterrupted one."""
import math

import pytest
import torch

from ingur_lib.models.vit import ViT, ViTConfig
from ingur_lib.train import TrainConfig, evaluate, fit, warmup_cosine


def toy_data(n=512, seed=0):
    """Two classes a ViT can tell apart: a bright square top-left vs bottom-right, plus noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    y = torch.arange(n) % 2
    x[y == 0, :, :4, :4] += 1.0
    x[y == 1, :, 4:, 4:] += 1.0
    return x, y


def model():
    torch.manual_seed(0)
    return ViT(ViTConfig(image_size=8, patch_size=4, num_classes=2, dim=16, depth=2, heads=2))


CFG = TrainConfig(epochs=3, batch_size=64, lr=3e-3, warmup_epochs=0.5, seed=1)


def test_loss_falls_and_learns_toy_problem():
    x, y = toy_data()
    m = model()
    before = evaluate(m, (x, y))["loss"]
    h = fit(m, (x, y), (x, y), TrainConfig(**{**CFG.to_dict(), "epochs": 6}), progress=False)
    assert h.epochs[-1]["test_loss"] < before * 0.75     # label smoothing keeps the loss above ~0.2
    assert h.last("test_acc") > 0.95
    assert len(h.steps) == 6 * 8 and h.epochs[-1]["step"] == 48


def test_same_seed_same_numbers():
    x, y = toy_data()
    h1 = fit(m1 := model(), (x, y), None, CFG, progress=False)
    h2 = fit(m2 := model(), (x, y), None, CFG, progress=False)
    assert h1.steps == h2.steps
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)


def test_fused_optimizer_makes_the_same_updates():
    x, y = toy_data()
    h1 = fit(m1 := model(), (x, y), None, CFG, progress=False)
    h2 = fit(m2 := model(), (x, y), None, TrainConfig(**{**CFG.to_dict(), "fused": True}), progress=False)
    assert h1.steps == pytest.approx(h2.steps, rel=1e-4)
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compiled_steps_make_the_same_updates():
    # 480 images in batches of 64: seven compiled full batches and an odd last one of 32, run eagerly
    x, y = toy_data(480)
    h1 = fit(m1 := model(), (x, y), None, CFG, progress=False)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()  # count this fit's graphs only
    h2 = fit(m2 := model(), (x, y), None, TrainConfig(**{**CFG.to_dict(), "compile": True}), progress=False)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # it did compile
    assert len(h2.steps) == 3 * 8
    assert h1.steps == pytest.approx(h2.steps, rel=1e-4)
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_failing_compiler_falls_back_to_eager_and_says_so(monkeypatch, capsys):
    def broken(net, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler found\nlong traceback")
        return call
    monkeypatch.setattr(torch, "compile", broken)
    x, y = toy_data()
    h1 = fit(model(), (x, y), None, CFG, progress=False)
    h2 = fit(model(), (x, y), None, TrainConfig(**{**CFG.to_dict(), "compile": True}), progress=False, desc="toy")
    assert h1.steps == h2.steps
    out = capsys.readouterr().out
    assert out.count("torch.compile failed") == 1
    assert "toy: torch.compile failed (RuntimeError: no C++ compiler found); training eagerly" in out


def test_resume_equals_uninterrupted(tmp_path):
    x, y = toy_data()
    full = model()
    h_full = fit(full, (x, y), (x, y), CFG, progress=False)
    ckpt = tmp_path / "run.pt"
    part = model()
    fit(part, (x, y), (x, y), CFG, checkpoint=ckpt, stop_after_epoch=1, progress=False)
    assert ckpt.exists()
    resumed = model()                       # a fresh process would start from a fresh model
    h_res = fit(resumed, (x, y), (x, y), CFG, checkpoint=ckpt, progress=False)
    assert h_res.steps == h_full.steps
    for a, b in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoint_of_another_config_is_ignored(tmp_path):
    x, y = toy_data()
    ckpt = tmp_path / "run.pt"
    fit(model(), (x, y), None, CFG, checkpoint=ckpt, stop_after_epoch=1, progress=False)
    other = TrainConfig(**{**CFG.to_dict(), "lr": 1e-3})
    h = fit(model(), (x, y), None, other, checkpoint=ckpt, progress=False)
    assert len(h.epochs) == 3  # started from scratch, not from the other run's epoch 1


def test_corrupt_checkpoint_warns_and_restarts(tmp_path):
    x, y = toy_data()
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable"):
        h = fit(model(), (x, y), None, CFG, checkpoint=ckpt, progress=False)
    assert len(h.epochs) == 3


def test_warmup_cosine_schedule():
    lrs = [warmup_cosine(s, 100, 10, 1.0, 0.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[55] == pytest.approx(0.5, abs=0.02)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert math.isclose(warmup_cosine(100, 100, 10, 1.0, 0.01), 0.01)


def test_extra_loss_is_added():
    x, y = toy_data(128)
    calls = []

    def extra(m):
        calls.append(1)
        return 0.0 * sum(p.sum() for p in m.parameters())
    fit(model(), (x, y), None, TrainConfig(epochs=1, batch_size=64), extra_loss=extra, progress=False)
    assert len(calls) == 2


def test_models_name_the_parameters_adamw_must_not_decay():
    """fit asks the model (`no_weight_decay()`) instead of matching names; biases and norm gains always skip."""
    from ingur_lib.models import lm
    from ingur_lib.models.deit import DistilledViT
    from ingur_lib.models.vit import ViT, ViTConfig
    from ingur_lib.train import no_decay_names
    vit = no_decay_names(ViT(ViTConfig(depth=1)))
    assert {"cls_token", "pos_embed", "head.bias", "norm.weight"} <= vit and "head.weight" not in vit
    assert "dist_token" in no_decay_names(DistilledViT(ViTConfig(depth=1)))
    assert "token_embed.weight" in no_decay_names(lm.build(lm.LMConfig(vocab=11, depth=1)))
    assert not any(n.endswith("qkv.weight") for n in vit)
