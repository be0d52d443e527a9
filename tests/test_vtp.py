"""VTP [8]: gates, global ranking, physical slimming (ingur_lib.nn.prune) and the chapter's exercises."""
import copy
from dataclasses import replace

import pytest
import torch

from ingur_lib.errors import IngurError
from ingur_lib.measure import count_flops, count_params
from ingur_lib.models.vit import ViT, ViTConfig
from ingur_lib.chapters import vtp as ch
from ingur_lib.nn import prune


def _gated(seed=0, random_scores=True, **kw):
    torch.manual_seed(seed)
    cfg = dict(patch_size=7, dim=32, depth=3, heads=4, mlp_ratio=2.0)
    cfg.update(kw)
    m = prune.add_gates(ViT(ViTConfig(**cfg))).eval()
    if random_scores:
        with torch.no_grad():
            for g in prune.gates(m).values():
                g.set_score(torch.randn_like(g.score))  # signed: ranking must use |a|
    return m


def test_gates_start_at_one_and_leave_the_vit_unchanged():
    torch.manual_seed(0)
    plain = ViT(ViTConfig(patch_size=7, dim=32, depth=2, heads=4)).eval()
    x = torch.randn(3, 1, 28, 28)
    ref = plain(x)
    gated = prune.add_gates(copy.deepcopy(plain))
    assert all(torch.equal(g.score, torch.ones_like(g.score)) for g in prune.gates(gated).values())
    torch.testing.assert_close(gated(x), ref)
    assert list(prune.gates(gated)) == ["block0.attn", "block0.mlp", "block1.attn", "block1.mlp"]


def test_gate_is_x_diag_a():
    g = prune.DimGate(5, gain=10.0)
    torch.testing.assert_close(g.score, torch.ones(5))  # a = gain * raw starts at 1 whatever the gain
    g.set_score(torch.arange(5.0))
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(g(x), x @ torch.diag(torch.arange(5.0)))


def test_l1_penalty_is_lambda_times_sum_abs():
    m = _gated()
    want = 0.01 * sum(g.score.abs().sum() for g in prune.gates(m).values())
    torch.testing.assert_close(prune.l1_penalty(0.01)(m), want)


