"""ingur_lib.measure: the one way the book counts parameters and FLOPs, times models and sizes weights."""
import time

import torch
from torch import nn

from ingur_lib import measure
from ingur_lib.models.vit import ViT, ViTConfig


def _vit(**kw):
    torch.manual_seed(0)
    return ViT(ViTConfig(image_size=28, patch_size=7, dim=32, depth=2, heads=2, mlp_ratio=2.0, **kw))


def test_count_params_counts_elements_and_trainable_ones():
    m = nn.Linear(3, 4)
    assert measure.count_params(m) == 16
    m.bias.requires_grad_(False)
    assert measure.count_params(m, trainable_only=True) == 12


def test_flops_of_a_linear_layer_are_two_per_multiply_add():
    assert measure.count_flops(nn.Linear(8, 5, bias=False), torch.randn(3, 8)) == 2 * 3 * 8 * 5


def test_flops_of_a_vit_equal_the_hand_count_attention_included():
    """Patch embedding, per block qkv + proj + MLP and QK^T + AV (2 N^2 d each), the head; 2 per multiply-add."""
    m, x = _vit(), torch.randn(1, 1, 28, 28)
    n, d, depth = 17, 32, 2
    linear = n * (3 * d * d + d * d + 2 * 2 * d * d)
    attention = 2 * n * n * d
    want = 2 * (16 * 49 * d + depth * (linear + attention) + d * 10)
    assert measure.count_flops(m, x) == want
    # the fused kernel is invisible to the counter: that is why attention is routed through its explicit path
    assert measure.count_flops(m, x, explicit_attention=False) == want - 2 * depth * attention


def test_latency_reports_the_median_and_how_it_was_measured():
    m, x = _vit(), torch.randn(4, 1, 28, 28)
    r = measure.latency(m, x, warmup=1, repeats=5)
    # repeats: the timed blocks of torch.utils.benchmark's blocked autorange
    assert r["batch"] == 4 and r["repeats"] >= 1 and r["threads"] == torch.get_num_threads()
    assert r["spread"][0] <= r["seconds"] <= r["spread"][1]
    assert abs(r["items_per_s"] - 4 / r["seconds"]) < 1e-6
    assert m.training  # restored


def test_timeit_gives_seconds_per_call_after_the_warmup():
    calls = []

    def nap():
        calls.append(1)
        time.sleep(0.005)
    times = measure.timeit(nap, warmup=2, repeats=4)
    assert times and all(0.004 < t < 0.05 for t in times)  # one call's time, not a whole block's
    assert len(calls) >= 2 + len(times)  # the warm-up, then every timed block (one call each here)


def test_timeit_times_many_fast_calls_per_block():
    calls = []
    times = measure.timeit(lambda: calls.append(1), warmup=1, repeats=3)
    assert len(calls) > 1000 and max(times) < 1e-4  # the clock's overhead spread over a block of calls


def test_train_throughput_changes_the_weights():
    m, x, y = _vit(), torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    before = m.head.weight.clone()
    r = measure.train_throughput(m, x, y, warmup=0, repeats=2)
    assert r["items_per_s"] > 0 and not torch.equal(before, m.head.weight)


