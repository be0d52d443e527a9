"""DeiT [4]: distillation token mechanics, losses vs reference formulas, param counts, exercises."""

import pytest
import torch
import torch.nn.functional as F

from ingur_lib.chapters import deit
from ingur_lib.nn.distill import distillation_loss, hard_distillation, soft_distillation
from ingur_lib.errors import IngurError
from ingur_lib.exercises import CHECKS
from ingur_lib.models.cnn import CNNConfig, ResNet
from ingur_lib.models.deit import DEIT_REPORTED, DistilledViT, deit_config
from ingur_lib.models.vit import ViT, ViTConfig, count_params

SMALL = ViTConfig(image_size=28, patch_size=7, dim=32, depth=2, heads=2)


@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_param_counts_match_paper(size):
    """Table 1's whole millions (5M, 22M, 86M: the fraction dropped) from our counts."""
    from ingur_lib.models.deit import table1_millions
    n = count_params(ViT(deit_config(size)))
    assert table1_millions(n) == DEIT_REPORTED[size]["params_m"], n
    assert table1_millions(5_720_000) == 5 and table1_millions(999_999) == 0


def test_distilled_vit_adds_one_token_one_position_one_head():
    torch.manual_seed(0)
    plain, dist = ViT(SMALL), DistilledViT(SMALL)
    extra = count_params(dist) - count_params(plain)
    assert extra == SMALL.dim + SMALL.dim + (SMALL.dim * 10 + 10)   # token, its position, its head
    x = torch.randn(4, 1, 28, 28)
    assert dist.tokens(x).shape == (4, 2 + 16, SMALL.dim)
    assert dist.pos_embed.shape == (1, 18, SMALL.dim)


def test_token_placement_and_positions():
    torch.manual_seed(0)
    m = DistilledViT(SMALL)
    x = torch.zeros(2, 1, 28, 28)
    z = m.tokens(x)
    torch.testing.assert_close(z[0, 0], (m.cls_token + m.pos_embed[:, 0])[0, 0])
    torch.testing.assert_close(z[0, 1], (m.dist_token + m.pos_embed[:, 1])[0, 0])


def test_train_returns_two_heads_eval_returns_their_mean():
    torch.manual_seed(0)
    m = DistilledViT(SMALL)
    x = torch.randn(3, 1, 28, 28)
    m.train()
    out = m(x)
    assert isinstance(out, tuple) and len(out) == 2 and out[0].shape == (3, 10)
    m.eval()
    c, d = m.heads(x)
    torch.testing.assert_close(m(x), (c + d) / 2)
    assert not torch.allclose(c, d)   # separate heads on separate tokens


def test_hard_distillation_is_ce_to_teacher_argmax():
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    ref = -F.log_softmax(s, -1)[torch.arange(8), t.argmax(-1)].mean()
    torch.testing.assert_close(hard_distillation(s, t), ref)


def test_soft_distillation_uses_official_normalization():
    s, t, tau = torch.randn(8, 5), torch.randn(8, 5), 3.0
    p_t, log_p_s = F.softmax(t / tau, -1), F.log_softmax(s / tau, -1)
    per_sample_kl = (p_t * (p_t.log() - log_p_s)).sum(-1)
    # summed, divided by batch x classes (not by batch): 5 times smaller than the batch-mean KL
    torch.testing.assert_close(soft_distillation(s, t, tau), per_sample_kl.mean() * tau ** 2 / 5)
    assert soft_distillation(t, t, tau).abs() < 1e-6


def test_total_loss_mixes_class_head_and_distillation_head():
    torch.manual_seed(0)
    teacher = ViT(SMALL).eval()
    student = DistilledViT(SMALL).train()
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    loss, shown = distillation_loss(teacher, "hard", alpha=0.5)(student, (x, y))
    torch.manual_seed(0)
    c, d = student(x)
    ref = 0.5 * F.cross_entropy(c, y) + 0.5 * F.cross_entropy(d, teacher(x).argmax(-1))
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(shown, (c + d) / 2)
    assert all(p.grad is None for p in teacher.parameters())


def test_precomputed_teacher_logits_give_the_same_loss():
    torch.manual_seed(0)
    teacher, student = ViT(SMALL).eval(), ViT(SMALL).eval()
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    live = distillation_loss(teacher, "soft", alpha=1.0, tau=1.0)(student, (x, y))[0]
    with torch.no_grad():
        cached = distillation_loss(None, "soft", alpha=1.0, tau=1.0, precomputed=True)(student, (x, y, teacher(x)))[0]
    torch.testing.assert_close(cached, live)
    wrong = distillation_loss(None, "soft", alpha=1.0, tau=1.0, precomputed=True)(student, (x, y, teacher(x.flip(0))))
    assert not torch.allclose(wrong[0], live)  # the third tensor is what is used