@pytest.mark.parametrize("ratio", [0.0, 0.2, 0.4, 0.6, 0.9])
def test_global_masks_keep_exact_count_of_largest(ratio):
    s = prune.scores(_gated())
    masks = prune.global_masks(s, ratio)
    total = sum(v.numel() for v in s.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == total - round(ratio * total)
    if ratio <= 0.6:  # no gate emptied: the kept ones are exactly the globally largest
        flat = torch.cat(list(s.values()))
        keep = torch.cat(list(masks.values()))
        assert flat[keep].min() >= flat[~keep].max() if (~keep).any() else True


def test_every_gate_keeps_at_least_one_dimension():
    s = {"a": torch.full((4,), 0.01), "b": torch.linspace(1, 2, 20)}
    masks = prune.global_masks(s, 0.5)
    assert int(masks["a"].sum()) == 1 and sum(int(m.sum()) for m in masks.values()) == 12


def test_bad_ratio_is_a_clear_error():
    with pytest.raises(IngurError, match="outside"):
        prune.global_masks({"a": torch.ones(3)}, 1.0)


@pytest.mark.parametrize("ratio", [0.2, 0.4, 0.6])
def test_slim_model_equals_masked_model_and_is_smaller(ratio):
    m = _gated(seed=1)
    masks = prune.global_masks(prune.scores(m), ratio)
    slim = prune.slim(m, masks)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(slim(x), prune.zero_pruned(m, masks)(x), atol=1e-5, rtol=1e-4)
    # physically smaller: Linear shapes match the kept counts, no gates left
    for blk, w in zip(slim.blocks, prune.layer_widths(slim)):
        assert isinstance(blk.attn.qkv, torch.nn.Linear) and blk.attn.qkv.weight.shape[1] == w["attn"]
        assert blk.mlp.fc1.weight.shape[0] == blk.mlp.fc2.weight.shape[1] == w["mlp"]
        assert blk.norm1.weight.shape[0] == w["attn"]
    kept = sum(w["attn"] + w["mlp"] for w in prune.layer_widths(slim))
    total = sum(v.numel() for v in masks.values())
    assert kept == total - round(ratio * total)
    assert count_params(slim) < count_params(m)
    assert count_flops(slim, x[:1]) < count_flops(prune.slim(m, prune.global_masks(prune.scores(m), 0.0)), x[:1])


def test_slim_at_zero_ratio_is_a_plain_vit_with_folded_scores():
    m = _gated(seed=2)
    slim = prune.slim(m, prune.global_masks(prune.scores(m), 0.0))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(slim(x), m(x), atol=1e-5, rtol=1e-4)
    assert isinstance(slim.blocks[0].norm1, torch.nn.LayerNorm)
    assert count_params(slim) == count_params(m) - sum(g.raw.numel() for g in prune.gates(m).values())


def test_slim_linear_reference():
    lin = torch.nn.Linear(6, 5)
    ki, ko = torch.tensor([0, 2, 5]), torch.tensor([1, 4])
    new = prune.slim_linear(lin, ki, ko)
    x = torch.randn(3, 6)
    masked = torch.zeros_like(x)
    masked[:, ki] = x[:, ki]
    torch.testing.assert_close(new(x[:, ki]), lin(masked)[:, ko])


def test_add_gates_twice_is_an_error():
    with pytest.raises(IngurError, match="already"):
        prune.add_gates(_gated())


def test_exercise_reference_solutions_pass():
    from ingur_lib.chapters import vtp
    from ingur_lib.exercises import CHECKS, check
    CHECKS["vtp.threshold"](vtp.layer_masks)     # the chapter's reference (check() rejects library code)
    CHECKS["vtp.prune_mlp"](vtp.prune_mlp)      # the slim MLP the chapter folds its scores into
    with pytest.raises(AssertionError):
        check("vtp.threshold", lambda s, r: {k: v > v.median() for k, v in s.items()})


def test_reported_claims_load():
    from ingur_lib import ledger
    rep = ledger.load_reported("vtp")
    ids = {c["id"] for c in rep["claims"]}
    assert {"drop_20", "drop_40", "params_20", "params_40", "flops_20", "flops_40"} <= ids


def _row(ratio, before, after=None, params=100, flops=1000, ms=10.0):
    r = {"ratio": ratio, "acc_before": before, "params": params, "flops": flops, "latency_ms": ms}
    return {**r, "acc_after": after} if after is not None else r


def test_drop_is_measured_against_the_finetuned_control():
    """drop_p = fine-tuned slim L1 model minus the unpruned lambda = 0 control fine-tuned as long."""
    rows = [_row(0.0, 0.80, 0.81), _row(0.2, 0.80, 0.79, params=80, flops=750, ms=8.0)]
    control = [_row(0.0, 0.84, 0.85), _row(0.2, 0.70)]
    run = ch.Run(None, None, None, rows, control, {}, None, None, 0.0, 1e-3)
    m = ch.seed_metrics(run)
    assert abs(m["drop_20"] - (79 - 85)) < 1e-9 and abs(m["drop_00"] - (81 - 85)) < 1e-9
    assert m["reference_acc"] == 85 and m["control_acc_before_20"] == 70
    assert m["flops_change_20"] == -25 and m["speedup_20"] == 10 / 8
    no_control = ch.seed_metrics(ch.Run(None, None, None, rows, [], {}, None, None, 0.0, 1e-3))
    assert abs(no_control["drop_20"] - (79 - 81)) < 1e-9  # without a control: the unpruned L1 model


def test_config_rejects_finetuning_an_unpruned_ratio():
    base = ch.config("smoke")
    with pytest.raises(IngurError):
        replace(base, finetune_ratios=(0.0, 0.5))
    with pytest.raises(IngurError):
        replace(base, lrs=(-1e-3,))


def test_convergence_is_judged_by_the_ledgers_rule_against_the_smallest_resolved_drop():
    from ingur_lib import ledger
    from ingur_lib.chapters import vtp
    metrics = {"drop_20": ledger.summarize([-1.0, -1.2, -0.8]), "drop_40": ledger.summarize([-3.0, -3.3, -2.7]),
               "drop_60": ledger.summarize([0.5, -0.6, 0.2]), "acc_before_20": ledger.summarize([80, 81, 79])}
    out = vtp.judge_convergence({"change": 0.9}, metrics)
    assert out["smallest_effect"] == pytest.approx(1.0) and out["converged"] is True
    assert vtp.judge_convergence({"change": -1.1}, metrics)["converged"] is False
    null = {"drop_60": metrics["drop_60"]}       # nothing resolved: the ledger's default tolerance decides
    assert vtp.judge_convergence({"change": 0.2}, null)["smallest_effect"] == ledger.DEFAULT_TOLERANCE


def test_the_recorded_drop_splits_into_the_penalty_price_and_the_cut_paired_per_seed():
    from ingur_lib import ledger
    from ingur_lib.chapters import vtp
    m = {"drop_00": ledger.summarize([-1.0, -2.0, -3.0]), "drop_40": ledger.summarize([-1.5, -2.5, -3.5]),
         "speedup_00": ledger.summarize([1.0] * 3), "speedup_40": ledger.summarize([0.9, 1.0, 0.95]),
         "flops_change_40": ledger.summarize([-28.0] * 3)}
    assert "-0.50 ± 0.00 (loss) at 40%" in vtp._split(m)          # the cut's own cost, not the spread of the drops
    assert "-2.00 ± 0.58" in vtp._split(m)                  # the penalty's price: drop at 0%
    assert "0.95x at 40% (FLOPs -28%)" in vtp._latency(m) and "no faster" in vtp._latency(m)
