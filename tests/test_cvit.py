"""CViT mechanics (Wodajo & Atnafu 2021; official code erprogs/CViT), the forgery generator and chapter 06."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from ingur_lib.chapters import cvit as C
from ingur_lib.data import forgery as FG
from ingur_lib.errors import IngurError
from ingur_lib.exercises import check
from ingur_lib.models.cvit import PAPER_STAGES, CViT, CViTConfig, vgg_features
from ingur_lib.models.vit import ViTConfig
from ingur_lib.nn.attention import capture_attention


def _faces(n=12, size=24):
    """Smooth random images (a pixel of jitter keeps each close to itself), as uint8 faces."""
    g = torch.Generator().manual_seed(0)
    x = FG.gaussian_blur(torch.rand(n, 1, size, size, generator=g), 2.0)
    x = (x - x.amin((1, 2, 3), keepdim=True)) / (x.amax((1, 2, 3), keepdim=True) - x.amin((1, 2, 3), keepdim=True))
    return (x * 255).round().to(torch.uint8)


def test_paper_extractor_has_17_convs_and_maps_224_to_512x7x7():
    f = vgg_features(3, PAPER_STAGES)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in f) == 17
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in f) == 5
    assert all(m.kernel_size == (3, 3) for m in f if isinstance(m, torch.nn.Conv2d))
    assert f(torch.zeros(1, 3, 224, 224)).shape == (1, 512, 7, 7)


def test_cvit_tokens_are_projected_feature_cells():
    torch.manual_seed(0)
    cfg = CViTConfig(ViTConfig(image_size=16, in_chans=1, num_classes=2, dim=8, depth=1, heads=2),
                     stages=((4, 1), (6, 1)), feature_patch=2)
    m = CViT(cfg).eval()
    assert m.grid == 2 and m.pos_embed.shape == (1, 5, 8)
    x = torch.randn(3, 1, 16, 16)
    feat = m.patch_embed.features(x)                                  # (3, 6, 4, 4)
    cells = F.unfold(feat, 2, stride=2).transpose(1, 2)               # (3, 4, 6*2*2) in (c, p, p) order
    want = cells @ m.patch_embed.proj.weight.flatten(1).T + m.patch_embed.proj.bias
    torch.testing.assert_close(m.patch_embed(x), want)
    assert m(x).shape == (3, 2)
    assert isinstance(m.head, torch.nn.Sequential) and m.head[0].out_features == cfg.mlp_head
    with capture_attention(m) as maps:
        m(x)
    assert maps[0].shape == (3, 2, 5, 5)


def test_cvit_config_errors_name_the_fix():
    with pytest.raises(IngurError, match="divisible"):
        CViTConfig(ViTConfig(image_size=20), stages=((4, 1), (4, 1), (4, 1)))
    m = CViT(CViTConfig())
    with pytest.raises(IngurError, match="image_size=32"):
        m(torch.zeros(1, 1, 32, 32))
    with pytest.raises(IngurError, match="held_out"):
        C.Config(FG.ForgeryConfig(), CViTConfig(), ViTConfig(), epochs=1, held_out="neuraltextures")
    with pytest.raises(IngurError, match="train_variants"):
        FG.ForgeryConfig(train_variants=("deepfakes",))


def test_each_model_trains_at_its_own_tuned_lr_and_schedule_and_the_check_scales_it():
    cfg = C.config("standard")
    assert cfg.lr != cfg.vit_lr
    assert cfg.train_config(0, name="ViT").lr == cfg.vit_lr
    assert cfg.train_config(0, name="CViT").lr == cfg.lr
    assert cfg.train_config(0, name="ViT").epochs == cfg.vit_epochs != cfg.epochs
    longer = cfg.train_config(0, 1.5, "ViT")
    assert longer.epochs == 1.5 * cfg.vit_epochs and longer.warmup_epochs == pytest.approx(0.15 * cfg.vit_epochs)
    assert replace(cfg, vit_epochs=None).train_config(0, name="ViT").epochs == cfg.epochs


def test_summary_marks_effects_whose_interval_includes_zero_as_nulls():
    assert C._pm({"mean": 1.0, "std": 2.0, "n": 4}) == "+1.0 ± 1.0 (a null: its 95% interval includes 0)"
    assert C._pm({"mean": -3.0, "std": 2.0, "n": 4}).endswith("a null: its 95% interval includes 0)")  # ±3.18
    assert C._pm({"mean": -4.0, "std": 2.0, "n": 4}) == "-4.0 ± 1.0"


def test_rollouts_of_both_grids_land_on_the_pixel_grid():
    up = C.on_pixels(torch.arange(4.0).view(1, 2, 2), 6)
    assert up.shape == (1, 6, 6) and up[0, 0, 2] == 0 and up[0, 0, 3] == 1 and up[0, 5, 5] == 3


def test_tune_table_bolds_each_models_best_row():
    row = lambda m, lr, p, auc: {"model": m, "lr": lr, "patch": p, "auc": auc, "acc": 60.0, "seconds": 1.0}
    sweep = [row("CViT", 1e-3, None, 90.0), row("CViT", 4e-3, None, 95.0), row("ViT", 1e-3, 4, 80.0),
             row("ViT", 1e-3, 6, 70.0)]
    prov = {"seeds": [100], "commit": "abcdef123", "dataset": {"describe": "train 10 frames; test"}}
    md = C.tune_markdown({"sweep": sweep, "best": {"CViT": sweep[1], "ViT": sweep[2]}, "provenance": prov})
    bold = [l for l in md.splitlines() if l.startswith("| **")]
    assert bold == ["| **CViT** | **VGG** | **0.004** | **95.0** | **60.0** | **1** |",
                    "| **ViT** | **4** | **0.001** | **80.0** | **60.0** | **1** |"]
    assert "seed 100" in md and "abcdef1" in md


def test_blend_is_face_xray_eq1_and_masks_are_soft():
    g = torch.Generator().manual_seed(0)
    t, s = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    m = torch.rand(2, 1, 8, 8, generator=g)
    torch.testing.assert_close(FG.blend(t, s, m), m * s + (1 - m) * t)
    masks = FG.soft_mask(5, 24, g)
    assert masks.shape == (5, 24, 24) and masks.min() >= 0 and masks.max() <= 1
    assert masks[:, 12, 12].min() > 0.9 and masks[:, 0, 0].max() < 0.01      # face centre in, corner out
    assert ((masks > 0.05) & (masks < 0.95)).any()                          # a soft edge


def test_colour_matching_sets_donor_stats_inside_the_mask():
    g = torch.Generator().manual_seed(1)
    t, d = torch.rand(3, 1, 12, 12, generator=g), torch.rand(3, 1, 12, 12, generator=g) * 0.3 + 0.6
    m = torch.zeros(3, 12, 12)
    m[:, 3:9, 2:10] = 1
    out = FG.match_stats(d, t, m)[:, 0][m.bool()].view(3, -1)
    ref = t[:, 0][m.bool()].view(3, -1)
    torch.testing.assert_close(out.mean(1), ref.mean(1))
    torch.testing.assert_close(out.std(1, unbiased=False), ref.std(1, unbiased=False), atol=1e-4, rtol=1e-4)


def test_every_variant_changes_only_the_masked_face():
    g = torch.Generator().manual_seed(2)
    f = _faces(4).float() / 255
    for v in FG.VARIANTS:
        fake, mask = FG.forge(f, v, g, donor=f.flip(0))
        outside = (mask < 1e-4)[:, None]
        assert (fake - f).abs()[outside].max() < 1e-4, v
        assert (fake - f).abs()[~outside].mean() > 0.01, v
    with pytest.raises(IngurError, match="variant"):
        FG.make_source(f, "neuraltextures", g)


def test_split_by_source_before_any_fake_and_no_test_face_in_training():
    faces = _faces(12)
    cfg = FG.ForgeryConfig(n_test_sources=4, frames=3, train_videos=2)
    d = FG.build(cfg, faces, "random faces")
    train_src, test_src = set(d.train.source.tolist()), set(d.test.source.tolist())
    assert not train_src & test_src and len(train_src) == 8 and len(test_src) == 4
    # every training frame is closest (in pixels) to a training face, never to a test face
    fx = faces.float().flatten(1)
    near = torch.cdist(d.train.x.float().flatten(1), fx).argmin(1)
    assert set(near.tolist()) <= train_src
    # the test set: per source one real video and one fake video of every variant, T frames each
    assert len(d.test.y) == 4 * (1 + len(FG.VARIANTS)) * 3
    assert sorted(d.test.variant.unique().tolist()) == [-1, 0, 1, 2, 3]
    assert (d.train.y == 1).sum() == (d.train.y == 0).sum()
    # with two fake videos per source, all four types are still made, equally often
    counts = torch.bincount(d.train.variant[d.train.y == 1], minlength=4)
    assert counts.tolist() == [counts[0].item()] * 4


def test_held_out_variant_never_in_training():
    cfg = FG.ForgeryConfig(n_test_sources=4, frames=2, train_videos=3, train_variants=("color", "warp"))
    d = FG.build(cfg, _faces(10), "random faces")
    assert set(d.train.variant.unique().tolist()) == {-1, 0, 2}
    assert FG.VARIANTS.index("swap") in d.test.variant.tolist()


def test_video_scores_average_the_first_n_frames():
    probs = torch.tensor([0.9, 0.1, 0.5, 0.2, 0.4, 1.0])
    video = torch.tensor([0, 0, 0, 1, 1, 1])
    s, ids = C.video_scores(probs, video, 2)
    torch.testing.assert_close(s, torch.tensor([0.5, 0.3]))
    assert ids.tolist() == [0, 1]


def test_auc_acc_use_sklearn_roc_auc():
    from sklearn.metrics import roc_auc_score
    s, y = torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])
    out = C.auc_acc(s, y)
    assert out["auc"] == pytest.approx(100 * roc_auc_score(y.numpy(), s.numpy())) == pytest.approx(75.0)
    assert out["acc"] == pytest.approx(75.0)


def test_boundary_ratio_prefers_attention_on_the_blend_edge():
    mask = torch.zeros(1, 12, 12)
    mask[:, 3:9, 3:9] = 1
    mask[:, 3:9, 3] = mask[:, 3:9, 8] = 0.5
    edge = 4 * mask * (1 - mask)
    heat_edge = F.adaptive_avg_pool2d(edge[:, None], 6)[:, 0]
    assert C.mask_overlap(heat_edge, mask).item() > 1.5
    assert C.mask_overlap(torch.ones(1, 6, 6), mask).item() == pytest.approx(1.0, abs=1e-4)


def test_exercise_checks_reject_the_library_and_wrong_answers():
    with pytest.raises(Exception):
        check("cvit.paste_face", FG.blend)                      # no colour matching
    with pytest.raises(Exception):
        check("cvit.paste_face", lambda t, d, m: FG.blend(t, d, m))
    check("cvit.paste_face", lambda t, d, m: FG.blend(t, FG.match_stats(d, t, m[None]), m))
    mean_rule = lambda p, v, n: (C.video_scores(p, v, n)[0] > 0.5).long()
    with pytest.raises(AssertionError):
        check("cvit.majority_vote", mean_rule)
    vote = lambda p, v, n: torch.stack([((p[v == i][:n] > 0.5).float().mean() > 0.5) for i in v.unique()]).long()
    check("cvit.majority_vote", vote)


def test_smoke_training_learns_to_detect_unseen_forgeries():
    """40 steps of CViT on resolution-gap fakes spot them on unseen faces far above chance (AUC 50)."""
    cfg = replace(C.config("smoke"), epochs=4)
    data = FG.build(FG.ForgeryConfig(n_test_sources=20, frames=2, train_videos=2, train_variants=("resolution",)))
    r = C.train(cfg, "CViT", data, 0, progress=False)
    assert C.score(r.probs, data.test, variant="resolution")["auc"] > 80