def test_storage_bytes_packs_modules_that_say_how():
    class Packed(nn.Linear):
        def packed_weight_bytes(self):
            return -(-self.weight.numel() // 8)  # 1 bit per weight
    m = nn.Sequential(Packed(16, 8, bias=False), nn.Linear(8, 2))
    b = measure.storage_bytes(m)
    assert b["params"] == 128 + 18 and b["low_bit_params"] == 128
    assert b["float32"] == 4 * 146 and b["bfloat16"] == 2 * 146
    assert b["packed"] == 16 + 4 * 18



def test_bench_compares_same_sized_models_and_reports_a_ratio():
    from ingur_lib.bench import PlainViT, bench, report
    from ingur_lib.models.vit import ViTConfig
    cfg = ViTConfig(image_size=28, patch_size=7, dim=32, depth=1, heads=2)
    assert measure.count_params(PlainViT(cfg)) == measure.count_params(ViT(cfg))
    r = bench(batch=8, rounds=2, repeats=2)
    assert r["params"]["book"] == r["params"]["plain"]
    for kind in ("inference", "training"):
        lo, hi = r[kind]["ratio_range"]
        assert 0 < lo <= r[kind]["ratio"] <= hi
    assert "ratio" in report(r)


def test_plain_vit_computes_the_same_function_as_the_book_vit():
    """The bench's reference is the same network: with the book's weights copied in, the same logits."""
    from ingur_lib.bench import PlainViT
    cfg = ViTConfig(image_size=28, patch_size=7, dim=32, depth=2, heads=2)
    torch.manual_seed(0)
    book, plain = ViT(cfg).eval(), PlainViT(cfg).eval()
    names = {"embed": "patch_embed.proj", "cls": "cls_token", "pos": "pos_embed"}
    for i in range(cfg.depth):
        names.update({f"blocks.{i}.{a}": f"blocks.{i}.{b}" for a, b in (
            ("norm1", "norm1"), ("qkv", "attn.qkv"), ("proj", "attn.proj"), ("norm2", "norm2"),
            ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2"))})
    src = book.state_dict()
    state = {}
    for key in plain.state_dict():
        mod, _, leaf = key.rpartition(".")
        state[key] = src[names[key]] if key in names else src[f"{names.get(mod, mod)}.{leaf}"]
    plain.load_state_dict(state)
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(plain(x), book(x))


def test_book_vit_runs_exactly_the_plain_vits_kernels():
    """Below Python the two models are one program: the same ATen operators, the same number of times
    (a stray copy, mask or dropout kernel in the book's ViT would show here, whatever the timing noise)."""
    from ingur_lib.bench import PlainViT, kernel_counts
    cfg = ViTConfig(image_size=28, patch_size=7, dim=32, depth=2, heads=2)
    x = torch.randn(2, 1, 28, 28)
    book, plain = kernel_counts(ViT(cfg), x), kernel_counts(PlainViT(cfg), x)
    assert book == plain and book["aten.addmm"] == 4 * cfg.depth + 1  # qkv, proj, fc1, fc2 per block; the head


def test_alternated_times_every_callable_each_round_in_reversed_order():
    order = []
    fns = {name: (lambda n=name: order.append(n)) for name in ("a", "b")}
    out = measure.alternated(fns, rounds=3, warmup=0, repeats=1)
    assert [len(v) for v in out.values()] == [3, 3]
    # blocked autorange calls each many times in a row; rounds a b | b a | a b then read a, b, a, b (the same
    # order every round, a b | a b | a b, would read a, b, a, b, a, b)
    runs = [n for i, n in enumerate(order) if i == 0 or order[i - 1] != n]
    assert runs == ["a", "b", "a", "b"]
    r = measure.paired_ratio([2.0, 4.0, 3.0], [1.0, 1.0, 1.0])
    assert r == {"median": 3.0, "range": [2.0, 4.0]}


def test_peak_bytes_sees_the_tensors_a_call_holds_at_once():
    x, w = torch.randn(32, 64), torch.randn(128, 64)
    one = 32 * 128 * 4
    assert measure.peak_bytes(lambda: x @ w.t()) == one
    assert measure.peak_bytes(lambda: torch.relu(x @ w.t()) + 1) >= 2 * one  # two results live at once


def test_op_times_name_the_kernels_a_call_runs():
    x, w = torch.randn(64, 64), torch.randn(64, 64)
    times = measure.op_times(lambda: torch.relu(x @ w), warmup=1, repeats=3)
    assert {"aten::mm", "aten::relu"} <= set(times) and all(t >= 0 for t in times.values())
    assert list(times.values()) == sorted(times.values(), reverse=True)
