"""RandAugment, mixup, the AugReg settings table (Steiner et al. 2021; big_vision configs) and chapter 04."""
import math

import pytest
import torch

from ingur_lib import exercises, ledger
from ingur_lib.data import Augment, image_prepare
from ingur_lib.data.augment import mixup
from ingur_lib.chapters.augreg import augreg_augment
from ingur_lib.data.randaugment import GEOMETRIC, OPS, SETTINGS, apply_op, rand_augment, setting
from ingur_lib.errors import IngurError
from ingur_lib.models.vit import ViT, ViTConfig

MAGNITUDE_OPS = ("solarize", "posterize", "contrast", "brightness", "sharpness") + GEOMETRIC


def _image():
    """A 1-channel 8x8 test card: a bright 2x2 square at rows 2-3, cols 4-5 on a dark ramp."""
    x = torch.linspace(0, 0.3, 64).view(1, 1, 8, 8).clone()
    x[..., 2:4, 4:6] = 0.9
    return x


@pytest.mark.parametrize("op", MAGNITUDE_OPS)
def test_every_op_with_a_magnitude_is_the_identity_at_zero(op):
    x = torch.rand(3, 1, 10, 10, generator=torch.Generator().manual_seed(0))
    x = (x * 255).round() / 255   # exact 8-bit levels, as images are
    for sign in (1.0, -1.0):
        torch.testing.assert_close(apply_op(x, op, 0, torch.full((3,), sign)), x)


def test_translate_moves_content_by_the_papers_fraction_of_the_image():
    x = torch.zeros(1, 1, 28, 28)
    x[..., 10, 10] = 1.0
    # M = 5: 5/10 * 100/224 of 28 px = 6.25 px, nearest sampling -> 6 px; + moves left/up as TF's
    y = apply_op(x, "translate_x", 5)
    assert y[0, 0].nonzero().tolist() == [[10, 4]]
    y = apply_op(x, "translate_y", 5, torch.tensor([-1.0]))
    assert y[0, 0].nonzero().tolist() == [[16, 10]]


def test_rotate_by_90_degrees_equals_rot90():
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    y = apply_op(x, "rotate", 30.0)   # 30/10 * 30 = 90 degrees, counter-clockwise on screen
    torch.testing.assert_close(y, torch.rot90(x, 1, (2, 3)))


def test_shear_x_shifts_rows_in_proportion_to_their_height():
    x = torch.zeros(1, 1, 21, 21)
    x[..., :, 10] = 1.0                # a vertical line through the centre
    y = apply_op(x, "shear_x", 10 / 3)  # shear 0.1: row r moves by -0.1 (r - 10), as TF's ShearX
    for r in (0, 10, 20):
        assert y[0, 0, r].nonzero().flatten().tolist() == [10 - round(0.1 * (r - 10))]


def test_pixel_ops_on_a_known_image():
    x = _image()
    torch.testing.assert_close(apply_op(x, "brightness", 5), (x * 1.45).clamp(0, 1))
    torch.testing.assert_close(apply_op(x, "brightness", 5, torch.tensor([-1.0])), x * 0.55)
    mean = x.mean()
    torch.testing.assert_close(apply_op(x, "contrast", 10), (mean + 1.9 * (x - mean)).clamp(0, 1))
    solar = apply_op(x, "solarize", 5)   # 8-bit levels >= 128 inverted
    torch.testing.assert_close(solar, torch.where(x * 255 >= 128, 1 - x, x))
    poster = apply_op(torch.tensor([[[[200 / 255]]]]), "posterize", 10)  # keep 4 bits: 200 -> 192
    assert round(poster.item() * 255) == 192
    auto = apply_op(x, "auto_contrast", 0)
    assert auto.min() == 0 and auto.max() == 1
    torch.testing.assert_close(auto, (x - x.min()) / (x.max() - x.min()))


def test_equalize_flattens_the_histogram_of_a_two_level_image():
    x = torch.zeros(1, 1, 4, 4)
    x[..., :, 2:] = 40 / 255           # half the pixels at level 0, half at level 40
    y = apply_op(x, "equalize", 0)
    assert sorted({round(v * 255) for v in y.flatten().tolist()}) == [0, 255]
    flat = torch.full((1, 1, 4, 4), 0.5)
    torch.testing.assert_close(apply_op(flat, "equalize", 0), flat)  # one level: unchanged


def test_sharpness_keeps_flat_images_and_borders():
    flat = torch.full((1, 1, 5, 5), 0.4)
    torch.testing.assert_close(apply_op(flat, "sharpness", 10), flat)
    x = _image()
    y = apply_op(x, "sharpness", 10)
    torch.testing.assert_close(y[..., 0, :], x[..., 0, :])
    assert not torch.allclose(y, x)


