"""ingur_lib.speed and the width rounding of nn.prune: the measured tables have the rows, bounds and fields they
promise (tiny sizes: the numbers themselves are recorded on a quiet machine, not asserted)."""
import torch

from ingur_lib import measure, speed
from ingur_lib.models.vit import ViTConfig
from ingur_lib.nn import prune


def test_round_width_goes_to_the_nearest_multiple_within_the_layer():
    assert prune.round_width(64, 60.4, 16) == 64
    assert prune.round_width(128, 101, 16) == 96
    assert prune.round_width(768, 3, 16) == 16  # never below one multiple
    assert prune.round_width(10, 3, 16) == 10   # never above the layer


def test_rounded_masks_keep_the_top_scores_at_rounded_counts():
    g = torch.Generator().manual_seed(0)
    scores = {"block0.attn": torch.rand(64, generator=g), "block0.mlp": torch.rand(128, generator=g)}
    masks = prune.global_masks(scores, 0.5)
    rounded = prune.rounded_masks(scores, masks, 16)
    for k, m in rounded.items():
        n = int(m.sum())
        assert n % 16 == 0 and abs(n - int(masks[k].sum())) <= 8
        assert scores[k][m].min() >= scores[k][~m].max()  # the best-scored dimensions survive


def test_scaled_widths_map_small_blocks_onto_a_deeper_structure():
    cfg = speed.structure_config("DeiT-Ti")
    fractions = [{"attn": 1.0, "mlp": 0.5}, {"attn": 0.5, "mlp": 0.02}]
    widths = speed.scaled_widths(fractions, cfg, 16)
    assert len(widths) == 12
    assert widths[:6] == [{"attn": 192, "mlp": 384}] * 6 and widths[6:] == [{"attn": 96, "mlp": 16}] * 6


TINY = ViTConfig(image_size=16, patch_size=8, in_chans=3, dim=32, depth=4, heads=2, mlp_ratio=4.0)


def test_pruned_structures_time_the_learned_ratios_beside_the_flops_bound():
    g = torch.Generator().manual_seed(0)
    scores = {f"block{i}.{k}": torch.rand(n, generator=g).tolist() for i in range(2) for k, n in (("attn", 8),
                                                                                                      ("mlp", 16))}
    table = speed.pruned_structures(scores, ratios=(0.4, 0.8), structures=(TINY,), batches=(1, 2), multiple=8,
                                    rounds=1, warmup=0, repeats=1)
    assert [(r["ratio"], r["batch"]) for r in table["rows"]] == [(0.4, 1), (0.8, 1), (0.4, 2), (0.8, 2)]
    for r in table["rows"]:
        assert all(w["attn"] % 8 == 0 and w["mlp"] % 8 == 0 for w in r["widths"]) and len(r["widths"]) == 4
        assert r["bound"] > 1 and abs(r["flops_cut"] - (1 - 1 / r["bound"])) < 1e-12
        assert abs(r["of_bound"] - r["speedup"]["median"] / r["bound"]) < 1e-12
    assert table["rows"][0]["structure"] == "ViT 32x4"
    slim = speed.slim_structure(TINY, table["rows"][1]["widths"])
    assert prune.layer_widths(slim) == table["rows"][1]["widths"]
    assert table["setting"]["threads"] == torch.get_num_threads() and table["setting"]["repeats"] == 1


def test_int_kernels_rows_fields_memory_and_error():
    table = speed.int_kernels(widths=(16, 32), batches=(1, 2), tokens=3, rounds=1, warmup=0, repeats=1)
    assert len(table["rows"]) == 8
    for r in table["rows"]:
        assert r["weight_bytes"]["int8"] < r["weight_bytes"]["float32"] / 2  # one byte per weight, not four
        assert r["vs_trained"] < 1e-5  # the kernel computes the trained layer's product
        assert 0 < r["rel_error"] < (0.6 if r["kind"] == "ternary" else 1.0)  # the quantisation's own error
        assert r["speedup"]["int8"]["range"][0] <= r["speedup"]["int8"]["median"] <= r["speedup"]["int8"]["range"][1]
    assert set(table["crossover"]) == {f"int8 {k} batch {b}" for k in ("ternary", "binary") for b in (1, 2)}
    assert "torch._int_mm" in speed.int_report(table)


def test_crossover_is_the_smallest_width_from_which_every_wider_one_wins():
    def row(width, up):
        return {"kind": "ternary", "batch": 1, "width": width, "speedup": {"int8": {"median": up}}}
    assert speed.crossover([row(64, 1.2), row(128, 0.9), row(256, 1.1), row(512, 1.5)], "ternary", 1) == 256
    assert speed.crossover([row(64, 1.2), row(512, 0.5)], "ternary", 1) is None
    assert measure.paired_ratio([3.0], [2.0])["median"] == 1.5


def test_pruned_ops_break_each_models_time_into_kernels():
    scores = {f"block{i}.{k}": torch.linspace(0, 1, n).tolist() for i in range(2) for k, n in (("attn", 8),
                                                                                                  ("mlp", 16))}
    table = speed.pruned_ops(scores, TINY, ratios=(0.5,), batch=2, rounds=2, warmup=0, repeats=1)
    assert list(table["ms_per_op"]) == ["dense", 0.5]
    assert all("aten::addmm" in ops for ops in table["ms_per_op"].values())
    assert "total ms" in speed.ops_report(table)


def test_int_model_times_a_converted_model_beside_the_trained_one():
    from ingur_lib.models.lm import LMConfig, build
    torch.manual_seed(0)
    lm = build(LMConfig(arch="matmulfree", vocab=23, dim=32, depth=1, heads=4, max_len=16))
    r = speed.int_model(lm, torch.randint(0, 23, (2, 16)), rounds=1, warmup=0, repeats=1)
    assert r["weight_bytes"]["int8"] < r["weight_bytes"]["trained"] and r["max_rel_diff"] < 1e-5
    assert r["batch"] == 2 and r["speedup"]["median"] > 0