def test_distillation_errors_name_the_fix():
    with pytest.raises(IngurError, match="teacher"):
        distillation_loss(None, "hard")
    with pytest.raises(IngurError, match="none, soft, hard"):
        distillation_loss(None, "medium")
    with pytest.raises(IngurError, match="tiny"):
        deit_config("huge")


def test_resnet_teacher_shapes():
    m = ResNet(CNNConfig(widths=(8, 16), stem_stride=2))
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_token_similarity_and_attention_shapes():
    torch.manual_seed(0)
    m = DistilledViT(SMALL)
    x = torch.randn(3, 1, 28, 28)
    sim = deit.token_similarity(m, x)
    assert len(sim["per_layer"]) == SMALL.depth and -1 <= sim["output"] <= 1
    att = deit.token_attention(m, x)
    assert att["cls"].shape == (3, SMALL.depth, 4, 4) and att["dist"].shape == (3, SMALL.depth, 4, 4)
    for w in att["raw"]:
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))


def test_agreement_matrix():
    names, a = deit.agreement({"a": torch.tensor([0, 1, 2, 3]), "b": torch.tensor([0, 1, 0, 0])})
    assert names == ["a", "b"]
    torch.testing.assert_close(a, torch.tensor([[1.0, 0.5], [0.5, 1.0]]))


def test_exercise_reference_solutions_pass_and_wrong_ones_fail():
    CHECKS["deit.hard_distillation"](deit.smoothed_hard_distillation)
    CHECKS["deit.distillation_token"](deit.two_head_loss)
    with pytest.raises(AssertionError):
        CHECKS["deit.hard_distillation"](lambda s, t, eps: soft_distillation(s, t, 1.0))
    with pytest.raises(AssertionError):  # eps ignored
        CHECKS["deit.hard_distillation"](lambda s, t, eps: hard_distillation(s, t))
    with pytest.raises(AssertionError, match="swapped"):  # the heads learn each other's targets
        CHECKS["deit.distillation_token"](lambda c, d, y, t, a: deit.two_head_loss(d, c, y, t, a))
    with pytest.raises(AssertionError):  # alpha ignored
        CHECKS["deit.distillation_token"](lambda c, d, y, t, a: deit.two_head_loss(c, d, y, t))


def test_throughput_is_positive():
    assert deit.throughput("tiny", batch=1, repeats=1) > 0


def test_config_rejects_unknown_teacher_and_too_many_convergence_seeds():
    base = deit.config("smoke")
    with pytest.raises(IngurError, match="teachers"):
        deit.Config(**{**base.__dict__, "teachers": ("regnet",)})
    with pytest.raises(IngurError, match="convergence_seeds"):
        deit.Config(**{**base.__dict__, "seeds": (0,), "convergence_seeds": 2})
    with pytest.raises(IngurError, match="students"):
        deit.Config(**{**base.__dict__, "students": ("hard", "hard + token")})  # no baseline
    with pytest.raises(IngurError, match="swept"):
        deit.Config(**{**base.__dict__, "swept": ("none", "hard+token")})  # a misspelt variant


def test_students_keeps_the_named_variants_only():
    from dataclasses import replace
    cfg = replace(deit.config("smoke"), students=("none", "hard", "hard + token"))
    assert [v[0] for v in deit.variants(cfg)] == ["none", "hard", "hard + token"]


def test_variants_follow_the_trained_teachers():
    names = [v[0] for v in deit.variants(deit.config("standard"))]
    assert names == ["none", "hard", "hard + token"]  # the standard profile drops the soft student
    assert "soft" in [v[0] for v in deit.variants(deit.config("smoke"))]
    assert "hard + token, ViT teacher" in [v[0] for v in deit.variants(deit.config("full"))]


