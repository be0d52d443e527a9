"""SPT and LSA mechanics (Lee, Lee & Song 2021; official code aanna0701/SPT_LSA_ViT) and chapter 05."""

import pytest
import torch
import torch.nn.functional as F

from ingur_lib import ledger
from ingur_lib.chapters import spt_lsa as ch
from ingur_lib.errors import IngurError
from ingur_lib.models.vit import ViT, ViTConfig
from ingur_lib.nn.attention import ATTENTIONS, attention_entropy, capture_attention
from ingur_lib.nn.lsa import LocalitySelfAttention, diagonal_mask
from ingur_lib.nn.spt import ShiftedPatchTokenizer, patchify, shift_views
from ingur_lib.nn.tokens import TOKENIZERS


def test_registered_by_importing_the_vit():
    assert TOKENIZERS["spt"] is ShiftedPatchTokenizer and ATTENTIONS["lsa"] is LocalitySelfAttention
    ViTConfig(tokenizer="spt", attention="lsa")


def test_shift_views_are_half_patch_diagonal_shifts_with_zero_padding():
    x = torch.arange(1, 37.0).view(1, 1, 6, 6)
    v = shift_views(x, 2)
    assert v.shape == (1, 5, 6, 6)
    torch.testing.assert_close(v[:, 0], x[:, 0])
    # up-left view: pixel (i, j) shows x(i - 2, j - 2), zeros where that falls outside
    for k, (dy, dx) in enumerate(((-1, -1), (-1, 1), (1, -1), (1, 1)), start=1):
        for i in range(6):
            for j in range(6):
                si, sj = i + 2 * dy, j + 2 * dx
                want = x[0, 0, si, sj] if 0 <= si < 6 and 0 <= sj < 6 else 0.0
                assert v[0, k, i, j] == want, (k, i, j)


def test_spt_equals_layernorm_then_linear_on_flattened_shifted_patches():
    torch.manual_seed(0)
    spt = ShiftedPatchTokenizer(image_size=8, patch_size=4, in_chans=3, dim=10)
    assert spt.grid == 2 and spt.num_patches == 4 and spt.shift == 2
    x = torch.randn(2, 3, 8, 8)
    views = shift_views(x, 2)                                       # (2, 15, 8, 8)
    patches = F.unfold(views, 4, stride=4).transpose(1, 2)          # (2, 4, 15*16) in (c, p, p) order
    patches = patches.view(2, 4, 15, 16).transpose(2, 3).reshape(2, 4, 240)  # -> (p, p, c) order
    torch.testing.assert_close(patches, patchify(views, 4))
    want = F.linear(F.layer_norm(patches, (240,), spt.norm.weight, spt.norm.bias), spt.proj.weight, spt.proj.bias)
    torch.testing.assert_close(spt(x), want)


def test_spt_rejects_a_bad_patch_or_image():
    with pytest.raises(IngurError, match="divisible"):
        ShiftedPatchTokenizer(28, 5, 1, 8)
    with pytest.raises(IngurError, match="image_size"):
        ShiftedPatchTokenizer(28, 4, 1, 8)(torch.zeros(1, 1, 32, 32))


def test_lsa_equals_the_reference_formula():
    torch.manual_seed(0)
    att = LocalitySelfAttention(dim=16, heads=4).eval()
    with torch.no_grad():
        att.temperature.copy_(torch.tensor([0.1, 0.5, 1.0, 2.0]))
    assert att.logit_scale().flatten().tolist() == pytest.approx([0.1, 0.5, 1.0, 2.0])
    x = torch.randn(3, 7, 16)
    q, k, v = att.split_heads(x)
    scores = q @ k.transpose(-2, -1) * att.temperature.view(1, 4, 1, 1)
    scores = scores.masked_fill(torch.eye(7, dtype=torch.bool), -987654321.0)  # the official code's constant
    want = att.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(3, 7, 16))
    torch.testing.assert_close(att(x), want, atol=1e-5, rtol=1e-4)


