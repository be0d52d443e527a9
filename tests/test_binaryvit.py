"""Chapter 08, BinaryViT: binary quantisers vs hand-written references, packing, XNOR-popcount, the model's
switches, OPs counting, exercise checks, and a smoke training well above chance."""
from dataclasses import replace

import pytest
import torch

from ingur_lib import exercises, ledger
from ingur_lib.chapters import binaryvit as ch
from ingur_lib.errors import IngurError
from ingur_lib.experiment import longer_check
from ingur_lib.models.binaryvit import BinaryViT, BinaryViTConfig, count_ops
from ingur_lib.nn.binary import (BinaryLinear, RPReLU, binarize_attention, binary_weight, bireal_sign, pack_bits,
                                 unpack_bits, xnor_dot)


def test_binary_weight_values_and_gradient():
    torch.manual_seed(0)
    w = (torch.randn(4, 6) * 0.5 + torch.tensor([[-1.0], [0.0], [0.5], [2.0]])).requires_grad_()
    alpha = w.detach().abs().mean(1, keepdim=True)
    centred = w.detach() - w.detach().mean(1, keepdim=True)
    torch.testing.assert_close(binary_weight(w), alpha * torch.sign(centred))
    binary_weight(w).sum().backward()
    # STE through clamp(W - mean): d/dW of sum(clamp(centred)) is (inside - mean(inside)) per row
    inside = (centred.abs() <= 1).float()
    torch.testing.assert_close(w.grad, inside - inside.mean(1, keepdim=True))


def test_bireal_sign_gradient_is_piecewise_linear():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0], requires_grad=True)
    y = bireal_sign(x)
    assert y.tolist() == [-1, -1, -1, 0, 1, 1, 1]
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0.0, 1.0, 2.0, 1.5, 0.0, 0.0]))


def test_attention_bits_are_zero_or_alpha_and_alpha_learns():
    p = torch.tensor([0.0, 0.04, 0.06, 0.5, 1.0], requires_grad=True)
    alpha = torch.tensor(0.1, requires_grad=True)
    out = binarize_attention(p, alpha)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.0, 0.1, 0.1, 0.1]))
    out.sum().backward()
    torch.testing.assert_close(p.grad, torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]))
    # (round(q) - q) inside plus 1 per clipped element: 0 - 0.4 + 0.4 + 1 + 1
    torch.testing.assert_close(alpha.grad, torch.tensor(2.0))


def test_rprelu_reference():
    m = RPReLU(3)
    with torch.no_grad():
        m.gamma.copy_(torch.tensor([0.0, 1.0, -1.0]))
        m.zeta.copy_(torch.tensor([0.5, 0.0, 0.0]))
    x = torch.tensor([[-1.0, 0.0, 0.0]])
    torch.testing.assert_close(m(x), torch.tensor([[-0.25 + 0.5, -0.25, 1.0]]))


def test_rprelu_gradients_equal_the_reference_formula():
    """RPReLU's hand-written backward gives autograd's gradients of PReLU(x - gamma) + zeta, for every input."""
    torch.manual_seed(0)
    m = RPReLU(5)
    with torch.no_grad():
        for p in (m.gamma, m.zeta, m.slope):
            p.copy_(torch.randn(5))
    x, g = torch.randn(3, 4, 5, requires_grad=True), torch.randn(3, 4, 5)
    torch.autograd.backward(m(x), g)
    got = [t.grad.clone() for t in (x, m.gamma, m.zeta, m.slope)]
    ref = [t.detach().clone().requires_grad_() for t in (x, m.gamma, m.zeta, m.slope)]
    y = ref[0] - ref[1]
    torch.autograd.backward(torch.where(y >= 0, y, ref[3] * y) + ref[2], g)
    torch.testing.assert_close(m(x), torch.where(y >= 0, y, ref[3] * y) + ref[2])
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b.grad)