def test_convergence_is_judged_by_the_shared_rule_on_resolved_student_effects():
    from ingur_lib import ledger

    def row(claim, values):
        s = ledger.summarize(values)
        return {"claim": claim, "ours": s["mean"], "ours_std": s["std"], "n_seeds": s["n"]}
    rows = [row("hard_vs_none", [3.0, 3.2, 2.8]), row("token_vs_hard", [1.0, 1.1, 0.9]),
            row("soft_vs_none", [0.5, -0.4, 0.1]),            # within 2 s.e. of 0: not resolved
            row("dist_vs_class_head", [0.2, 0.21, 0.19]),     # resolved, but inside one model: not counted
            row("throughput_ti_over_b", [0.2, 0.2, 0.21])]    # not an accuracy effect
    conv = {"change": ledger.summarize([0.8, 0.9, 1.0])}
    out = deit.judge_convergence(conv, rows)
    assert (out["smallest_effect_name"], out["smallest_effect_points"]) == ("token_vs_hard", pytest.approx(1.0))
    assert out["converged"] is True and out["noisy"] is False
    loud = deit.judge_convergence({"change": ledger.summarize([3.0, -1.5, -0.5])}, rows)  # s.e. 1.4 > 1.0
    assert loud["converged"] is True and loud["noisy"] is True
    assert deit.judge_convergence({"change": ledger.summarize([-1.1, -1.2])}, rows)["converged"] is False
    none = deit.judge_convergence(conv, rows[2:])
    assert none["smallest_effect_points"] == ledger.DEFAULT_TOLERANCE and none["converged"] is False
    assert not hasattr(deit, "smallest_effect")

def test_reproduce_reuses_the_sweeps_students_and_records_the_convergence_checks(tmp_path, monkeypatch):
    import json
    from dataclasses import replace
    from ingur_lib.train import TrainConfig
    tiny = replace(deit.config("smoke"), n_student=96, n_teacher=192, n_test=96, seeds=(0, 1),
                   student_train=TrainConfig(epochs=2, batch_size=32, lr=3e-3, warmup_epochs=0.5, eval_every=2),
                   teacher_train=TrainConfig(epochs=2, batch_size=64, lr=2e-3, warmup_epochs=0.5),
                   lr_sweep=(1e-3, 3e-3), convergence_seeds=1, throughput_batch=1, throughput_batches=1)
    monkeypatch.setitem(deit.CONFIGS, "standard", tiny)
    monkeypatch.setenv("INGUR_RESULTS", str(tmp_path))
    trained = []
    real = deit.train_student
    monkeypatch.setattr(deit, "train_student", lambda v, c, *a, **k: trained.append((v[0], c.student_train.epochs))
                        or real(v, c, *a, **k))
    rec = json.loads(open(deit.reproduce("standard", progress=False)).read())
    # 2 swept students x 2 rates, then seed 0's two other variants (the swept ones are reused), seed 1's four,
    # then the 1.5x check of "none" on one seed: nothing is trained twice.
    assert len(trained) == 4 + 2 + 4 + 1 and trained[-1] == ("none", 3)
    conv = rec["convergence"]   # one longer_check record per model, no stored verdict
    assert conv["none"]["epochs"] == 2 and conv["none"]["factor"] == 1.5 and conv["none"]["seeds"] == [0]
    assert conv["teacher cnn"]["epochs"] == 2 and len(conv["teacher cnn"]["last_two_evals"]) <= 2
    assert not any("converged" in v for v in conv.values())
    judged = deit.judge_convergence(conv["none"], rec["comparisons"])
    assert judged["converged"] in (True, False) and judged["smallest_effect_points"] > 0
    assert rec["lr_sweep"]["lr_plain"] in (1e-3, 3e-3)
    assert "Convergence check" in deit.reading(rec)

    # the standard profile's shape: the soft student dropped, only the baseline swept
    monkeypatch.setitem(deit.CONFIGS, "standard", replace(tiny, students=("none", "hard", "hard + token"),
                                                           swept=("none",)))
    trained.clear()
    rec = json.loads(open(deit.reproduce("standard", progress=False)).read())
    # none x 2 rates; seed 0's hard and token; seed 1's three; the check: still nothing trained twice
    assert len(trained) == 2 + 2 + 3 + 1 and "soft" not in [name for name, _ in trained]
    assert rec["lr_sweep"]["lr_distilled"] == rec["lr_sweep"]["lr_plain"]
    assert "soft_vs_none" not in {c["claim"] for c in rec["comparisons"]}
    assert "the distilled students train at the baseline's rate" in deit.reading(rec)


def test_reading_says_whether_the_sweep_brackets_each_winner():
    acc = {"0.003": 0.7, "0.006": 0.8, "0.012": 0.6}
    sweep = {"test_acc": {"none": acc, "hard + token": acc}, "lr_plain": 0.006, "lr_distilled": 0.006}
    assert deit._bracketed(sweep) == "both inside the swept range"
    assert deit._bracketed({**sweep, "lr_distilled": 0.012}) == "the token winner at the sweep's edge"
    assert deit._bracketed({**sweep, "lr_plain": 0.003, "lr_distilled": 0.012}).endswith("winners at the sweep's edge")
    plain = {**sweep, "test_acc": {"none": acc}}  # only the baseline swept
    assert deit._bracketed(plain) == "inside the swept range"
    assert deit._bracketed({**plain, "lr_plain": 0.012}) == "the undistilled winner at the sweep's edge"
