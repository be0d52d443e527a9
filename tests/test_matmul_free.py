"""MatMul-free LM [9]: ternary/int8 quantisers, STE, BitLinear, 2-bit packing, the additions-only product,
MLGRU, both language models (shapes, causality, learning) and the chapter's exercises."""
import pytest
import torch
import torch.nn.functional as F

from ingur_lib.errors import IngurError
from ingur_lib import measure
from ingur_lib.models.lm import LMConfig, TransformerPP, build, count_params, lm_loss
from ingur_lib.models.mlgru import MLGRU, MatMulFreeLM, lower_bounds, mlgru_scan, record_gates
from ingur_lib.nn import quant
from ingur_lib.nn.norms import RMSNorm, rms_norm


def _cfg(arch, **kw):
    base = dict(arch=arch, vocab=23, dim=32, depth=2, heads=4, max_len=64)
    base.update(kw)
    return LMConfig(**base)


# ---------------------------------------------------------------- quantisers

def test_ternary_values_and_absmean_scale():
    torch.manual_seed(0)
    w = torch.randn(64, 48) * 0.3
    q, gamma = quant.ternarize(w)
    assert q.dtype == torch.int8 and set(q.unique().tolist()) == {-1, 0, 1}
    torch.testing.assert_close(gamma, w.abs().mean())
    # the rule itself: |w| < gamma / 2 -> 0, otherwise the sign
    want = torch.where(w.abs() < gamma / 2, torch.zeros_like(w), w.sign()).to(torch.int8)
    assert torch.equal(q, want)
    torch.testing.assert_close(quant.weight_quant(w), q.float() * gamma)


def test_absmean_scale_has_a_floor():
    q, gamma = quant.ternarize(torch.zeros(3, 3))
    assert gamma.item() == pytest.approx(1e-5) and torch.equal(q, torch.zeros(3, 3, dtype=torch.int8))


def test_int8_per_token_range_and_scale():
    torch.manual_seed(1)
    x = torch.randn(4, 5, 16) * torch.tensor([0.1, 1.0, 10.0, 100.0])[:, None, None]
    xq, s = quant.int8_tokens(x)
    assert xq.dtype == torch.int8 and int(xq.min()) >= -128 and int(xq.max()) <= 127
    # the largest |x| of every token maps to exactly 127
    assert torch.equal(xq.abs().amax(-1).to(torch.int32), torch.full((4, 5), 127, dtype=torch.int32))
    torch.testing.assert_close(s, 127 / x.abs().amax(-1, keepdim=True))
    deq = quant.activation_quant(x)
    torch.testing.assert_close(deq, xq.float() / s)
    assert ((deq - x).abs() <= 0.5 / s + 1e-6).all()  # rounding error at most half a step


def test_ste_forward_is_q_and_gradient_is_identity():
    x = torch.randn(6, 8, requires_grad=True)
    y = quant.ste(x, quant.activation_quant(x))
    torch.testing.assert_close(y, quant.activation_quant(x.detach()))
    g = torch.randn(6, 8)
    y.backward(g)
    torch.testing.assert_close(x.grad, g)
    w = torch.randn(5, 8, requires_grad=True)
    quant.ste(w, quant.weight_quant(w)).sum().backward()
    torch.testing.assert_close(w.grad, torch.ones(5, 8))


