"""Mechanics of chapter 01 (Vaswani et al. 2017): attention, masks, positions, layers, decoding, schedule."""
import math

import pytest
import torch
import torch.nn.functional as F

from ingur_lib.errors import IngurError
from ingur_lib.models.seq2seq import (BOS, EOS, PAD, Seq2SeqConfig, beam_search, build, greedy_decode,
                                      length_penalty, seq2seq_loss, shift_right)
from ingur_lib.nn.attention import capture_attention, scaled_dot_product
from ingur_lib.nn.transformer import (DecoderLayer, EncoderLayer, MultiHeadAttention, attention_kinds, causal_mask,
                                      padding_mask, sinusoidal_positions)
from ingur_lib.train import TrainConfig, fit, warmup_rsqrt


def _cfg(**kw):
    base = dict(src_vocab=11, tgt_vocab=13, d_model=32, heads=4, layers=2, d_ff=64, dropout=0.0)
    return Seq2SeqConfig(**{**base, **kw})


def test_causal_mask_is_lower_triangular():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m[2, :3].all() and not m[2, 3] and not m.triu(1).any()


def test_padding_mask_hides_pad_keys():
    ids = torch.tensor([[5, 6, PAD], [7, PAD, PAD]])
    m = padding_mask(ids)
    assert m.shape == (2, 1, 1, 3)
    assert m[0, 0, 0].tolist() == [True, True, False] and m[1, 0, 0].tolist() == [True, False, False]


def test_sinusoidal_positions_formula():
    pe = sinusoidal_positions(50, 16)
    pos, i = 7, 3
    assert pe[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 16)), abs=1e-6)
    # Sec. 3.5: PE(pos + k) is a linear function (a rotation per frequency) of PE(pos).
    k, w = 5, 10000 ** (-2 * i / 16)
    rot = torch.tensor([[math.cos(k * w), -math.sin(k * w)], [math.sin(k * w), math.cos(k * w)]])
    torch.testing.assert_close(pe[pos, 2 * i: 2 * i + 2] @ rot, pe[pos + k, 2 * i: 2 * i + 2], atol=1e-5, rtol=0)
    with pytest.raises(IngurError):
        sinusoidal_positions(4, 7)


def test_masked_attention_matches_reference_and_fused():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    mask = torch.rand(2, 1, 5, 6) > 0.3
    mask[..., 0] = True
    out, w = scaled_dot_product(q, k, v, mask, need_weights=True)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(~mask, -1e9)
    torch.testing.assert_close(w, scores.softmax(-1))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5, rtol=1e-4)
    assert (w[~mask.expand_as(w)] == 0).all()


def test_cross_attention_shapes_and_capture():
    mha = MultiHeadAttention(32, 4, kind="cross")
    y, mem = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    with capture_attention(mha) as maps:
        out = mha(y, mem)
    assert out.shape == (2, 5, 32) and maps[0].shape == (2, 4, 5, 7)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 4, 5))
    torch.testing.assert_close(out, mha(y, mem))  # the captured (explicit) path equals the fused one
    with pytest.raises(IngurError):
        MultiHeadAttention(30, 4)


def test_post_ln_vs_pre_ln():
    x = torch.randn(2, 5, 32)
    post, pre = EncoderLayer(32, 4, 64, 0.0, norm_first=False), EncoderLayer(32, 4, 64, 0.0, norm_first=True)
    out = post(x)
    # Post-LN: the layer's output is a LayerNorm output (zero mean, unit variance per position).
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    assert pre(x).mean(-1).abs().max() > 1e-3  # pre-LN leaves the residual stream unnormalized
    dec = DecoderLayer(32, 4, 64, 0.0)
    assert dec(torch.randn(2, 3, 32), x, causal_mask(3)).shape == (2, 3, 32)


@pytest.mark.parametrize("arch", ["transformer", "gru"])
def test_decoder_is_causal(arch):
    """Changing a later target token must not change the logits at earlier positions."""
    torch.manual_seed(0)
    model = build(_cfg(arch=arch)).eval()
    src, tgt = torch.randint(4, 11, (2, 6)), torch.randint(4, 13, (2, 5))
    tgt2 = tgt.clone()
    tgt2[:, 3] = (tgt[:, 3] + 1 - 4) % 9 + 4
    a, b = model(src, tgt), model(src, tgt2)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_padding_does_not_change_the_output():
    torch.manual_seed(0)
    model = build(_cfg()).eval()
    src, tgt = torch.randint(4, 11, (1, 5)), torch.randint(4, 13, (1, 4))
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], 1)
    torch.testing.assert_close(model(src, tgt), model(padded, tgt), atol=1e-5, rtol=1e-4)