def test_lsa_temperature_starts_at_inverse_sqrt_head_dim_and_learns():
    att = LocalitySelfAttention(dim=64, heads=4)
    torch.testing.assert_close(att.temperature.data, torch.full((4,), 16 ** -0.5))
    att(torch.randn(2, 5, 64)).sum().backward()      # fast path: the gradient reaches the temperature
    assert att.temperature.grad is not None and att.temperature.grad.abs().sum() > 0


def test_diagonal_mask_and_captured_weights():
    assert diagonal_mask(3).tolist() == [[False, True, True], [True, False, True], [True, True, False]]
    torch.manual_seed(0)
    model = ViT(ViTConfig(tokenizer="spt", attention="lsa", dim=32, depth=2, heads=2)).eval()
    x = torch.randn(4, 1, 28, 28)
    fast = model(x)
    with capture_attention(model) as maps:
        slow = model(x)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)   # sdpa path == explicit path
    for w in maps:
        assert w.shape == (4, 2, 50, 50)
        torch.testing.assert_close(w.sum(-1), torch.ones(4, 2, 50))
        assert w.diagonal(dim1=-2, dim2=-1).abs().max() == 0       # class token's diagonal too


def test_attention_entropy():
    uniform = torch.full((2, 5), 0.2)
    torch.testing.assert_close(attention_entropy(uniform), torch.full((2,), torch.log(torch.tensor(5.0)).item()))
    onehot = torch.eye(4)
    torch.testing.assert_close(attention_entropy(onehot), torch.zeros(4), atol=1e-6, rtol=0)


def test_exercise_reference_solutions_pass_and_wrong_ones_fail():
    from ingur_lib.chapters import spt_lsa as ch
    from ingur_lib.exercises import CHECKS, check
    CHECKS["spt_lsa.diagonal_mask"](ch.local_mask)   # the chapter's references (check() rejects library code)
    CHECKS["spt_lsa.shift_views"](ch.cardinal_views)
    assert ch.local_mask(4, 9).sum() == 16 * 15       # r >= grid: LSA's diagonal mask
    with pytest.raises(AssertionError):
        check("spt_lsa.diagonal_mask", lambda g, r: torch.ones(g * g, g * g, dtype=torch.bool))
    with pytest.raises(AssertionError):  # roll wraps around instead of letting zeros enter
        check("spt_lsa.shift_views", lambda x, s: torch.cat([x, x.roll(-s, 2), x.roll(s, 2), x.roll(-s, 3),
                                                             x.roll(s, 3)], 1))


def test_paper_scale_flops_match_the_reported_vit():
    from ingur_lib.chapters import spt_lsa as ch
    mmacs = ch.paper_scale_mmacs()
    assert abs(mmacs["ViT"] - 189.8) / 189.8 < 0.03      # the README's 189.8 M are multiply-accumulates
    assert mmacs["ViT"] < mmacs["SL-ViT"] < 1.1 * mmacs["ViT"]


def test_overhead_and_inside_on_a_tiny_model():
    from ingur_lib.chapters import spt_lsa as ch
    over = ch.overhead(ViTConfig(dim=16, depth=1, heads=2), batch=4, reps=1)
    assert set(over) == set(ch.VARIANTS)
    assert over["SL-ViT"]["params"] == over["+SPT"]["params"] + 2      # LSA adds one temperature per head
    assert over["+SPT"]["mflops"] > over["ViT"]["mflops"]


def test_epochs_scale_with_the_data():
    """A set k times smaller trains sqrt(k) times more epochs; `longer` scales the schedule."""
    cfg = ch.Config(ViTConfig(), epochs=10, sizes=(100, 400), ablation_size=400)
    assert cfg.epochs_at(400) == 10 and cfg.epochs_at(100) == 20
    tc = cfg.train_config(100, seed=3, lr=1e-3, longer=1.5)
    assert (tc.epochs, tc.lr, tc.seed) == (30, 1e-3, 3) and abs(tc.warmup_epochs - 3) < 1e-9