def test_rmsnorm():
    x = torch.randn(3, 7, 10)
    n = RMSNorm(10)
    torch.testing.assert_close(n(x), x / (x.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt())
    torch.testing.assert_close(rms_norm(x).pow(2).mean(-1), torch.ones(3, 7), atol=1e-4, rtol=1e-4)


def test_bitlinear_equals_fake_quantised_linear_and_learns_latent_weights():
    torch.manual_seed(2)
    layer = quant.BitLinear(24, 12)
    x = torch.randn(3, 5, 24, requires_grad=True)
    y = layer(x)
    xn = layer.norm(x.detach())
    want = F.linear(quant.activation_quant(xn), quant.weight_quant(layer.weight.detach()))
    torch.testing.assert_close(y.detach(), want)
    y.sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


# ---------------------------------------------------------------- MatMul-free product and packing

@pytest.mark.parametrize("shape", [(7, 33), (16, 64), (1, 5)])
def test_ternary_matmul_equals_integer_matmul(shape):
    g = torch.Generator().manual_seed(shape[1])
    w = torch.randint(-1, 2, shape, generator=g, dtype=torch.int8)
    x = torch.randint(-128, 128, (2, 3, shape[1]), generator=g, dtype=torch.int8)
    got = quant.ternary_matmul(x, w)
    assert got.dtype == torch.int32
    assert torch.equal(got, (x.long() @ w.long().T).to(torch.int32))


def test_additions_only_bitlinear_equals_fake_quantised_forward():
    torch.manual_seed(3)
    layer = quant.BitLinear(48, 20)
    x = torch.randn(4, 9, 48)
    with torch.no_grad():
        torch.testing.assert_close(layer.forward_additions(x), layer(x), atol=1e-5, rtol=1e-4)


def test_ternary_matmul_calls_no_matmul():
    from ingur_lib.chapters.matmul_free import no_matmul
    w = torch.randint(-1, 2, (6, 10), dtype=torch.int8)
    x = torch.randint(-5, 5, (3, 10), dtype=torch.int8)
    with no_matmul():
        quant.ternary_matmul(x, w)
    with pytest.raises(AssertionError, match="matrix"):
        with no_matmul():
            x.float() @ w.float().T


def test_ternary_matmul_rejects_non_ternary_weights():
    with pytest.raises(IngurError, match="ternar"):
        quant.ternary_matmul(torch.ones(2, 3, dtype=torch.int8), torch.full((4, 3), 2, dtype=torch.int8))


@pytest.mark.parametrize("shape", [(64, 48), (5, 7), (3,)])
def test_pack_unpack_round_trip_and_size(shape):
    w = torch.randint(-1, 2, shape, dtype=torch.int8)
    packed = quant.pack_ternary(w)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-w.numel() // 4)
    assert torch.equal(quant.unpack_ternary(packed, shape), w)


def test_packing_is_16x_smaller_than_float32():
    w = torch.randint(-1, 2, (256, 128), dtype=torch.int8)
    fp32_bytes = w.numel() * 4
    assert fp32_bytes / quant.pack_ternary(w).numel() == 16


def test_unpack_with_wrong_shape_is_a_clear_error():
    with pytest.raises(IngurError, match="shape"):
        quant.unpack_ternary(quant.pack_ternary(torch.zeros(8, dtype=torch.int8)), (3, 4))


def test_storage_bytes_counts_packed_bitlinears():
    m = build(_cfg("matmulfree"))
    b = measure.storage_bytes(m)
    assert b["float32"] == 4 * count_params(m)
    bl = quant.bitlinears(m).values()
    assert b["low_bit_params"] == sum(x.weight.numel() for x in bl)
    assert b["packed"] == sum(-(-x.weight.numel() // 4) + 4 for x in bl) + 4 * (b["params"] - b["low_bit_params"])
    tp = build(_cfg("transformerpp"))
    assert measure.storage_bytes(tp)["packed"] == 4 * count_params(tp)  # no BitLinear: nothing packed


# ---------------------------------------------------------------- MLGRU

def test_mlgru_scan_equals_step_by_step_formula():
    torch.manual_seed(4)
    f, c = torch.rand(2, 9, 5), torch.randn(2, 9, 5)
    h, want = torch.zeros(2, 5), []
    for t in range(9):
        h = f[:, t] * h + c[:, t]
        want.append(h)
    torch.testing.assert_close(mlgru_scan(f, c), torch.stack(want, 1))


def test_mlgru_layer_follows_the_paper_equations():
    torch.manual_seed(5)
    m = MLGRU(16)
    x = torch.randn(2, 7, 16)
    lb = torch.rand(16) * 0.5
    f = lb + (1 - lb) * torch.sigmoid(m.f_proj(x))
    c = F.silu(m.c_proj(x)) * (1 - f)
    h, hs = torch.zeros(2, 16), []
    for t in range(7):
        h = f[:, t] * h + c[:, t]
        hs.append(h)
    want = m.o_proj(torch.sigmoid(m.g_proj(x)) * torch.stack(hs, 1))
    torch.testing.assert_close(m(x, lower_bound=lb), want)


def test_lower_bounds_start_at_zero_and_rise_with_depth():
    lb = lower_bounds(torch.randn(4, 8))
    assert torch.equal(lb[0], torch.zeros(8))
    assert (lb[1:] >= lb[:-1]).all() and (lb < 1).all()
    torch.testing.assert_close(lower_bounds(torch.zeros(4, 3))[:, 0], torch.tensor([0.0, 0.25, 0.5, 0.75]))


def test_record_gates_collects_forget_gates_in_range():
    m = build(_cfg("matmulfree"))
    with record_gates(m) as gates:
        m(torch.randint(0, 23, (2, 11)))
    assert len(gates) == 2 and gates[0].shape == (2, 11, 32)
    assert ((gates[1] >= 0) & (gates[1] <= 1)).all()
    assert all(g.record is None for g in m.modules() if isinstance(g, MLGRU))


# ---------------------------------------------------------------- the two language models

@pytest.mark.parametrize("arch", ["transformerpp", "matmulfree"])
def test_shapes(arch):
    m = build(_cfg(arch))
    assert isinstance(m, TransformerPP if arch == "transformerpp" else MatMulFreeLM)
    assert m(torch.randint(0, 23, (3, 17))).shape == (3, 17, 23)


@pytest.mark.parametrize("arch", ["transformerpp", "matmulfree"])
def test_causal_future_tokens_do_not_change_past_outputs(arch):
    torch.manual_seed(6)
    m = build(_cfg(arch)).eval()
    a = torch.randint(0, 23, (2, 20))
    b = a.clone()
    b[:, 12:] = torch.randint(0, 23, (2, 8))
    with torch.no_grad():
        la, lb_ = m(a), m(b)
    torch.testing.assert_close(la[:, :12], lb_[:, :12])
    assert not torch.allclose(la[:, 12:], lb_[:, 12:])


def test_parameter_counts_match_closely():
    a, b = count_params(build(_cfg("transformerpp"))), count_params(build(_cfg("matmulfree")))
    assert abs(a - b) / a < 0.03


def test_every_dense_layer_of_the_matmul_free_model_is_ternary():
    m = build(_cfg("matmulfree"))
    assert not [n for n, mod in m.named_modules() if type(mod) is torch.nn.Linear]
    assert len(quant.bitlinears(m)) == 2 * (4 + 3) + 1  # per block 4 MLGRU + 3 GLU projections; the head


def test_bad_config_is_a_clear_error():
    with pytest.raises(IngurError, match="arch"):
        LMConfig(arch="rnn", vocab=10)
    with pytest.raises(IngurError, match="vocab"):
        build(LMConfig(arch="matmulfree"))


@pytest.mark.parametrize("arch", ["transformerpp", "matmulfree"])
def test_tiny_model_learns_well_below_uniform(arch):
    """A repeating pattern: after 150 steps the loss is far below log(vocab), the uniform prediction."""
    torch.manual_seed(7)
    m = build(_cfg(arch, vocab=12, dim=32, depth=1))
    seq = torch.tensor([4, 5, 6, 7, 8, 9, 10, 11] * 5)
    x = torch.stack([seq[i: i + 24] for i in range(8)])
    y = torch.stack([seq[i + 1: i + 25] for i in range(8)])
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    for _ in range(150):
        loss, _ = lm_loss(m, (x, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * torch.log(torch.tensor(12.0)).item()


# ---------------------------------------------------------------- data, chapter, exercises, ledger

def test_lm_data_windows_are_shifted_by_one():
    from ingur_lib.data import lm_data
    d = lm_data("pydoc", context=16, max_chars=5_000, verbose=False)
    x, y = d.train
    assert x.shape[1] == y.shape[1] == 16 and torch.equal(x[0, 1:], y[0, :-1]) and torch.equal(x[1, 0], y[0, -1])
    assert d.splits()["validation"] > 0 and (x >= 4).all()   # no special tokens inside the text
    with pytest.raises(IngurError, match="context"):
        lm_data("pydoc", context=1, verbose=False)


def test_exercise_reference_solutions_pass_and_wrong_ones_fail():
    from ingur_lib.chapters import matmul_free as ch
    from ingur_lib.exercises import CHECKS, check
    CHECKS["matmul_free.weight_quant"](ch.weight_quant_rows)  # the chapter's references (check() rejects them)
    CHECKS["matmul_free.ternary_matmul"](lambda x, w: quant.ternary_matmul(x, w))
    with pytest.raises(AssertionError, match="loop"):
        CHECKS["matmul_free.mlgru_scan"](mlgru_scan)         # the library's loop is not the parallel form
    with pytest.raises(AssertionError, match="matrix product"):
        check("matmul_free.ternary_matmul", lambda x, w: x.long() @ w.long().T)
    with pytest.raises(AssertionError):
        check("matmul_free.weight_quant", lambda w: w.sign() * w.abs().amax())  # absmax, not absmean
    with pytest.raises(AssertionError):
        check("matmul_free.mlgru_scan", lambda f, c: torch.cumsum(c, 1))     # forgets nothing


def test_chapter_configs_and_reported_claims():
    from ingur_lib import ledger
    from ingur_lib.chapters import matmul_free as ch
    for profile in ("smoke", "standard", "full"):
        cfg = ch.config(profile)
        assert cfg.model.dim % cfg.model.heads == 0 and cfg.train.label_smoothing == 0.0
    ids = {c["id"] for c in ledger.load_reported("matmul_free")["claims"]}
    assert {"loss_close", "pack_2bit", "additions_equal", "inference_memory"} <= ids


def test_additions_and_packing_checks_on_a_model():
    from ingur_lib.chapters import matmul_free as ch
    m = build(_cfg("matmulfree"))
    add = ch.additions_check(m, torch.randint(0, 23, (2, 9)))
    assert add["layers"] == len(quant.bitlinears(m)) and add["max_rel_diff"] < 1e-4
    pk = ch.packing_check(m)
    assert pk["round_trip"] and 15.9 < pk["ratio"] <= 16
    fr = ch.ternary_fractions(m)
    assert all(abs(sum(v) - 1) < 1e-6 for v in fr.values())


def test_a_claims_own_tolerance_decides_what_counts_as_close():
    from ingur_lib import ledger
    three = [2.9, 3.0, 3.1]                                                 # a 3% gap over 3 seeds
    assert ledger.compare("matmul_free", "loss_close", ledger.summarize(three), "gap")["verdict"] == "reproduced"
    eight = ledger.summarize([v + 5 for v in three])
    assert ledger.compare("matmul_free", "loss_close", eight, "gap")["verdict"] == "not reproduced"
    assert ledger.judge(0, 3.0, 0.1, form="none", n=3)[0] == "not reproduced"   # the default 0.3 rejects it


def _check(changes, name="Transformer++"):
    """A stored convergence record of one model whose paired % changes are `changes`."""
    from ingur_lib.experiment import longer_check
    base = [1.0] * len(changes)
    return {name: {"lr": 3e-3, **longer_check(base, [1 + c / 100 for c in changes], range(len(changes)), 1.5,
                                              percent=True)}}


def test_convergence_uses_the_ledgers_rule_with_the_claims_tolerance_as_default():
    from ingur_lib.chapters import matmul_free as ch
    noisy, clear = ledger_summary([-3.0, 1.0, -1.0]), ledger_summary([-2.0, -2.2, -1.8])
    out = ch.judge_convergence(_check([-4.0]), noisy)["Transformer++"]   # no gap resolved: 5 %
    assert out["smallest_name"] is None and out["smallest_effect"] == 5.0 and out["converged"] is True
    assert ch.judge_convergence(_check([-6.0]), noisy)["Transformer++"]["converged"] is False
    out = ch.judge_convergence(_check([-3.0]), clear)["Transformer++"]  # a resolved 2 % gap
    assert out["smallest_effect"] == pytest.approx(2.0) and out["converged"] is False
    assert ch.judge_convergence(_check([1.5]), clear)["Transformer++"]["converged"] is True
    # three seeds: the seed mean decides, and a check noisier than the bar says so
    loud = ch.judge_convergence(_check([4.0, -4.0, 0.5]), clear)["Transformer++"]
    assert loud["converged"] is True and loud["noisy"] is True


def test_the_reading_follows_the_numbers():
    from ingur_lib.chapters import matmul_free as ch
    sweep = {"losses": {n: {"0.0015": 1.2, "0.003": 1.1, "0.006": 1.3} for n in ch.MODELS},
             "best_lr": {ch.BASE: 0.003, ch.MMF: 0.006}}
    both = {**_check([0.5, -0.2, 0.1]), **_check([0.3, 0.2, -0.1], "MatMul-free LM")}
    res = {"metrics": {"loss gap (% of Transformer++)": ledger_summary([2.0, 2.2, 1.8])}, "lr_sweep": sweep,
           "convergence": both}
    text = ch.reading(res)
    assert "different rates" in text and "MatMul-free LM at its edge" in text
    assert "Transformer++ is ahead" in text and "the paired gap is resolved" in text
    assert "compares converged models" in text
    res["convergence"] = _check([0.5, -0.2, 0.1])        # MatMul-free not checked: no such claim
    assert "MatMul-free LM was not checked" in ch.reading(res) and "the gap compares" not in ch.reading(res)
    res["metrics"]["loss gap (% of Transformer++)"] = ledger_summary([-3.0, 1.0, -1.0])
    res["convergence"] = _check([-6.0, -5.0, -7.0])
    text = ch.reading(res)
    assert "MatMul-free LM is ahead" in text and "do not tell" in text and "fixed budget" in text


def ledger_summary(values):
    from ingur_lib import ledger
    return ledger.summarize(values)


def test_lr_sweep_keeps_each_models_own_best_rate(monkeypatch):
    """Each model keeps the learning rate with its lowest validation loss, independently of the other."""
    from types import SimpleNamespace

    from ingur_lib.chapters import matmul_free as ch
    loss = {("Transformer++", 1.5e-3): 1.5, ("Transformer++", 3e-3): 1.2, ("Transformer++", 6e-3): 1.4,
            ("MatMul-free LM", 1.5e-3): 1.6, ("MatMul-free LM", 3e-3): 1.5, ("MatMul-free LM", 6e-3): 1.3,
            ("MatMul-free LM", 1.2e-2): 1.35}

    def fake(name, cfg, data, seed, progress):
        return SimpleNamespace(metrics={"val_loss": loss[name, cfg.train.lr], "lr": cfg.train.lr})
    monkeypatch.setattr(ch, "train_one", fake)
    cfg = ch.config("standard")
    losses, best = ch.lr_sweep(cfg, None, 0, progress=False)
    assert {n: r.metrics["lr"] for n, r in best.items()} == {"Transformer++": 3e-3, "MatMul-free LM": 6e-3}
    assert losses["MatMul-free LM"]["0.0015"] == 1.6 and set(cfg.lrs) == {1.5e-3, 3e-3, 6e-3}
    # MatMul-free's best (6e-3) sat at the top edge: the sweep went on to 1.2e-2 (1.35, worse): bracketed
    assert list(losses["MatMul-free LM"]) == ["0.0015", "0.003", "0.006", "0.012"]
    assert list(losses["Transformer++"]) == ["0.0015", "0.003", "0.006"]
    assert ch.with_lr(cfg, 1e-2, 1.5).train.epochs == 1.5 * cfg.train.epochs
    assert ch.with_lr(cfg, 1e-2).train.min_lr == pytest.approx(1e-2 / 30)


def test_config_rejects_a_bad_sweep_or_check():
    from dataclasses import replace

    from ingur_lib.chapters import matmul_free as ch
    with pytest.raises(IngurError, match="learning rate"):
        replace(ch.config("smoke"), lrs=(1e-3, 0))
    with pytest.raises(IngurError, match="factor > 1"):
        replace(ch.config("smoke"), longer=1.0)


def test_fused_glu_is_one_projection_split_in_two():
    """glu_fused (the official HGRNBitMLP): gate and up one BitLinear; with its halves copied into the split
    GLU's two layers the plain-Linear versions agree exactly (only the ternary scale is shared)."""
    from ingur_lib.nn.glu import GLU
    torch.manual_seed(0)
    fused, split = GLU(8, 12, fused=True), GLU(8, 12)
    with torch.no_grad():
        split.gate.weight.copy_(fused.gate_up.weight[:12]), split.up.weight.copy_(fused.gate_up.weight[12:])
        split.down.weight.copy_(fused.down.weight)
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(fused(x), split(x))
    lm = MatMulFreeLM(LMConfig(arch="matmulfree", vocab=11, dim=16, depth=1, glu_fused=True))
    assert lm.blocks[0].glu.gate_up.weight.shape == (2 * lm.cfg.glu_hidden, 16)
    assert lm(torch.randint(0, 11, (2, 5))).shape == (2, 5, 11)


def test_official_gate_builds_the_rmsnorm_swish_gate():
    """official_gate (tests/test_official.py compares it with the official module): o = RMSNorm(g) * SiLU(h)."""
    torch.manual_seed(0)
    mixer = MLGRU(8, official_gate=True)
    g, h = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    torch.testing.assert_close(mixer.output_gate(g, h), rms_norm(g, mixer.g_norm.weight) * F.silu(h))
    torch.testing.assert_close(MLGRU(8).output_gate(g, h), torch.sigmoid(g) * h)
    lm = MatMulFreeLM(LMConfig(arch="matmulfree", vocab=11, dim=16, depth=2, official_gate=True))
    assert all(b.mixer.g_norm is not None for b in lm.blocks)
    assert lm(torch.randint(0, 11, (2, 5))).shape == (2, 5, 11)
