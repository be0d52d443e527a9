"""Chapter 10, the capstone: the recipe's switches build the chapters' own modules, the deployed file is
measured, fronts are the non-dominated models, and one cell of the pipeline learns."""
import pytest
import torch
from torch import nn

from ingur_lib import measure
from ingur_lib.errors import IngurError
from ingur_lib.fronts import dominates, front
from ingur_lib.models.binaryvit import BinaryViT
from ingur_lib.models.combined import Recipe, build, ternary_linears
from ingur_lib.models.deit import DistilledViT
from ingur_lib.models.vit import ViT, ViTConfig
from ingur_lib.nn.quant import BitLinear, unpack_ternary

BASE = ViTConfig(patch_size=7, dim=32, depth=2, heads=2)


def test_each_switch_builds_the_chapters_own_module():
    assert type(build(Recipe(), BASE)) is ViT
    assert isinstance(build(Recipe(distill=True), BASE), DistilledViT)
    m = build(Recipe(spt_lsa=True, cait=True), BASE)
    assert (m.cfg.tokenizer, m.cfg.attention, len(m.class_blocks)) == ("spt", "lsa", 2) and m.cfg.layer_scale
    b = build(Recipe(weights="binary"), BASE)
    assert isinstance(b, BinaryViT) and b.cfg.dims == (32,) and b.cfg.depths == (2,)
    assert (b.cfg.pool, b.cfg.multi_pool, b.cfg.affine) == ("mean", True, True)


@pytest.mark.parametrize("bad, match", [(dict(weights="int4"), "Unknown weights"), (dict(prune=1.0), "prune=1.0"),
                                        (dict(weights="binary", spt_lsa=True), "BinaryViT's own blocks")])
def test_a_recipe_that_cannot_be_built_says_why(bad, match):
    with pytest.raises(IngurError, match=match):
        Recipe(**bad)


def test_ternary_swaps_every_block_linear_and_keeps_its_weights():
    torch.manual_seed(0)
    model = build(Recipe(cait=True), BASE)
    before = {n: m.weight.detach().clone() for n, m in model.named_modules() if type(m) is nn.Linear}
    ternary_linears(model)
    swapped = {n for n, m in model.named_modules() if isinstance(m, BitLinear)}
    assert swapped == {n for n in before if n.startswith(("blocks", "class_blocks"))}   # all of them, only those
    assert type(model.head) is nn.Linear and "head" in before
    for n in swapped:
        assert torch.equal(model.get_submodule(n).weight, before[n])
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_the_deployed_file_stores_ternary_codes_in_two_bits():
    torch.manual_seed(0)
    dense, tern = build(Recipe(), BASE), ternary_linears(build(Recipe(), BASE))
    state = measure.deployed_state(tern)
    layer = tern.blocks[0].mlp.fc1
    codes = unpack_ternary(state["blocks.0.mlp.fc1.weight_codes"], layer.weight.shape)
    assert torch.equal(codes, layer.ternary()[0]) and "blocks.0.mlp.fc1.weight" not in state
    packed = measure.storage_bytes(tern)["packed"]
    # the file is the packed count plus its container (names, headers): within a few kB of it
    assert packed <= measure.saved_bytes(tern) <= packed + 40_000
    assert measure.saved_bytes(tern) < 0.5 * measure.saved_bytes(dense)


def test_the_front_keeps_exactly_the_undominated_models():
    pts = {"big": (10.0, 90.0), "small": (1.0, 80.0), "mid": (5.0, 85.0), "worse": (6.0, 84.0), "tie": (5.0, 85.0)}
    assert dominates(pts["mid"], pts["worse"]) and not dominates(pts["mid"], pts["tie"])
    assert front(pts) == ["small", "mid", "tie", "big"]


def test_a_pair_is_judged_by_its_interaction_with_the_plain_vit():
    from ingur_lib.chapters import capstone
    eff = capstone.effects(("ViT", "distill", "VTP", "distill+VTP"))
    assert eff["distill vs ViT"] == ("distill", "ViT")
    assert eff["distill+VTP: interaction"] == {"distill+VTP": 1, "distill": -1, "VTP": -1, "ViT": 1}


def test_a_smoke_cell_learns_and_is_measured():
    from ingur_lib.chapters import capstone
    cfg = capstone.config("smoke")
    out = capstone.train_cell("smoke", None, cfg.lrs, "ViT", 0, 1.0)
    assert out["metric"] > 50   # ten classes: chance is 10%
    model = capstone.unpack(out["model"])
    assert out["params"] == measure.count_params(model) and out["bytes"] == measure.saved_bytes(model)
