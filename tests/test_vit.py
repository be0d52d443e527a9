"""The ViT: shapes, attention mechanics, capture path == fast path, rollout, clear errors."""
import pytest
import torch

from ingur_lib.errors import IngurError
from ingur_lib.models.vit import ViT, ViTConfig, count_params
from ingur_lib.nn.attention import attention_rollout, capture_attention, scaled_dot_product
from ingur_lib.nn.patch_dropout import patch_dropout
from ingur_lib.nn.tokens import PatchEmbed


def small(**kw):
    torch.manual_seed(0)
    return ViT(ViTConfig(**{"image_size": 28, "patch_size": 7, "dim": 32, "depth": 3, "heads": 4, **kw})).eval()


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_shapes(pool):
    m = small(pool=pool)
    x = torch.randn(5, 1, 28, 28)
    assert m.patch_embed(x).shape == (5, 16, 32)
    assert m.tokens(x).shape == (5, 16 + (pool == "cls"), 32)
    assert m(x).shape == (5, 10)


def test_scaled_dot_product_matches_formula_with_mask():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 5, 8).unbind(0)
    mask = torch.rand(5, 5) > 0.3
    mask.fill_diagonal_(True)
    out, w = scaled_dot_product(q, k, v, mask, need_weights=True)
    scores = (q @ k.transpose(-2, -1)) / 8 ** 0.5
    ref = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    torch.testing.assert_close(w, ref)
    torch.testing.assert_close(out, ref @ v)
    fast, none = scaled_dot_product(q, k, v, mask)
    assert none is None
    torch.testing.assert_close(fast, out, atol=1e-5, rtol=1e-4)
    assert (w[..., ~mask] == 0).all()


def test_tensor_scale_folds_into_q():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 6, 8).unbind(0)
    scale = torch.rand(4, 1, 1) + 0.1           # one temperature per head
    fast, _ = scaled_dot_product(q, k, v, scale=scale)
    slow, _ = scaled_dot_product(q, k, v, scale=scale, need_weights=True)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)


def test_capture_equals_fast_path_and_rows_sum_to_one():
    m = small()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        fast = m(x)
        with capture_attention(m) as maps:
            slow = m(x)
        again = m(x)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)
    assert len(maps) == 3 and maps[0].shape == (4, 4, 17, 17)
    for w in maps:
        torch.testing.assert_close(w.sum(-1), torch.ones(4, 4, 17))
    assert all(blk.attn.capture is None for blk in m.blocks), "capture switched off afterwards"
    torch.testing.assert_close(again, fast)


def test_patch_embed_equals_linear_on_flattened_patches():
    torch.manual_seed(0)
    pe = PatchEmbed(8, 4, 3, 6)
    x = torch.randn(2, 3, 8, 8)
    patches = x.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).reshape(2, 4, 48)
    ref = patches @ pe.proj.weight.flatten(1).T + pe.proj.bias
    torch.testing.assert_close(pe(x), ref, atol=1e-5, rtol=1e-4)


def test_rollout_matches_hand_computation():
    a1 = torch.tensor([[[[0.5, 0.5], [0.2, 0.8]]]])
    a2 = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    r1 = (a1[0, 0] + torch.eye(2)) / 2
    r2 = (a2[0, 0] + torch.eye(2)) / 2
    torch.testing.assert_close(attention_rollout([a1, a2])[0], r2 @ r1)
    torch.testing.assert_close(attention_rollout([a1, a2]).sum(-1), torch.ones(1, 2))


def test_bad_sizes_name_the_fix():
    with pytest.raises(IngurError, match="not divisible by patch size 5: use a patch size in"):
        ViT(ViTConfig(image_size=28, patch_size=5))
    with pytest.raises(IngurError, match="heads that divide dim"):
        ViT(ViTConfig(dim=30, heads=4))
    with pytest.raises(IngurError, match="Unknown attention"):
        ViTConfig(attention="nope")
    m = small()
    with pytest.raises(IngurError, match="image_size=32"):
        m(torch.randn(1, 1, 32, 32))


def test_vit_base_param_count_matches_paper():
    """ViT-B/16 at 224 px has 86M parameters (Dosovitskiy et al. 2021, Table 1)."""
    cfg = ViTConfig(image_size=224, patch_size=16, in_chans=3, num_classes=1000, dim=768, depth=12, heads=12,
                    mlp_ratio=4.0)
    with torch.device("meta"):
        n = count_params(ViT(cfg))
    assert abs(n - 86.6e6) / 86.6e6 < 0.01, n


def test_patch_dropout_keeps_prefix_and_a_subset_of_patches_in_order():
    torch.manual_seed(0)
    b, n, d = 5, 16, 8
    x = torch.arange(b * (1 + n), dtype=torch.float)[:, None].expand(-1, d).reshape(b, 1 + n, d)
    y = patch_dropout(x, 0.75, num_prefix=1)
    assert y.shape == (b, 1 + 12, d)                       # round(0.75 * 16) = 12 patches kept
    assert torch.equal(y[:, 0], x[:, 0])                    # the class token always survives
    for i in range(b):
        rows = y[i, 1:, 0] - x[i, 0, 0]                     # each row's original position in the sequence
        assert torch.all(rows[1:] > rows[:-1]) and rows.min() >= 1 and rows.max() <= n
    assert torch.equal(patch_dropout(x, 1.0), x)


def test_patch_dropout_only_in_training_and_checked():
    model = ViT(ViTConfig(image_size=28, patch_size=7, dim=16, depth=1, heads=2, patch_keep=0.5))
    x = torch.randn(3, 1, 28, 28)
    assert model.train().tokens(x).shape[1] == 1 + 8
    assert model.eval().tokens(x).shape[1] == 1 + 16
    with pytest.raises(IngurError, match="patch_keep"):
        ViTConfig(patch_keep=0.0)


def test_causal_flag_equals_the_causal_mask_on_both_paths():
    from ingur_lib.nn.attention import causal_mask
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8) for _ in range(3))
    want, _ = scaled_dot_product(q, k, v, causal_mask(6))
    fast, none = scaled_dot_product(q, k, v, causal=True)
    slow, w = scaled_dot_product(q, k, v, causal=True, need_weights=True)
    assert none is None
    torch.testing.assert_close(fast, want)
    torch.testing.assert_close(slow, want)
    assert torch.all(w.triu(1) == 0) and torch.allclose(w.sum(-1), torch.ones(2, 3, 6))
    with pytest.raises(ValueError, match="not both"):
        scaled_dot_product(q, k, v, causal_mask(6), causal=True)