@pytest.mark.parametrize("bad", [dict(lrs=(0.0,)), dict(longer=1.0), dict(sizes=(5,)), dict(epochs=0)])
def test_config_rejects_bad_sweeps(bad):
    with pytest.raises(IngurError):
        ch.Config(ViTConfig(), **{**dict(epochs=1, sizes=(100,), ablation_size=100), **bad})


def test_effects_are_paired_per_seed():
    """Gains are differences within a seed; the size effect is the difference of those per seed."""
    acc = {100: {"ViT": [50.0, 60.0, 70.0], "SL-ViT": [55.0, 62.0, 76.0]},
           400: {"ViT": [80.0, 81.0, 82.0], "SL-ViT": [81.0, 81.0, 84.0], "+SPT": [81.0, 82.0, 83.0],
                 "+LSA": [79.0, 81.0, 82.0]}}
    cfg = ch.Config(ViTConfig(), epochs=1, sizes=(100, 400), ablation_size=400)
    eff = ch.effects(acc, cfg)
    assert eff["gain/SL-ViT/n=100"]["values"] == [5.0, 2.0, 6.0]
    assert eff["gain/+LSA/n=400"]["values"] == [-1.0, 0.0, 0.0]
    assert eff["gain_small_minus_large/n=100-400"]["values"] == [4.0, 2.0, 4.0]
    # +SPT's gain (1, 1, 1) is resolved with no spread; SL-ViT at 100 (mean 4.33) too; +LSA's is not: the
    # shared rule (ledger.convergence) judges the ViT's mean move against the smallest resolved, +SPT's
    conv = {"factor": 1.5, "seeds": [0, 1],
            "n=100": {"change": ledger.summarize([0.4, 0.6])}, "n=400": {"change": ledger.summarize([-1.2, -1.0])}}
    judged = ch.judge_convergence(conv, eff)
    assert (judged["smallest_name"], judged["smallest_effect"]) == ("gain/+SPT/n=400", 1.0)
    assert judged["moved"] == pytest.approx(1.1) and judged["converged"] is False
    conv["n=400"]["change"] = ledger.summarize([-0.8, -1.0])
    assert ch.judge_convergence(conv, eff)["converged"] is True and not ch.judge_convergence(conv, eff)["noisy"]
    conv["n=400"]["change"] = ledger.summarize([-3.0, 1.4])    # moves 0.8 < 1.0, but its s.e. is 2.2
    assert ch.judge_convergence(conv, eff)["noisy"] is True
    assert ledger.NOISY_CHECK in ch.convergence_markdown({**conv, "n=100": {**conv["n=100"], "acc": [1.0, 2.0],
                                                                            "acc_longer": [1.0, 2.0]},
                                                          "n=400": {**conv["n=400"], "acc": [1.0, 2.0],
                                                                    "acc_longer": [1.0, 2.0]}}, eff)
    # no effect resolved: the ledger's default tolerance decides
    none = {"gain/+LSA/n=400": eff["gain/+LSA/n=400"]}
    assert ch.judge_convergence(conv, none)["smallest_effect"] == ledger.DEFAULT_TOLERANCE
    assert ch.judge_convergence(conv, none)["converged"] is False


def test_results_sentences_say_where_the_best_rate_lies_and_what_is_resolved():
    sweep = {"ViT": {"0.004": 70.0, "0.008": 72.0, "0.016": 71.0}, "SL-ViT": {"0.004": 73.0, "0.008": 72.0}}
    text = ch.bracket_markdown(sweep)
    assert "ViT's best rate, 0.008, is inside" in text and "SL-ViT's best rate, 0.004, is **at the edge**" in text
    eff = {"gain/a": ledger.summarize([1.0, 1.2, 0.9]), "gain/b": ledger.summarize([2.0, -1.0, 0.5])}
    assert ch.resolved_markdown(eff) == ("Resolved (its 95% interval excludes 0): gain a. Not resolved (a null "
                                         "at this number "
                                         "of seeds, read with its interval): gain b.")