def test_rand_augment_is_deterministic_under_a_seed_and_per_image():
    x = torch.rand(64, 1, 12, 12, generator=torch.Generator().manual_seed(3))
    a = rand_augment(x, 2, 15, torch.Generator().manual_seed(7))
    b = rand_augment(x, 2, 15, torch.Generator().manual_seed(7))
    c = rand_augment(x, 2, 15, torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_rand_augment_uint8_in_uint8_out_and_zero_layers_is_identity():
    x = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    y = rand_augment(x, 2, 10, torch.Generator().manual_seed(0))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert torch.equal(rand_augment(x, 0, 10, torch.Generator()), x)


def test_magnitude_zero_changes_images_only_through_auto_contrast_and_equalize():
    """AugReg's light1 = RandAugment(2, 0): "actually not nothing" (big_vision's comment)."""
    x = torch.rand(256, 1, 8, 8, generator=torch.Generator().manual_seed(4)) * 0.5 + 0.2
    x = (x * 255).round() / 255
    y = rand_augment(x, 1, 0, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    pick = torch.randint(0, len(OPS), (256,), generator=g)   # the layer's per-image op draw
    touched = torch.isin(pick, torch.tensor([OPS.index("auto_contrast"), OPS.index("equalize")]))
    assert torch.equal((y != x).flatten(1).any(1), touched)


def test_bad_randaugment_arguments_are_clear_errors():
    with pytest.raises(IngurError, match="magnitude"):
        rand_augment(torch.rand(1, 1, 4, 4), 2, 31, torch.Generator())
    with pytest.raises(IngurError, match="num_layers"):
        Augment(randaug_layers=-1)
    with pytest.raises(IngurError, match="Unknown RandAugment op"):
        apply_op(torch.rand(1, 1, 4, 4), "color_jitter", 5)
    with pytest.raises(IngurError, match="Unknown AugReg setting"):
        setting("medium3")
    with pytest.raises(IngurError, match="alphas"):
        Augment(mixup=-0.2)


def test_settings_table_matches_big_vision():
    assert list(SETTINGS) == ["none", "light1", "light2", "medium1", "medium2", "strong1", "strong2"]
    assert SETTINGS["none"] == (0, 0, 0.0) and SETTINGS["light1"] == (2, 0, 0.0)
    assert SETTINGS["light2"] == (2, 10, 0.2) and SETTINGS["medium1"] == (2, 15, 0.2)
    assert SETTINGS["medium2"] == (2, 15, 0.5) and SETTINGS["strong1"] == (2, 20, 0.5)
    assert SETTINGS["strong2"] == (2, 20, 0.8)
    a = augreg_augment("strong1", crop_padding=2)
    assert (a.randaug_layers, a.randaug_magnitude, a.mixup, a.crop_padding) == (2, 20, 0.5, 2)


def test_mixup_blends_images_and_labels_with_one_lambda():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 1, 4, 4, generator=g), torch.nn.functional.one_hot(torch.arange(16) % 10, 10).float()
    mx, my = mixup(x, y, torch.Generator().manual_seed(1), 0.5)
    torch.testing.assert_close(my.sum(1), torch.ones(16))
    lam = my.max(1).values.min().item() if my.max(1).values.min() >= 0.5 else None
    assert lam is not None or my.max(1).values.min() < 0.5
    # one lambda for the batch: every image is lam * own + (1 - lam) * partner with the same lam
    own = my[torch.arange(16), torch.arange(16) % 10]
    assert torch.allclose(own[own < 1], own[own < 1][0]) or (own == 1).all()
    mx2, my2 = mixup(x, y, torch.Generator().manual_seed(1), 0.5)
    assert torch.equal(mx, mx2) and torch.equal(my, my2)
    nx, ny = mixup(x, y, torch.Generator().manual_seed(1), 0.0)   # alpha 0: off
    assert torch.equal(nx, x) and torch.equal(ny, y)


def test_prepare_applies_randaugment_on_pixels_before_normalizing_and_only_in_training():
    x = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    aug = Augment(crop_padding=0, flip=False, randaug_layers=2, randaug_magnitude=10)
    prep = image_prepare((0.5,), (0.25,), aug)
    got = prep((x, torch.zeros(8, dtype=torch.long)), True, torch.Generator().manual_seed(2))[0]
    want = (rand_augment(x.float() / 255, 2, 10, torch.Generator().manual_seed(2)) - 0.5) / 0.25
    torch.testing.assert_close(got, want)
    plain = prep((x, torch.zeros(8, dtype=torch.long)), False, None)[0]
    torch.testing.assert_close(plain, (x.float() / 255 - 0.5) / 0.25)


def test_regularization_switches_reach_the_vit():
    m = ViT(ViTConfig(patch_size=7, dim=16, depth=3, heads=2, dropout=0.1, drop_path=0.1))
    assert [b.drop_path.p for b in m.blocks][-1] == pytest.approx(0.1)
    x = torch.randn(4, 1, 28, 28)
    m.train()
    assert not torch.allclose(m(x), m(x))   # dropout and drop-path draw anew each pass
    m.eval()
    torch.testing.assert_close(m(x), m(x))


def test_sign_form_verdicts():
    assert ledger.judge(-1, -2.0, 0.3, form="sign", tolerance=0.5, n=3)[0] == ledger.REPRODUCED
    assert ledger.judge(-1, 1.0, 0.3, form="sign", tolerance=0.5, n=3)[0] == ledger.NOT_REPRODUCED
    assert ledger.judge(1, 0.6, 1.0, form="sign", tolerance=0.5, n=3)[0] == ledger.INCONCLUSIVE


def test_chapter_config_and_comparisons():
    from ingur_lib.chapters import augreg
    cfg = augreg.config("standard")
    assert cfg.sizes[-1] == 10 * cfg.sizes[0] and len(cfg.seeds) >= 3 and "none" in cfg.settings
    with pytest.raises(IngurError, match="one entry each"):
        augreg.Config(cfg.model, sizes=(500, 5000), epochs=(10,), settings=("none",))
    acc = {500: {"none": [70.0, 71.0, 72.0], "light2": [74.0, 74.5, 75.0], "strong2": [73.0, 74.0, 75.5]},
           5000: {"none": [84.0, 84.5, 85.0], "light2": [85.0, 85.2, 85.4], "strong2": [84.0, 84.5, 85.0],
                  augreg.REG: [82.0, 83.0, 83.5]}}
    assert augreg.best_setting(acc[500]) == "light2" and augreg.best_setting(acc[5000]) == "light2"
    cfg2 = augreg.Config(cfg.model, sizes=(500, 5000), epochs=(1, 1), settings=("none", "light2", "strong2"),
                         reg_sizes=(5000,))
    rows = {r["claim"]: r for r in augreg._comparisons(acc, cfg2)}
    assert rows["augreg_worth_10x_data"]["ours"] == pytest.approx(74.5 - 84.5)
    # the strongest setting run (strong2): +3.17 over none on 500 images, +0 on 5000
    assert rows["less_data_more_aug"]["ours"] == pytest.approx((74.1667 - 71) - 0, abs=1e-3)
    assert rows["regularization_hurts_small"]["ours"] == pytest.approx(82.8333 - 84.5, abs=1e-3)


def _shifted(x, m, sign):
    """A student's translate_x for one image, by padding with black and cropping (not the chapter's loop)."""
    k = round(m / 10 * 100 / 224 * x.shape[-1])
    padded = torch.nn.functional.pad(x, (k, k))
    start = k + int(sign) * k
    return padded[..., start:start + x.shape[-1]]


def test_exercise_checks_reject_wrong_answers_and_accept_right_ones():
    from ingur_lib.chapters import augreg
    exercises.check("augreg.translate_x", lambda x, m, s: torch.stack([_shifted(xi, m, si) for xi, si in zip(x, s)]))
    with pytest.raises(AssertionError, match="library"):
        exercises.check("augreg.translate_x", lambda x, m, s: augreg.apply_op(x, "translate_x", m, s))
    exercises.check("augreg.mixup", lambda x, y, lam: (lam * x + (1 - lam) * x.roll(1, 0),
                                                       lam * y + (1 - lam) * y.roll(1, 0)))
    with pytest.raises(AssertionError):
        exercises.check("augreg.mixup", lambda x, y, lam: (lam * x + (1 - lam) * x.roll(1, 0), y))
    with pytest.raises(AssertionError):
        exercises.check("augreg.mixup", mixup)


def test_smoke_training_learns_with_randaugment_and_mixup():
    from dataclasses import replace
    from ingur_lib.chapters import augreg
    cfg = replace(augreg.config("smoke"), n_test=500)   # light2: RandAugment(2, 10) + mixup 0.2
    data = augreg.load_data(cfg, cfg.sizes[0], 0)
    r = augreg.train_setting(cfg, "light2", data, 0, progress=False)
    assert r.test_acc > 0.4, r.test_acc     # chance is 0.1
    assert math.isfinite(r.history.last("train_loss"))


def test_convergence_check_uses_the_ledger_rule_per_setting():
    from ingur_lib.chapters import augreg
    acc = {200: {"none": [60.0, 61.0, 62.0], "medium2": [55.0, 56.0, 57.0]}}
    longer = {200: {"none": [60.5, 61.0, 62.5], "medium2": [58.0, 59.0, 60.0]}}
    effects = {"reg": {"mean": -1.7, "std": 0.5, "n": 3}, "noise": {"mean": 0.1, "std": 1.0, "n": 3}}
    conv = augreg.convergence_checks(acc, longer, 1.5, (0, 1, 2))
    assert set(conv) == {"none/n=200", "medium2/n=200"} and not any("rule" in c for c in conv.values())
    none, medium = conv["none/n=200"], conv["medium2/n=200"]
    assert none["change"]["mean"] == pytest.approx(1 / 3) and none["seeds"] == [0, 1, 2] and none["factor"] == 1.5
    assert augreg.judge(none, effects)["converged"] is True        # 0.33 < 1.7, the smallest resolved effect
    assert augreg.judge(none, effects)["smallest_name"] == "reg"    # the unresolved 0.1 does not count
    assert augreg.judge(medium, effects)["converged"] is False      # +3.0 > 1.7: medium2 wanted more steps


def test_budget_pair_matches_flops_and_bad_longer_settings_are_clear_errors():
    from dataclasses import replace
    from ingur_lib import measure
    from ingur_lib.chapters import augreg
    from ingur_lib.models.vit import ViT
    cfg = augreg.config("standard")
    data = augreg.load_data(replace(cfg, n_test=10), 200, 0)
    ep = augreg.budget_epochs(cfg, data)
    x = data.test_x[:1].float()
    big, small = (ViT(augreg.model_config(cfg, data, model=m)) for m in (cfg.budget.big, cfg.budget.small))
    assert big.cfg.patch_size > small.cfg.patch_size and big.cfg.dim > small.cfg.dim
    assert ep["big"] * measure.count_flops(big, x) == pytest.approx(ep["small"] * measure.count_flops(small, x))
    with pytest.raises(IngurError, match="longer_settings"):
        replace(cfg, longer_settings=("strong2",))
    with pytest.raises(IngurError, match="budget.size"):
        replace(cfg, budget=replace(cfg.budget, size=123))


def test_more_steps_text_compares_the_augmented_gain_with_the_plain_gain():
    from ingur_lib.chapters import augreg
    acc = {200: {"none": [60.0, 61.0, 62.0], "medium2": [55.0, 56.0, 57.0]},
           2000: {"none": [80.0, 81.0, 82.0], "medium2": [70.0, 71.0, 72.0]}}
    longer = {200: {"none": [60.0, 61.5, 62.0], "medium2": [60.0, 62.0, 61.0]},
              2000: {"none": [81.0, 81.0, 83.0], "medium2": [71.0, 71.5, 73.0]}}
    conv = augreg.convergence_checks(acc, longer, 1.5, (0, 1, 2))
    text = augreg.more_steps_text(conv)
    assert "at 200 images `medium2` gained +4.83" in text and ": more steps than" in text
    assert "at 2,000 images `medium2` gained +0.17" in text and "no resolved need" in text


def test_convergence_runs_cover_the_regularized_twin_and_smallest_size_settings(monkeypatch):
    from types import SimpleNamespace
    from ingur_lib.chapters import augreg
    calls = []

    def fake_train(cfg, setting, data, seed=0, reg=False, longer=1.0, progress=True, model=None):
        calls.append((len(data.train_y), setting, reg, longer))
        return SimpleNamespace(test_acc=0.5 + 0.1 * reg + 0.01 * longer)

    monkeypatch.setattr(augreg, "train_setting", fake_train)
    monkeypatch.setattr(augreg, "load_data", lambda cfg, n, seed=0: SimpleNamespace(train_y=[0] * n))
    cfg = augreg.Config(augreg.config("smoke").model, sizes=(20, 200), epochs=(1, 1),
                        settings=("none", "light2", "medium2"), reg_sizes=(200,), seeds=(0, 1),
                        longer_settings=("none", "medium2", augreg.REG), longer_smallest=("light2",))
    acc, longer = augreg._grid(cfg, cfg.seeds, progress=False)
    assert {n: sorted(per) for n, per in longer.items()} == {
        20: ["light2", "medium2", "none"], 200: ["medium2", "none", augreg.REG]}
    assert (200, "none", True, 1.5) in calls and (20, "none", True, 1.5) not in calls
    assert longer[200][augreg.REG] == pytest.approx([61.5, 61.5]) and acc[200][augreg.REG] == [61.0, 61.0]
    with pytest.raises(IngurError, match="longer_settings"):
        augreg.Config(cfg.model, sizes=(20,), epochs=(1,), settings=("none",), longer_settings=(augreg.REG,))