def test_shared_embeddings_and_scale():
    model = build(_cfg())
    assert model.generator.weight is model.tgt_embed.weight
    assert model.encoder[0].attn.kind == "self"
    assert attention_kinds(model) == ["self", "self", "causal", "cross", "causal", "cross"]
    untied = build(_cfg(share_embeddings=False))
    n_tied, n_untied = (sum(p.numel() for p in m.parameters()) for m in (model, untied))
    assert n_untied - n_tied == 13 * 32


def test_loss_ignores_padding_and_shift_right():
    tgt = torch.tensor([[5, 6, EOS, PAD]])
    assert shift_right(tgt).tolist() == [[BOS, 5, 6, EOS]]
    model = build(_cfg())
    loss, logits = seq2seq_loss(0.0)(model, (torch.tensor([[4, 5, PAD]]), tgt))
    want = F.cross_entropy(logits[0, :3], tgt[0, :3])
    torch.testing.assert_close(loss, want)


def test_warmup_rsqrt_is_the_papers_formula():
    d, w = 512, 4000
    peak = d ** -0.5 * w ** -0.5
    for step in (0, 99, 3999, 4000, 20000):
        s = step + 1
        assert warmup_rsqrt(step, w, peak) == pytest.approx(d ** -0.5 * min(s ** -0.5, s * w ** -1.5))
    with pytest.raises(IngurError):
        fit(torch.nn.Linear(2, 2), (torch.randn(4, 2), torch.tensor([0, 1, 0, 1])), None,
            TrainConfig(epochs=1, schedule="step"), progress=False)


def test_length_penalty():
    assert length_penalty(torch.tensor(1.0), 0.6).item() == pytest.approx(1.0)
    assert length_penalty(torch.tensor(10.0), 0.6).item() == pytest.approx((15 / 6) ** 0.6)


class _Copy(torch.nn.Module):
    """A fake seq2seq model with fixed next-token distributions, to test the decoders exactly."""

    def __init__(self, table):
        super().__init__()
        self.table = table  # function(prefix tuple) -> list of probabilities over 5 tokens
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode(self, src):
        return src.float()[..., None], src != PAD

    def decode(self, ys, memory, mask):
        rows = [torch.tensor(self.table(tuple(r.tolist()))).log() for r in ys]
        return torch.stack(rows)[:, None].expand(-1, ys.shape[1], -1)


def test_beam_finds_what_greedy_misses():
    # Greedy takes token 3 (p 0.5) then must pay 0.3 at best; beam finds 4 (p 0.4) then EOS (p 0.9).
    def table(prefix):
        if len(prefix) == 1:
            return [0.01, 0.01, 0.08, 0.5, 0.4]
        if prefix[-1] == 3:
            return [0.01, 0.01, 0.3, 0.34, 0.34]
        return [0.01, 0.01, 0.9, 0.04, 0.04]
    model, src = _Copy(table), torch.tensor([[4, 4]])
    assert greedy_decode(model, src, max_len=2)[0].tolist()[:2] == [3, 3]
    assert beam_search(model, src, beam=2, alpha=0.6, max_len=4)[0].tolist()[:2] == [4, EOS]


def test_beam_search_batched_matches_one_by_one():
    torch.manual_seed(0)
    model = build(_cfg()).eval()
    src = torch.randint(4, 11, (3, 6))
    batched = beam_search(model, src, beam=3, max_len=6)
    for i in range(3):
        single = beam_search(model, src[i:i + 1], beam=3, max_len=6)[0]
        n = min(len(single), batched.shape[1])
        assert batched[i, :n].tolist() == single[:n].tolist()


# ---------------------------------------------------------------- chapter 01 module

def test_exercise_reference_solutions_pass_and_wrong_ones_fail():
    from ingur_lib.exercises import check

    def attn(q, k, v, mask):
        s = (q @ k.transpose(-2, -1)) / q.shape[-1] ** 0.5
        return s.masked_fill(~mask, float("-inf")).softmax(-1) @ v

    from ingur_lib.chapters import transformer as ch
    from ingur_lib.exercises import CHECKS
    with pytest.raises(AssertionError, match="NaN"):  # the page's attention: NaN on a fully masked row
        check("transformer.masked_attention", attn)
    CHECKS["transformer.masked_attention"](ch.safe_attention)
    CHECKS["transformer.causal_mask"](ch.window_causal_mask)   # the chapter's references
    CHECKS["transformer.sinusoidal_positions"](ch.position_shift)
    with pytest.raises(AssertionError):
        check("transformer.masked_attention", lambda q, k, v, m: (q @ k.transpose(-2, -1)).softmax(-1) @ v)
    with pytest.raises(AssertionError):
        check("transformer.causal_mask", lambda n, w: torch.ones(n, n, dtype=torch.bool).triu())