@pytest.mark.parametrize("k", [1, 8, 13, 100])
def test_pack_unpack_and_xnor_equal_the_float_product(k):
    torch.manual_seed(k)
    a, w = torch.randn(5, k), torch.randn(7, k)
    pa, pw = pack_bits(a), pack_bits(w)
    assert pa.dtype == torch.uint8 and pa.shape == (5, -(-k // 8))
    torch.testing.assert_close(unpack_bits(pa, k), torch.where(a >= 0, 1.0, -1.0))
    want = torch.where(a >= 0, 1.0, -1.0) @ torch.where(w >= 0, 1.0, -1.0).T
    assert torch.equal(xnor_dot(pa, pw, k), want.int())


def test_binary_linear_xnor_path_equals_forward_and_size():
    torch.manual_seed(0)
    layer = BinaryLinear(20, 6)
    x = torch.randn(3, 4, 20)
    torch.testing.assert_close(layer.forward_xnor(x), layer(x), atol=1e-5, rtol=1e-5)
    assert layer.packed_weight_bytes() == 6 * (3 + 4)  # 20 bits -> 3 bytes per row, plus a float alpha
    with pytest.raises(IngurError, match="pack both"):
        xnor_dot(pack_bits(x[0]), pack_bits(torch.randn(6, 9)), 20)


def test_model_switches_shapes_and_errors():
    x = torch.randn(2, 1, 28, 28)
    for name in (ch.TEACHER, *ch.RUNGS, *ch.COMPONENTS):
        cfg = ch.model_config(ch.config("smoke"), name, _FakeData())
        assert BinaryViT(cfg)(x).shape == (2, 10), name
    with pytest.raises(IngurError, match="pool='mean'"):
        BinaryViTConfig(multi_pool=True)
    with pytest.raises(IngurError, match="divisible"):
        BinaryViTConfig(patch_size=5)


def test_ops_count_binary_and_float_parts():
    cfg = BinaryViTConfig(dims=(16,), depths=(1,), heads=2, mlp_ratio=2.0)
    c = count_ops(BinaryViT(cfg), torch.zeros(1, 1, 28, 28))
    n = 49 + 1
    linears = n * (16 * 48 + 16 * 16 + 16 * 32 + 32 * 16)
    assert c["bops"] == linears + 2 * n * n * 16
    fp = count_ops(BinaryViT(BinaryViTConfig(dims=(16,), depths=(1,), heads=2, binary=False)),
                   torch.zeros(1, 1, 28, 28))
    assert fp["bops"] == 0 and fp["flops"] > c["flops"] + linears - 1
    assert c["ops"] == pytest.approx(c["bops"] / 64 + c["flops"])


def test_exercise_checks_reject_the_library_and_accept_solutions():
    with pytest.raises(AssertionError):
        exercises.check("binaryvit.tensor_scaled_binary_weight", binary_weight)
    with pytest.raises(AssertionError, match="library"):
        exercises.check("binaryvit.tensor_scaled_binary_weight", ch.tensor_scaled_binary_weight)
    exercises.check("binaryvit.tensor_scaled_binary_weight",
                    lambda w: w.abs().mean() * torch.sign(w - w.mean(dim=1, keepdim=True)))
    with pytest.raises(AssertionError, match="library"):
        exercises.check("binaryvit.ste_sign", bireal_sign)

    def ste_sign(x):  # a student's: the cubic-free form of ApproxSign, 2c - c|c| on c = clamp(x)
        c = x.clamp(-1, 1)
        approx = 2 * c - c * c.abs()
        return torch.sign(x).detach() - approx.detach() + approx
    exercises.check("binaryvit.ste_sign", ste_sign)
    with pytest.raises(AssertionError):
        exercises.check("binaryvit.masked_dot", xnor_dot)
    with pytest.raises(AssertionError, match="library"):
        exercises.check("binaryvit.masked_dot", lambda a, w, k: ch.masked_dot(a, w))

    def masked_dot(a, w, k):  # a student's: a popcount table of its own
        pop = torch.tensor([bin(i).count("1") for i in range(256)])
        return 2 * pop[(a[:, None, :] & w[None, :, :]).long()].sum(-1) - pop[a.long()].sum(-1)[:, None]
    exercises.check("binaryvit.masked_dot", masked_dot)


class _FakeData:
    image_shape, num_classes = (1, 28, 28), 10


def test_smoke_training_beats_chance():
    cfg = ch.config("smoke")
    data = ch.load_data(cfg)
    runs = ch.run("smoke", data=data, names=("+affine",), progress=False)
    assert runs[ch.TEACHER].test_acc > 0.5
    assert runs["+affine"].test_acc > 0.3  # chance is 0.1


def test_pooling_matrices_equal_avg_pool():
    import torch.nn.functional as F

    from ingur_lib.models.binaryvit import POOLS, pooling_matrices
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 3)  # (B, C, H, W)
    mats = pooling_matrices((4, 3))
    tokens = x.flatten(2).transpose(1, 2)
    for mat, k in zip(mats, POOLS):
        want = F.avg_pool2d(x, k, 1, (k[0] // 2, k[1] // 2), count_include_pad=False).flatten(2).transpose(1, 2)
        torch.testing.assert_close(mat @ tokens, want)


def test_ops_count_multi_pool_as_pooling_adds():
    base = dict(dims=(16,), depths=(1,), heads=2, pool="mean")
    x = torch.zeros(1, 1, 28, 28)
    plain = count_ops(BinaryViT(BinaryViTConfig(**base)), x)
    pools = count_ops(BinaryViT(BinaryViTConfig(**base, multi_pool=True)), x)
    assert pools["bops"] == plain["bops"]
    assert pools["flops"] - plain["flops"] == 49 * 16 * (3 + 3 + 5 + 5)


def test_convergence_is_judged_against_the_smallest_resolved_gain():
    conv = {"a": longer_check([80.0, 81.0], [80.35, 81.35], [0, 1], 1.5),
            "b": longer_check([80.0, 81.0], [79.0, 80.0], [0, 1], 1.5)}
    gains = {"x": ledger.summarize([5.0, 5.2, 4.8]), "y": ledger.summarize([-0.4, -0.5, -0.3]),
             "null": ledger.summarize([0.1, -0.2, 0.15])}       # the null decides nothing
    ch._judge_convergence(conv, gains)                           # a moves +0.35 on both seeds, b -1.0
    assert {k: conv["a"][k] for k in ("smallest_effect", "converged", "noisy")} == {
        "smallest_effect": pytest.approx(0.4), "converged": True, "noisy": False}
    assert conv["b"]["converged"] is False
    ch._judge_convergence(conv, {"null": gains["null"]})   # none resolved: the ledger's default tolerance
    assert conv["a"]["smallest_effect"] == ledger.DEFAULT_TOLERANCE and conv["a"]["converged"] is False


def test_gains_are_effects_whose_95_percent_interval_excludes_zero_else_nulls():
    assert ch._gain_markdown("+x", ledger.summarize([1.0, 1.1, 0.9])) == (
        "+x +1.0 ± 0.1, 95% interval [+0.8, +1.2] (a gain)")
    assert "(a loss)" in ch._gain_markdown("+x", ledger.summarize([-1.0, -1.1, -0.9]))
    # mean 1/6, s.e. 0.6: a null, with its interval
    assert "95% interval [-2.4, +2.8] (a null)" in ch._gain_markdown("+x", ledger.summarize([1.0, -1.0, 0.5]))
    # +0.5 ± 0.17 over 3 seeds clears 2 s.e. but not the 95% interval: a null (one rule everywhere)
    assert "(a null)" in ch._gain_markdown("+x", ledger.summarize([0.2, 0.5, 0.8]))


def test_teacher_takes_its_own_learning_rate():
    cfg = ch.Config(ch._TINY, ch._PYRAMID, steps=10, teacher_steps=10, lr=2e-3, teacher_lr=1e-3)
    assert cfg.train_config(10, 0, teacher=True).lr == 1e-3
    assert cfg.train_config(10, 0).lr == 2e-3
    assert ch.Config(ch._TINY, ch._PYRAMID, steps=10, teacher_steps=10).train_config(10, 0, True).lr == 2e-3


def test_components_line_gives_each_gap_to_the_teacher_or_nothing_without_components():
    acc = {"FP teacher": [80.0, 81.0], "MLP only binary": [77.0, 79.0], "attention only binary": [75.0, 76.0],
           "+pyramid": [70.0, 71.0]}
    line = ch._components_markdown(acc, "+pyramid")
    assert "MLP only binary -2.5 ± 0.5" in line and "attention only binary -5.0 ± 0.0" in line
    assert "+pyramid -10.0 ± 0.0 (both binary)" in line
    assert ch._components_markdown({"FP teacher": [1.0], "+pyramid": [1.0]}, "+pyramid") == ""


def test_takeaways_say_above_when_the_last_rung_beats_its_teacher():
    import json
    from ingur_lib.paths import results_dir
    r = json.loads((results_dir() / "08_binaryvit" / "standard.json").read_text())
    last = [k for k in ch.RUNGS if k in r["accuracy"]][-1]
    r["accuracy"][last] = [a + 50.0 for a in r["accuracy"]["FP teacher"]]
    assert "ends 50.0 points above its full-precision teacher" in ch.takeaways_markdown(r)
    r["accuracy"][last] = [a - 2.0 for a in r["accuracy"]["FP teacher"]]
    assert "stays 2.0 points below its full-precision teacher" in ch.takeaways_markdown(r)


def test_rate_check_says_whether_the_best_rate_is_bracketed():
    inside = ch._lr_markdown("x", {"0.008": [77.2], "0.004": [75.0], "0.016": [76.5]})
    assert inside == "x (1 seed): lr 0.004 75.0, lr 0.008 77.2, lr 0.016 76.5 (best 0.008, inside the range)"
    assert "best 0.016, at an edge: not bracketed" in ch._lr_markdown("x", {"0.008": [75.6], "0.004": [73.5],
                                                                              "0.016": [77.0]})


def test_rate_check_over_seeds_picks_the_best_seed_mean():
    # seed 0 alone would pick 0.004 (an edge); the seed means put the best inside
    accs = {"0.004": [79.0, 78.0, 78.2], "0.008": [77.9, 79.8, 79.9], "0.016": [77.3, 77.0, 77.5]}
    line = ch._lr_markdown("x", accs)
    assert line.startswith("x (3 seeds): lr 0.004 78.4 ± 0.3, lr 0.008 79.2 ± 0.7")
    assert line.endswith("(best 0.008, inside the range)")
    assert line == ch._lr_markdown("x", accs, "0.008")  # the rate used is the best: nothing more to say


def test_rate_check_says_how_far_the_best_beats_the_rate_used():
    accs = {"0.008": [79.0, 78.0, 78.2], "0.016": [79.6, 78.5, 78.9], "0.032": [77.0, 76.0, 77.0]}
    # paired: +0.6, +0.5, +0.7 -> +0.60 ± 0.06, 95% interval [+0.35, +0.85]: resolved
    assert ch._lr_markdown("x", accs, "0.008", 0.5).endswith(
        "(best 0.016, inside the range; it beats the rate used, 0.008, by +0.60 ± 0.06, 95% interval "
        "[+0.35, +0.85] per seed: resolved and not less than the smallest effect (0.50), so the rate used is "
        "not tuned)")
    # resolved, but smaller than every effect the run compares: it could not change a verdict
    assert ch._lr_markdown("x", accs, "0.008", 0.9).endswith(
        "per seed: resolved, but less than the smallest effect (0.90))")
    accs["0.016"] = [80.0, 77.6, 78.9]  # +1.0, -0.4, +0.7: +0.43 ± 0.43
    assert ch._lr_markdown("x", accs, "0.008", 0.5).endswith("per seed: a null)")


def test_plan_and_assembly_accumulate_checks_per_seed_and_judge_the_seed_mean(monkeypatch):
    cfg = ch.Config(ch._TINY, ch._PYRAMID, steps=10, teacher_steps=20, seeds=(0, 1, 2), lr=1e-2,
                    convergence=True, converge={ch.TEACHER: 1, "binary DeiT": 3}, lr_check=(0.5, 2.0),
                    lr_checked={"binary DeiT": 2})
    jobs = ch._plan(cfg, cfg.seeds)
    checks = [(j.what, j.name, j.seed, j.steps, j.cfg.lr) for j in jobs if j.what != "main"]
    assert checks == [("1.5x", ch.TEACHER, 0, 30, 1e-2), ("1.5x", "binary DeiT", 0, 15, 1e-2),
                      ("0.005", "binary DeiT", 0, 10, 5e-3), ("0.02", "binary DeiT", 0, 10, 2e-2),
                      ("1.5x", "binary DeiT", 1, 15, 1e-2),
                      ("0.005", "binary DeiT", 1, 10, 5e-3), ("0.02", "binary DeiT", 1, 10, 2e-2),
                      ("1.5x", "binary DeiT", 2, 15, 1e-2)]
    assert [(j.name, j.seed) for j in jobs if j.what == "main"] == [(n, s) for s in (0, 1, 2)
                                                                     for n in (ch.TEACHER, *ch.RUNGS)]
    # the 1.5x runs: +1.0, -0.2, +0.1 points over seeds 0, 1, 2 for binary DeiT; the teacher +0.5 on seed 0
    longer = {(ch.TEACHER, 0): 80.5, ("binary DeiT", 0): 71.0, ("binary DeiT", 1): 69.8, ("binary DeiT", 2): 70.1}
    main = {ch.TEACHER: 80.0, "binary DeiT": 70.0}
    outs = [{"acc": {"main": main.get(j.name, 75.0), "1.5x": longer.get((j.name, j.seed))}.get(j.what, 60.0)}
            for j in jobs]
    monkeypatch.setattr(ch, "_as_run", lambda cfg, name, seed, out: (name, seed))
    acc, first, conv, lrs = ch._assemble(jobs, outs, cfg, 0)
    assert acc["binary DeiT"] == [70.0] * 3 and first["+GAP"] == ("+GAP", 0)
    assert conv[ch.TEACHER]["seeds"] == [0] and conv["binary DeiT"]["seeds"] == [0, 1, 2]
    assert conv["binary DeiT"]["change"]["mean"] == pytest.approx((1.0 - 0.2 + 0.1) / 3)
    assert conv[ch.TEACHER]["change"]["mean"] == pytest.approx(0.5) and conv[ch.TEACHER]["factor"] == 1.5
    assert not any("converged" in v for v in conv.values())   # numbers only: judged when a page is drawn
    assert lrs == {"binary DeiT": {"0.01": [70.0, 70.0], "0.005": [60.0, 60.0], "0.02": [60.0, 60.0]}}
    line = ch._convergence_markdown(conv)
    assert "binary DeiT 70.0 ± 0.0 -> 70.3 ± 0.4 at 1.5x the steps (+0.30 ± 0.36, 3 seeds)" in line
    assert "FP teacher 80.0 -> 80.5 at 1.5x the steps (+0.50, 1 seed)" in line


def test_a_convergence_check_noisier_than_the_smallest_effect_says_so():
    gains = {"+GAP": {"mean": 0.4, "std": 0.1, "n": 3}}                 # resolved: the smallest effect, 0.4
    conv = {"loud": {**longer_check([70.0] * 3, [71.2, 70.0, 68.9], [0, 1, 2], 1.5), "steps": 15},
            "quiet": {**longer_check([70.0] * 3, [70.1, 70.0, 70.0], [0, 1, 2], 1.5), "steps": 15}}
    ch._judge_convergence(conv, gains)                                     # both move 0.03-0.04 on average
    assert conv["loud"]["converged"] and conv["quiet"]["converged"]
    assert "a creep of its size is not excluded" in ch._convergence_markdown({"x": conv["loud"]})
    assert "not excluded" not in ch._convergence_markdown({"x": conv["quiet"]})


def test_runs_give_the_same_numbers_whichever_worker_runs_them():
    # each run seeds itself: 2 or 3 workers (other placements, other orders) give bit-identical models
    cfg = replace(ch.config("smoke"), steps=6, teacher_steps=6, n_train=256, n_test=128, batch_size=32,
                  convergence=True, converge={"binary DeiT": 1})
    two, three = (ch._train_all(replace(cfg, workers=w), (0,), False) for w in (2, 3))
    assert two[0] == three[0] and two[2] == three[2]
    assert set(two[1]) == {ch.TEACHER, *ch.RUNGS}
    for name, run in two[1].items():
        assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(),
                                                     three[1][name].model.state_dict().values()))


def test_convergence_models_are_named_and_checked():
    with pytest.raises(IngurError, match="names no model"):
        ch.Config(ch._TINY, ch._PYRAMID, steps=10, teacher_steps=10, converge={"+pyrmaid": 1})
    with pytest.raises(IngurError, match="lr_checked.*names no model"):
        ch.Config(ch._TINY, ch._PYRAMID, steps=10, teacher_steps=10, lr_checked={"teacher": 1})
    with pytest.raises(IngurError, match="more seeds than the 2"):
        ch.Config(ch._TINY, ch._PYRAMID, steps=10, teacher_steps=10, seeds=(0, 1), converge={"+GAP": 3})
    std = ch.config("standard")  # both baselines are checked, each on at least three of the (5+) seeds
    assert set(std.converge) == {ch.TEACHER, "binary DeiT"} and min(std.converge.values()) >= 3
    assert len(std.seeds) >= 5 and set(std.lr_checked) == {ch.TEACHER, "binary DeiT"}


def test_takeaways_say_when_the_unconverged_models_fall():
    import json
    from ingur_lib.paths import results_dir
    r = json.loads((results_dir() / "08_binaryvit" / "standard.json").read_text())
    r["convergence"] = {k: {**longer_check([80.0], [80.0 + d], [0], 1.5), "steps": 1}
                        for k, d in ((ch.TEACHER, -3.0), ("binary DeiT", 0.0))}
    assert "FP teacher (-3.00 points" in ch.takeaways_markdown(r)
    assert "Each falls rather than rises" in ch.takeaways_markdown(r)
    r["convergence"][ch.TEACHER].update(longer_check([80.0], [83.0], [0], 1.5))
    assert "Each falls" not in ch.takeaways_markdown(r)


def test_recorded_figures_draw():
    import json
    import matplotlib.pyplot as plt
    from ingur_lib.paths import results_dir
    r = json.loads((results_dir() / "08_binaryvit" / "standard.json").read_text())
    for draw in (ch.fig_ladder, ch.fig_ops, ch.fig_curves, ch.fig_attention):
        assert draw(r) is not None
    plt.close("all")


@pytest.mark.parametrize("switches", [dict(norm="batch"), dict(attn_alpha=0.005),
                                      dict(pool="mean", multi_pool=True, pool_pad=True, pool_at_output=True),
                                      dict(pool="mean", multi_pool=True, pool_at_output=True, dims=(8, 16),
                                           depths=(1, 1), norm="batch")])
def test_official_switches_build_and_run(switches):
    """The official code's choices (tests/test_official.py compares each with the official module) build a model
    that trains: finite logits and gradients."""
    cfg = BinaryViTConfig(**{**dict(dims=(16,), depths=(1,), heads=2), **switches})
    model = BinaryViT(cfg)
    out = model(torch.randn(4, 1, 28, 28))
    out.sum().backward()
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_official_switches_change_the_documented_pieces():
    """attn_alpha sets the initial alpha; norm='batch' puts BatchNorm in every norm; pool_pad counts padding."""
    from ingur_lib.models.binaryvit import TokenBatchNorm, pooling_matrices
    model = BinaryViT(BinaryViTConfig(dims=(16,), depths=(1,), heads=2, attn_alpha=0.005, norm="batch"))
    assert model.stages[0][0].attn.alpha.item() == pytest.approx(0.005)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    assert sum(isinstance(m, TokenBatchNorm) for m in model.modules()) == 3
    # a corner of a 4x4 grid under the 1x5 kernel: 3 real of 5 places
    assert pooling_matrices((4, 4), count_pad=True)[2].sum(1)[0].item() == pytest.approx(3 / 5)
    assert pooling_matrices((4, 4))[2].sum(1)[0].item() == pytest.approx(1.0)
    with pytest.raises(IngurError):
        BinaryViTConfig(norm="group")


def test_binaryvit_block_multi_pool_placement_as_official():
    """pool_at_output: the branch reads norm2 (after the attention residual) and adds beside the MLP's residual,
    outside the block's affines, as the official ViTLayer.forward (tests/test_official.py checks the branch itself
    against it); the default reads norm1 inside aff1."""
    from torch import nn

    from ingur_lib.models.binaryvit import BinaryBlock
    torch.manual_seed(0)
    cfg = BinaryViTConfig(dims=(16,), depths=(1,), heads=2, pool="mean", multi_pool=True, affine=True,
                          pool_pad=True, pool_at_output=True)
    blk = BinaryBlock(cfg, 16, (4, 4))
    nn.init.normal_(blk.pools.a), nn.init.normal_(blk.pools.b)
    x = torch.randn(2, 16, 16)
    with torch.no_grad():
        mid = x + blk.aff1(blk.attn(blk.norm1(x)))
        mlp = mid + blk.aff2(blk.fc2(blk.act(blk.fc1(blk.norm2(mid)))))
        torch.testing.assert_close(blk(x), mlp + blk.pools(blk.norm2(mid)))