def test_scores_and_time_to_target():
    from ingur_lib.chapters.transformer import scores, time_to_target
    from ingur_lib.train import History
    s = scores(["fünfundvierzig", "dreizehn"], ["fünfundvierzig", "dreizehn"])
    assert s["exact"] == 100 and s["bleu"] == pytest.approx(100) and s["chrf"] == pytest.approx(100)
    s = scores(["fünfundvierzig", "dreizehm"], ["fünfundvierzig", "dreizehn"])
    assert s["exact"] == 50 and 50 < s["bleu"] < 100
    h = History([{"seconds": 2.0, "test_acc": 0.5}, {"seconds": 3.0, "test_acc": 0.96},
                 {"seconds": 3.0, "test_acc": 0.99}])
    assert time_to_target(h, 0.95) == 5.0 and time_to_target(h, 0.999) is None


def test_attention_matrix_checks_labels():
    import matplotlib
    matplotlib.use("Agg")
    from ingur_lib.viz import attention_matrix
    fig = attention_matrix(torch.rand(2, 3), ["a", "b"], ["x", "y", "z"])
    assert fig.axes[0].get_xticklabels()[2].get_text() == "z"
    with pytest.raises(IngurError):
        attention_matrix(torch.rand(2, 3), ["a"], ["x", "y", "z"])


def test_transformer_learns_number_words_quickly():
    """60 steps on 640 pairs with the noam schedule: token accuracy far above chance (1/25)."""
    from dataclasses import replace
    from ingur_lib.chapters import transformer as ch
    task = ch.load_task("de", n_train=640, verbose=False)
    cfg = replace(ch.config("smoke").train, epochs=3, batch_size=32, lr=5e-3)
    small = replace(ch.BASE, d_model=32, d_ff=64, dropout=0.0)
    res = ch.train_one("t", ch.model_config(small, task), task, cfg, seed=0, progress=False)
    lrs = [e["lr"] for e in res.history.epochs]
    assert lrs[0] < lrs[1] or lrs[1] > lrs[2]  # warmup then inverse-sqrt decay
    assert res.history.last("test_acc") > 0.3


def test_ablation_effects_are_paired_by_seed_and_convergence_uses_the_ledgers_rule():
    from ingur_lib.chapters import transformer as ch
    per = {"Transformer": [{"exact": 80.0}, {"exact": 70.0}, {"exact": 90.0}],
           "1 layer": [{"exact": 75.0}, {"exact": 66.0}, {"exact": 84.0}],     # -5, -4, -6: resolved
           "learned positions": [{"exact": 81.0}, {"exact": 69.0}, {"exact": 90.5}]}  # +1, -1, +0.5: noise
    d = ch._delta(per, "1 layer", "Transformer")
    assert d["values"] == [-5.0, -4.0, -6.0] and d["mean"] == -5.0 and d["std"] == pytest.approx(1.0)
    conv = ch.judge_convergence({"Transformer": {"change": 4.0}, "GRU": {"change": 0.5}}, per)
    assert (conv["smallest_name"], conv["smallest_effect"], conv["converged"]) == ("1 layer", 5.0, True)
    assert ch.judge_convergence({"Transformer": {"change": -5.5}}, per)["converged"] is False
    noise = {"Transformer": per["Transformer"], "x": per["learned positions"]}
    assert ch.judge_convergence({"Transformer": {"change": 0.1}}, noise)["converged"] is None
    cfg = ch.config("standard")
    assert len(cfg.main_seeds) >= 3 and cfg.longer == 1.5 and cfg.n_train


def test_unseen_counts_test_numbers_no_model_can_translate():
    from ingur_lib.chapters import transformer as ch
    from ingur_lib.data.text import word_tokens
    task = ch.load_task("de", n_train=150, verbose=False)
    seen = {w for s in task.texts["train"]["src"] for w in word_tokens(s)}
    want = sum(any(w not in seen for w in word_tokens(s)) for s in task.texts["test"]["src"][:1000])
    assert want > 0 and ch.unseen(task, 1000) == want
    assert ch.unseen(ch.load_task("de", n_train=600, verbose=False), 1000) == 0
    line = ch._ceiling({"task": {"n_eval": 1000, "unseen": 9}})
    assert "9 of the 1,000" in line and "99.1%" in line and ch._ceiling({}) == ""


def test_the_recorded_comparisons_are_what_the_stored_per_seed_numbers_give():
    """01's comparisons were recomputed from its per-seed numbers (no training): they must stay equal to
    what `rederive_comparisons` gives, and the Table 3 rows compare char-BLEU like row 2."""
    from ingur_lib import ledger
    res = ledger.load_results("01_transformer", "standard")
    from ingur_lib.chapters import transformer as ch
    again = {r["claim"]: r for r in ch.rederive_comparisons(res)}
    for row in res["comparisons"]:
        assert row["ours"] == pytest.approx(again[row["claim"]]["ours"])
    assert all("char-BLEU" in r["metric"] for r in res["comparisons"] if r["claim"].endswith("_vs_base"))
