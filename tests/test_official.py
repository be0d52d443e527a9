"""Each chapter's mechanism beside its paper's official code, with the same weights on the same inputs
(book/how-to-run.md, "Against the official code").

The official sources are never copied into this repository: each test reads the file it needs from a snapshot of
the official repository under $INGUR_OFFICIAL_DIR (default /work/.mirror), either a git directory
`<owner>+<name>/repo` (read at HEAD) or a checkout `<owner>+<name>/` or `<name>/`, and executes only the classes
and functions it names, with the file's imports replaced by what they resolve to (torch) or by stubs (the
`transformers` and `timm` names the classes only mention). A test is skipped, saying so, when its snapshot is
absent (CI has none). Where ours deviates on purpose, the test asserts the measured difference, and the chapter's
Deviations cell states it.

Last compared (snapshot HEADs): Phuoc-Hoan-Le/BinaryViT ca16a43, facebookresearch/deit 7e160fe,
aanna0701/SPT_LSA_ViT 54bd796, erprogs/CViT 00b8e6d, ridgerchu/matmulfreellm a016f72,
huggingface/pytorch-image-models aa4b5850, google-research/big_vision 0127fb6. Papers without an official PyTorch
module: [6] (tensor2tensor), [3] (big_vision, TF/JAX: its RandAugment magnitude formulas are compared), [8] (no
code released).
"""
from __future__ import annotations

import ast
import copy
import math
import os
import subprocess
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

OFFICIAL_DIR = Path(os.environ.get("INGUR_OFFICIAL_DIR", "/work/.mirror"))
BINARYVIT = "Phuoc-Hoan-Le/BinaryViT"


def official_source(repo: str, path: str) -> str:
    """The text of `path` in the snapshot of `repo` (owner/name); skips the test when there is none."""
    owner_name = repo.replace("/", "+")
    git_dir = OFFICIAL_DIR / owner_name / "repo"
    if (git_dir / "HEAD").is_file():
        out = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"],
                             capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout
    for tree in (OFFICIAL_DIR / owner_name, OFFICIAL_DIR / repo.split("/")[1]):
        if (tree / path).is_file():
            return (tree / path).read_text()
    pytest.skip(f"no snapshot of {repo} with {path} under {OFFICIAL_DIR} (set INGUR_OFFICIAL_DIR to a folder "
                f"holding {owner_name}/repo, a git directory, or a checkout)")


def official(repo: str, path: str, names: tuple[str, ...], **namespace) -> SimpleNamespace:
    """The top-level classes, functions and constants `names` of an official file, executed with `namespace` as globals
    (torch, nn, F, math and typing's names are there already); the rest of the file is not run. Decorators of
    functions are dropped (in these files they only register functions with torch.fx tracing)."""
    tree = ast.parse(official_source(repo, path))
    nodes = [n for n in tree.body if _defines(n) in names]
    for node in nodes:
        if isinstance(node, ast.FunctionDef):
            node.decorator_list = []
    missing = set(names) - {_defines(n) for n in nodes}
    assert not missing, f"{repo}/{path} no longer defines {sorted(missing)}"
    scope = {"torch": torch, "nn": nn, "F": F, "math": math, **vars(typing), **namespace}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), f"{repo}/{path}", "exec"), scope)
    return SimpleNamespace(**{name: scope[name] for name in names})


def _defines(node: ast.stmt) -> str | None:
    """The name a top-level class, function or single-name constant (`_MAX_LEVEL = 10.`) defines."""
    if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def copy_params(dst: nn.Module, src: nn.Module, names: dict[str, str]) -> None:
    """dst.<ours> <- src.<theirs> for every (ours, theirs) in `names` (shapes must agree)."""
    theirs = dict(src.named_parameters())
    with torch.no_grad():
        for ours, param in dst.named_parameters():
            if ours in names:
                param.copy_(theirs[names[ours]].reshape(param.shape))


def _randomized(module: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter drawn afresh (LayerScale and norms included), so that no mapping hides behind an init."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)
    return module


def _same_state(ours: nn.Module, theirs: nn.Module, rename: dict[str, str] | None = None) -> None:
    """ours <- theirs by state-dict name (their names renamed where `rename` says); every name must match."""
    rename = rename or {}
    state = {rename.get(k, k): v for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state, strict=True)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a - b| / |b|, both as norms over every element."""
    return ((a - b).norm() / b.norm()).item()


# ---------------------------------------------------------------- 08 BinaryViT [1]

def _binaryvit_quant() -> SimpleNamespace:
    return official(BINARYVIT, "transformer/utils_quant.py",
                    ("BinaryQuantizer", "BiTBinaryQuantizer", "QuantizeLinear"))


def _binaryvit_layers(path: str = "transformer/modeling_vit_extra_res_pyramid.py") -> SimpleNamespace:
    """The official block (ViTLayer) and its parts; DropPath is never built (drop_path 0). Read from the pyramid
    file, whose ViTLayer is modeling_vit_extra_res.py's with the grid read from the tokens (the non-pyramid file
    hard-codes DeiT-S's 384 channels on a 14x14 grid) and per-stage sizes (one stage here, reduction ratio 1: no
    key/value pooling)."""
    q = _binaryvit_quant()
    return official(BINARYVIT, path, ("RPReLU", "LayerScale", "ViTSelfAttention", "ViTSelfOutput", "ViTAttention",
                                      "ViTIntermediate", "ViTOutput", "ViTLayer"),
                    ViTConfig=object, DropPath=None, **vars(q))


def _binaryvit_config(dim: int, heads: int, hidden: int, norm_layer=nn.LayerNorm) -> SimpleNamespace:
    """The official `config` of one binary stage (as models.get_model fills it): multi-pooling on, no layer scale."""
    return SimpleNamespace(hidden_size=[dim], num_attention_heads=[heads], intermediate_size=[hidden],
                           reduction_ratio=[1], stages=[0], layer_norm_eps=1e-5, norm_layer=norm_layer,
                           weight_bits=1, input_bits=1, clip_val=2.5, attention_probs_dropout_prob=0.0,
                           hidden_dropout_prob=0.0, chunk_size_feed_forward=0, disable_layerscale=True,
                           avg_res3=True, avg_res5=True)


def test_binaryvit_binary_linear_equals_official_quantize_linear():
    """1-bit weights (row-centred sign, mean|W| per row, STE through the clamp) and Bi-Real activations."""
    from ingur_lib.nn.binary import BinaryLinear
    torch.manual_seed(0)
    cfg = SimpleNamespace(weight_bits=1, input_bits=1, clip_val=2.5)
    theirs, ours = _binaryvit_quant().QuantizeLinear(24, 16, config=cfg), BinaryLinear(24, 16, bias=False)
    copy_params(ours, theirs, {"weight": "weight"})
    x = torch.randn(2, 5, 24) * 0.8
    xs = [x.clone().requires_grad_() for _ in range(2)]
    out_t, out_o = theirs(xs[0]), ours(xs[1])
    torch.testing.assert_close(out_o, out_t)
    (out_t * out_o.detach()).sum().backward()
    (out_o * out_o.detach()).sum().backward()
    torch.testing.assert_close(xs[1].grad, xs[0].grad)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)


def test_binaryvit_attention_bits_equal_official_bit_quantizer():
    """Probabilities to {0, alpha}: values and both gradients (BiT's quantiser)."""
    from ingur_lib.nn.binary import binarize_attention
    torch.manual_seed(0)
    p = torch.rand(2, 3, 7, 7).softmax(-1)
    grad = torch.randn_like(p)
    outs = []
    for fn in (_binaryvit_quant().BiTBinaryQuantizer.apply, binarize_attention):
        pi, alpha = p.clone().requires_grad_(), torch.tensor(0.12, requires_grad=True)
        out = fn(pi, alpha)
        (out * grad).sum().backward()
        outs.append((out, pi.grad, alpha.grad.reshape(())))
    for o, t in zip(outs[1], outs[0]):
        torch.testing.assert_close(o, t)


def test_binaryvit_rprelu_and_affine_equal_official():
    from ingur_lib.models.binaryvit import Affine
    from ingur_lib.nn.binary import RPReLU
    torch.manual_seed(0)
    off = _binaryvit_layers()
    theirs, ours = off.RPReLU(6), RPReLU(6)
    for p in theirs.parameters():
        nn.init.normal_(p)
    copy_params(ours, theirs, {"gamma": "move1", "slope": "prelu.weight", "zeta": "move2"})
    x = torch.randn(2, 5, 6)
    torch.testing.assert_close(ours(x), theirs(x))
    scale, aff = off.LayerScale(6), Affine(6, 0.1)
    torch.testing.assert_close(aff.a, scale.alpha)  # both start at 0.1
    nn.init.normal_(scale.move)
    copy_params(aff, scale, {"a": "alpha", "b": "move"})
    torch.testing.assert_close(aff(x), scale(x))


def test_binaryvit_token_batchnorm_equals_official_batchnorm_t():
    """norm='batch' is the official BatchNormT (--replace-ln-bn), in training and in eval mode."""
    from ingur_lib.models.binaryvit import TokenBatchNorm
    theirs = official(BINARYVIT, "models.py", ("BatchNormT",)).BatchNormT(6, eps=1e-5)
    ours = TokenBatchNorm(6)
    torch.manual_seed(0)
    for _ in range(3):
        x = torch.randn(4, 9, 6) * 3 + 1
        torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.running_var, theirs.running_var)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x))


def _official_pool_branch(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the official block's multi-pooling contribution to its output, the normed tokens it read)."""
    seen = []
    hook = layer.layernorm_after.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        full = layer(x)[0]
        for name in ("w3", "h3", "w5", "h5"):
            getattr(layer, f"layerscale_{name}").alpha.zero_(), getattr(layer, f"layerscale_{name}").move.zero_()
        without = layer(x)[0]
    hook.remove()
    return full - without, seen[0]


def _pool_layers(grid: int = 4, dim: int = 32, unit: bool = False, layer: nn.Module | None = None):
    """The official block on a `grid` x `grid` token grid with multi-pooling affines (random, or a=1, b=0: the plain
    averages), and our MultiPool (the padding counted) with the same affines. POOLS = (1,3), (3,1), (1,5), (5,1):
    the official w3, h3, w5, h5."""
    from ingur_lib.models.binaryvit import MultiPool
    torch.manual_seed(0)
    layer = layer or _binaryvit_layers().ViTLayer(_binaryvit_config(dim, 2, 2 * dim), 0)
    ours = MultiPool(dim, (grid, grid), count_pad=True)
    with torch.no_grad():
        for k, name in enumerate(("w3", "h3", "w5", "h5")):
            scale = getattr(layer, f"layerscale_{name}")
            scale.alpha.fill_(1.0) if unit else nn.init.normal_(scale.alpha)
            scale.move.zero_() if unit else nn.init.normal_(scale.move, std=0.1)
            ours.a[k], ours.b[k] = scale.alpha, scale.move
    return layer, ours, torch.randn(3, grid * grid, dim)


def test_binaryvit_multi_pool_equals_official_branch_with_the_padding_counted():
    """The official branch reads the post-attention norm and counts the zero padding (AvgPool2d's default): our
    MultiPool(count_pad=True) on the same normed tokens gives its contribution to float precision."""
    layer, ours, x = _pool_layers()
    contribution, normed = _official_pool_branch(layer, x)
    torch.testing.assert_close(ours(normed), contribution, rtol=1e-5, atol=1e-5)


def test_binaryvit_multi_pool_equals_official_branch_of_the_deit_ladder():
    """The same on the file the ladder's runs use (modeling_vit_extra_res.py), at its hard-coded DeiT-S size."""
    off = _binaryvit_layers("transformer/modeling_vit_extra_res.py")
    cfg = SimpleNamespace(**{**vars(_binaryvit_config(384, 6, 1536)), "hidden_size": 384, "num_attention_heads": 6,
                             "intermediate_size": 1536})
    layer, ours, x = _pool_layers(14, 384, layer=off.ViTLayer(cfg))
    contribution, normed = _official_pool_branch(layer, x)
    torch.testing.assert_close(ours(normed), contribution, rtol=1e-5, atol=1e-5)


def test_binaryvit_multi_pool_default_differs_from_official_by_the_padding():
    """Our default (count_pad=False, the recorded runs) on a 4x4 grid: every token is an edge token for the 5-wide
    kernels (3 or 4 of 5 places real), half of them for the 3-wide ones, so the summed plain averages are ~35%
    larger than the official ones (norm of the difference over the official's; 31% for 3-wide, 47% for 5-wide)."""
    from ingur_lib.models.binaryvit import MultiPool
    layer, counted, x = _pool_layers(unit=True)
    contribution, normed = _official_pool_branch(layer, x)
    ours = MultiPool(32, (4, 4))
    ours.load_state_dict(counted.state_dict())
    assert relative(ours(normed), contribution) == pytest.approx(0.35, abs=0.02)


def test_binaryvit_attention_alpha_starts_at_the_official_constant():
    """The official binary attention's alpha (att_prob_clip) starts at 0.005 whatever the token count; ours at 2/N
    unless attn_alpha is given."""
    from ingur_lib.models.binaryvit import BinaryAttention, BinaryViTConfig
    cfg = SimpleNamespace(**{**vars(_binaryvit_config(32, 2, 64)), "hidden_size": [32]})
    theirs = _binaryvit_layers().ViTSelfAttention(cfg, 0).att_prob_clip
    ours = BinaryAttention(BinaryViTConfig(dims=(32,), heads=2, attn_alpha=theirs.item()), 32, 17).alpha
    torch.testing.assert_close(ours, theirs)
    assert BinaryAttention(BinaryViTConfig(dims=(32,), heads=2), 32, 17).alpha.item() == pytest.approx(2 / 17)


def test_binaryvit_distillation_is_the_official_loss_over_the_classes():
    """The official DistributionLoss is the soft cross-entropy to the teacher's softmax, averaged over the batch;
    ours (08: KL at tau 1, summed and divided by batch x classes) is it minus the teacher's entropy, over C: the
    same gradient divided by the number of classes."""
    from ingur_lib.nn.distill import distillation_loss
    theirs_fn = official(BINARYVIT, "losses.py", ("DistributionLoss",)).DistributionLoss()
    ours_fn = distillation_loss(None, "soft", alpha=1.0, tau=1.0, precomputed=True)
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 10), torch.randn(8, 10) * 2, torch.randint(0, 10, (8,))
    grads = []
    for fn in (lambda v: theirs_fn(v, t), lambda v: ours_fn(lambda u: u, (v, y, t))[0]):
        v = s.clone().requires_grad_()
        loss = fn(v)
        loss.backward()
        grads.append((loss.detach(), v.grad))
    entropy = -(t.softmax(1) * t.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(grads[1][0] * 10, grads[0][0] - entropy)
    torch.testing.assert_close(grads[1][1] * 10, grads[0][1])


def test_binaryvit_official_runs_use_batchnorm_and_pool_keys_values_in_the_first_stages():
    """Facts the chapter's Deviations state: all six official binary runs pass --replace-ln-bn, and the pyramid's
    first two stages average-pool the tokens that keys and values read (reduction ratios 8 and 4)."""
    import json
    for script in ("run_reactdeit-small-patch16-224.sh", "run_reactdeit-small-patch16-224-avg_pool.sh",
                   "run_reactdeit-small-patch16-224-avg_pool-multi_branch.sh",
                   "run_reactdeit-small-patch16-224-avg_pool-multi_branch-ls.sh", "run_binaryvit-small-patch4-224.sh",
                   "run_binaryvit-small-patch4-224-some-fp.sh"):
        assert "--replace-ln-bn" in official_source(BINARYVIT, f"scripts/{script}"), script
    config = json.loads(official_source(BINARYVIT, "configs/binaryvit-small-patch4-224/config.json"))
    assert config["reduction_ratio"] == [8, 4, 1, 1]
    layer = _binaryvit_layers().ViTSelfAttention(
        SimpleNamespace(**{**vars(_binaryvit_config(32, 2, 64)), "reduction_ratio": [2]}), 0)
    assert isinstance(layer.pool, nn.AvgPool2d) and layer.pool.kernel_size == 2


# ---------------------------------------------------------------- 05 SPT + LSA [2]

SPT_LSA = "aanna0701/SPT_LSA_ViT"


def _spt_lsa(path: str, names: tuple[str, ...], **namespace) -> SimpleNamespace:
    einops = pytest.importorskip("einops", reason="the official SPT/LSA classes use einops (pip install einops)")
    from einops.layers.torch import Rearrange
    return official(SPT_LSA, path, names, einsum=torch.einsum, rearrange=einops.rearrange, repeat=einops.repeat,
                    Rearrange=Rearrange, init_weights=lambda m: None, DropPath=None, **namespace)


def test_spt_equals_official_shifted_patch_tokenization():
    """Four diagonal half-patch shifts, (row, col, channel) flattening, LayerNorm over the patch, Linear."""
    from ingur_lib.nn.spt import ShiftedPatchTokenizer
    off = _spt_lsa("models/SPT.py", ("ShiftedPatchTokenization", "PatchShifting"))
    torch.manual_seed(0)
    theirs = off.ShiftedPatchTokenization(3, 32, 4, is_pe=True)  # the official ViT's call (in_dim fixed at 3)
    ours = ShiftedPatchTokenizer(16, 4, 3, 32)
    for p in theirs.merging[1].parameters():
        nn.init.normal_(p)
    copy_params(ours, theirs, {"norm.weight": "merging.1.weight", "norm.bias": "merging.1.bias",
                               "proj.weight": "merging.2.weight", "proj.bias": "merging.2.bias"})
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(ours(x), theirs(x))


def _lsa_pair(heads: int = 2, dim: int = 32, n: int = 17):
    from ingur_lib.nn.lsa import LocalitySelfAttention
    off = _spt_lsa("models/vit.py", ("Attention",))
    torch.manual_seed(0)
    theirs = off.Attention(dim, n - 1, heads=heads, dim_head=dim // heads, is_LSA=True)
    nn.init.normal_(theirs.to_qkv.weight, std=0.2)
    with torch.no_grad():
        theirs.scale.mul_(torch.tensor([1.0, 2.5]))  # as if trained: one temperature per head
    return theirs, LocalitySelfAttention(dim, heads, qkv_bias=False), torch.randn(2, n, dim)


def test_lsa_equals_official_attention():
    """Per-head learnable temperature multiplying q k^T; the whole diagonal masked, class token included."""
    theirs, ours, x = _lsa_pair()
    copy_params(ours, theirs, {"temperature": "scale", "qkv.weight": "to_qkv.weight",
                               "proj.weight": "to_out.0.weight", "proj.bias": "to_out.0.bias"})
    torch.testing.assert_close(ours(x), theirs(x))


def _spt_lsa_state(theirs: nn.Module, spt: bool) -> dict:
    """The official ViT's state under our ViT's names (the plain patch Linear over (p1 p2 c) as our conv)."""
    rename = [("transformer.layers.", "blocks."), (".0.norm.", ".norm1."), (".0.fn.to_qkv.", ".attn.qkv."),
              (".0.fn.scale", ".attn.temperature"), (".0.fn.to_out.0.", ".attn.proj."), (".1.norm.", ".norm2."),
              (".1.fn.net.0.", ".mlp.fc1."), (".1.fn.net.3.", ".mlp.fc2."), ("mlp_head.0.", "norm."),
              ("mlp_head.1.", "head."), ("pos_embedding", "pos_embed"), ("to_patch_embedding.1.", "patch_embed.proj."),
              ("to_patch_embedding.merging.1.", "patch_embed.norm."),
              ("to_patch_embedding.merging.2.", "patch_embed.proj.")]
    state = {}
    for k, v in theirs.state_dict().items():
        for old, new in rename:
            k = k.replace(old, new)
        state[k] = v
    if not spt:  # Linear (dim, p*p*c) in (p1, p2, c) order -> conv (dim, c, p, p)
        state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].view(32, 4, 4, 3).permute(0, 3, 1, 2)
    return state


@pytest.mark.parametrize("spt_lsa", [True, False], ids=["SL-ViT", "ViT"])
def test_spt_lsa_vit_equals_official(spt_lsa):
    """The official ViT of the chapter (models/vit.py) with and without SPT + LSA against ours (qkv without bias,
    as the official code), same weights: equal to float precision."""
    from ingur_lib.models.vit import ViT, ViTConfig
    spt = _spt_lsa("models/SPT.py", ("ShiftedPatchTokenization", "PatchShifting")).ShiftedPatchTokenization
    off = _spt_lsa("models/vit.py", ("pair", "PreNorm", "FeedForward", "Attention", "Transformer", "ViT"),
                   ShiftedPatchTokenization=spt)
    theirs = _randomized(off.ViT(img_size=16, patch_size=4, num_classes=5, dim=32, depth=2, heads=2, mlp_dim_ratio=2,
                                 dim_head=16, is_LSA=spt_lsa, is_SPT=spt_lsa)).eval()
    ours = ViT(ViTConfig(image_size=16, patch_size=4, in_chans=3, num_classes=5, dim=32, depth=2, heads=2,
                         qkv_bias=False, tokenizer="spt" if spt_lsa else "patch",
                         attention="lsa" if spt_lsa else "mhsa")).eval()
    ours.load_state_dict(_spt_lsa_state(theirs, spt_lsa))
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(ours(x), theirs(x))


# ---------------------------------------------------------------- 04 AugReg [3]: formulas only (big_vision is TF/JAX)

BIG_VISION = "google-research/big_vision"


def _randaug_args(op: str, level: float):
    """big_vision's RandAugment argument for `op` at magnitude `level` (pp/autoaugment.py's level_to_arg), the
    50% sign flip left out (ours draws it per image too)."""
    off = official(BIG_VISION, "big_vision/pp/autoaugment.py",
                   ("_MAX_LEVEL", "_rotate_level_to_arg", "_enhance_level_to_arg", "_shear_level_to_arg",
                    "_translate_level_to_arg", "level_to_arg"), _randomly_negate_tensor=lambda t: t)
    return off.level_to_arg(SimpleNamespace(translate_const=100, cutout_const=40))[op](level)


@pytest.mark.parametrize("level", [5.0, 10.0, 15.0])
def test_augreg_geometric_magnitudes_equal_big_vision(level):
    """Rotate (degrees), shear and translate (100 px of 224 per 10 levels) at the same magnitude."""
    from ingur_lib.data.randaugment import affine_matrix
    one = torch.ones(1)
    theta = affine_matrix("rotate", level, one)[0]
    assert math.degrees(math.atan2(theta[1, 0], theta[0, 0])) == pytest.approx(_randaug_args("Rotate", level)[0])
    assert affine_matrix("shear_x", level, one)[0, 0, 1].item() == pytest.approx(_randaug_args("ShearX", level)[0])
    translate = affine_matrix("translate_x", level, one)[0, 0, 2].item() / 2 * 224  # normalised -> px at 224
    assert translate == pytest.approx(_randaug_args("TranslateX", level)[0], rel=1e-6)


def test_augreg_pixel_magnitudes_differ_from_big_vision_as_documented():
    """04's Deviations: our solarize, posterize and enhance ops take the "increasing" forms (identity at M=0);
    big_vision's map M=0 to a full inversion, a black image and a 0.1 blend. At M=10 the enhance factor agrees."""
    from ingur_lib.data.randaugment import _factor
    assert _randaug_args("Solarize", 0.0) == (0,)  # threshold 0: every pixel inverted; ours inverts none
    assert _randaug_args("Posterize", 0.0) == (0,)  # 0 bits kept: black; ours keeps 8
    assert _randaug_args("Contrast", 0.0)[0] == pytest.approx(0.1)
    assert _factor(0.0, torch.ones(1)).item() == 1.0
    assert _factor(10.0, torch.ones(1)).item() == pytest.approx(_randaug_args("Contrast", 10.0)[0])


# ---------------------------------------------------------------- 02 DeiT [4] and 03 CaiT [5]

DEIT = "facebookresearch/deit"


class _TimmMlp(nn.Module):
    """Stands in for timm's `Mlp` (fc1 -> act -> dropout -> fc2 -> dropout), which cait_models.py imports."""

    def __init__(self, in_features, hidden_features, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(in_features, hidden_features), act_layer(), nn.Linear(
            hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def _cait() -> SimpleNamespace:
    return official(DEIT, "cait_models.py", ("Class_Attention", "Attention_talking_head", "LayerScale_Block_CA",
                                             "LayerScale_Block"), Mlp=_TimmMlp, DropPath=None)


TIMM = "huggingface/pytorch-image-models"


def _timm_block() -> type:
    """timm's ViT `Block` (DeiT's models build on it) with its Attention, Mlp and LayerScale, each read from its
    own file; the explicit attention path (use_fused_attn off), torch's LayerNorm passed as norm_layer."""
    from functools import partial
    attn = official(TIMM, "timm/layers/attention.py", ("maybe_add_mask", "resolve_self_attn_mask", "Attention"),
                    use_fused_attn=lambda: False)
    mlp = official(TIMM, "timm/layers/mlp.py", ("Mlp",), partial=partial, to_2tuple=lambda v: (v, v))
    scale = official(TIMM, "timm/layers/layer_scale.py", ("LayerScale",))
    create = lambda layer, dim, depth=0, **kw: layer(dim, **kw)  # noqa: E731 (timm's _create_attn for a class)
    return official(TIMM, "timm/models/vision_transformer.py", ("Block",), LayerNorm=nn.LayerNorm, Mlp=mlp.Mlp,
                    Attention=attn.Attention, LayerScale=scale.LayerScale, DropPath=None, _create_attn=create,
                    LayerType=object).Block


@pytest.mark.parametrize("layer_scale", [None, 0.1])
def test_vit_block_equals_timm_block(layer_scale):
    """The book's pre-LN block (every ViT chapter) against timm's, which DeiT's models use: same weights,
    same outputs, with and without LayerScale."""
    from ingur_lib.nn.blocks import Block
    theirs = _randomized(_timm_block()(32, 2, mlp_ratio=2.0, qkv_bias=True, init_values=layer_scale,
                                       norm_layer=nn.LayerNorm))
    ours = Block(32, 2, mlp_ratio=2.0, layer_scale=layer_scale)
    _same_state(ours, theirs)
    x = torch.randn(2, 17, 32)
    torch.testing.assert_close(ours(x), theirs(x))


def test_cait_class_attention_block_equals_official():
    from ingur_lib.nn.class_attention import ClassAttentionBlock
    theirs = _randomized(_cait().LayerScale_Block_CA(32, 2, mlp_ratio=4.0, qkv_bias=True, init_values=0.1))
    ours = ClassAttentionBlock(32, 2, mlp_ratio=4.0, qkv_bias=True, layer_scale=0.1)
    _same_state(ours, theirs, {"gamma_1": "ls1.gamma", "gamma_2": "ls2.gamma"})
    x, cls = torch.randn(2, 16, 32), torch.randn(2, 1, 32)
    torch.testing.assert_close(ours(cls, x), theirs(x, cls))


def test_cait_talking_heads_block_equals_official():
    from ingur_lib.nn.blocks import Block
    theirs = _randomized(_cait().LayerScale_Block(32, 4, mlp_ratio=2.0, qkv_bias=True, init_values=0.1))
    ours = Block(32, 4, mlp_ratio=2.0, attention="talking_heads", layer_scale=0.1)
    _same_state(ours, theirs, {"gamma_1": "ls1.gamma", "gamma_2": "ls2.gamma"})
    x = torch.randn(2, 16, 32)
    torch.testing.assert_close(ours(x), theirs(x))


def _official_call_order(model: nn.Module) -> list:
    """Our class-attention blocks called as the official ones are, blk(patches, cls) (ours: blk(cls, patches))."""
    return [lambda x, cls, blk=blk: blk(cls, x) for blk in model.class_blocks]


def test_cait_forward_equals_official_on_our_modules():
    """The official cait_models.forward_features / forward run on our CaiT's modules: positions on the patches
    only, the class token entering after the self-attention stack, the final norm over [class; patches], the
    head on the class token."""
    from ingur_lib.models.vit import ViT, ViTConfig
    names = ("Class_Attention", "Attention_talking_head", "LayerScale_Block_CA", "LayerScale_Block", "cait_models")
    off = official(DEIT, "cait_models.py", names, Mlp=_TimmMlp, DropPath=None, PatchEmbed=None).cait_models
    ours = _randomized(ViT(ViTConfig(image_size=28, patch_size=7, dim=32, depth=2, heads=2, attention="talking_heads",
                                     layer_scale=0.1, class_attention=2)))
    theirs = copy.deepcopy(ours)  # the same modules, run by the official methods
    theirs.__class__ = type("OfficialForward", (ViT,), {"forward_features": off.forward_features,
                                                         "forward": off.forward,
                                                         "blocks_token_only": property(_official_call_order)})
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(ours(x), theirs(x))


def test_cait_layer_norm_epsilon_differs_from_official_by_little():
    """The official CaiT models build their norms with eps 1e-6, ours keep torch's 1e-5 (03's Deviations)."""
    from functools import partial

    from ingur_lib.nn.blocks import Block
    theirs = _randomized(_cait().LayerScale_Block(32, 2, qkv_bias=True, init_values=0.1,
                                                   norm_layer=partial(nn.LayerNorm, eps=1e-6)))
    ours = Block(32, 2, mlp_ratio=4.0, attention="talking_heads", layer_scale=0.1)
    _same_state(ours, theirs, {"gamma_1": "ls1.gamma", "gamma_2": "ls2.gamma"})
    x = torch.randn(2, 16, 32)
    assert relative(ours(x), theirs(x)) < 1e-4


def test_deit_distillation_losses_equal_official():
    """Hard (CE to the teacher's argmax) and soft (tau^2 KL summed over B x C) at alpha 0.5, on a DistilledViT's
    (class, distillation) logits, teacher on the same batch."""
    from ingur_lib.nn.distill import distillation_loss
    loss_cls = official(DEIT, "losses.py", ("DistillationLoss",)).DistillationLoss
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randint(0, 4, (8,))
    teacher, student = nn.Linear(5, 4), nn.Linear(5, 8)
    pair = lambda m: lambda v: tuple(m(v).split(4, dim=1))  # noqa: E731 (a two-head student)
    for kind in ("hard", "soft"):
        theirs = loss_cls(nn.CrossEntropyLoss(), teacher, kind, alpha=0.5, tau=3.0)(x, pair(student)(x), y)
        ours, _ = distillation_loss(teacher, kind, alpha=0.5, tau=3.0)(pair(student), (x, y))
        torch.testing.assert_close(ours, theirs)


def test_deit_distilled_forward_equals_official():
    """The official DistilledVisionTransformer.forward_features / forward run on our DistilledViT (the same
    attribute names): class token at 0, distillation token at 1, both with position embeddings; at test time
    the two heads averaged."""
    from ingur_lib.models.deit import DistilledViT
    from ingur_lib.models.vit import ViTConfig
    off = official(DEIT, "models.py", ("DistilledVisionTransformer",), VisionTransformer=nn.Module,
                   trunc_normal_=None).DistilledVisionTransformer
    torch.manual_seed(0)
    ours = _randomized(DistilledViT(ViTConfig(image_size=28, patch_size=7, dim=32, depth=2, heads=2)))
    theirs = copy.deepcopy(ours)  # the same modules, run by the official methods
    theirs.__class__ = type("OfficialForward", (DistilledViT,), {"forward_features": off.forward_features,
                                                                  "forward": off.forward})
    x = torch.randn(3, 1, 28, 28)
    for training in (True, False):
        ours.train(training), theirs.train(training)
        torch.testing.assert_close(ours(x), theirs(x))


# ---------------------------------------------------------------- 06 CViT [7]

CVIT = "erprogs/CViT"


def _official_cvit(**kwargs) -> nn.Module:
    einops = pytest.importorskip("einops", reason="the official CViT uses einops (pip install einops)")
    names = ("Residual", "PreNorm", "FeedForward", "Attention", "Transformer", "CViT")
    return official(CVIT, "model/cvit.py", names, rearrange=einops.rearrange).CViT(**kwargs)


def _cvit_pair(attention: str):
    """The official CViT (its VGG stages, 3 channels; 64 px so that the map is 2x2, cut with patch 2 into its
    single feature token as the official 7x7 map with patch 7) and ours with the same weights, our final
    LayerNorm (kept, 06's Deviations) set aside."""
    from ingur_lib.models.cvit import PAPER_STAGES, CViT, CViTConfig
    from ingur_lib.models.vit import ViTConfig
    torch.manual_seed(0)
    theirs = _official_cvit(image_size=64, patch_size=2, dim=64, depth=2, heads=4, mlp_dim=128).eval()
    vit = ViTConfig(image_size=64, in_chans=3, num_classes=2, dim=64, depth=2, heads=4, mlp_ratio=2.0,
                    qkv_bias=False, attention=attention)
    ours = CViT(CViTConfig(vit=vit, stages=PAPER_STAGES, feature_patch=2, mlp_head=128)).eval()
    ours.norm = nn.Identity()
    state = {}
    for k, v in theirs.state_dict().items():
        k = k.replace("features.", "patch_embed.features.").replace("mlp_head.", "head.")
        k = k.replace("pos_embedding", "pos_embed").replace("patch_to_embedding", "patch_embed.proj")
        for old, new in ((".0.fn.norm", ".norm1"), (".0.fn.fn.to_qkv", ".attn.qkv"), (".0.fn.fn.to_out", ".attn.proj"),
                         (".1.fn.norm", ".norm2"), (".1.fn.fn.net.0", ".mlp.fc1"), (".1.fn.fn.net.2", ".mlp.fc2")):
            k = k.replace(old, new)
        state[k.replace("transformer.layers.", "blocks.")] = v
    w = state["patch_embed.proj.weight"]  # Linear over (p1 p2 c) -> the stride-p conv's (dim, c, p1, p2)
    state["patch_embed.proj.weight"] = w.view(64, 2, 2, 512).permute(0, 3, 1, 2)
    state["pos_embed"] = state["pos_embed"][:, :2]  # sized by the image's patches, sliced to the tokens in forward
    ours.load_state_dict(state)
    return theirs, ours, torch.randn(2, 3, 64, 64)


def test_cvit_equals_official_with_the_width_scaled_attention():
    """Extractor, feature tokens, class token, positions, blocks and MLP head: the official CViT to float
    precision once the attention scales q k^T by 1/sqrt(dim), as the official code does."""
    theirs, ours, x = _cvit_pair("mhsa_width_scaled")
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)


def test_cvit_default_attention_scale_differs_from_official():
    """Our default scales by 1/sqrt(d_head) (the recorded runs): sqrt(heads) = 2 times sharper logits here."""
    theirs, ours, x = _cvit_pair("mhsa")
    with torch.no_grad():
        assert relative(ours(x), theirs(x)) > 1e-3


# ---------------------------------------------------------------- 09 MatMul-free LM [9]

MMFREE = "ridgerchu/matmulfreellm"


def _mmfree_bitnet() -> SimpleNamespace:
    """The pure-torch BitLinear of mmfreelm/ops/bitnet.py (the fused Triton one computes the same on a GPU), its
    RMSNorm (a fused kernel in mmfreelm.modules) standing in as the book's RMSNorm, x / rms(x) * g."""
    from ingur_lib.nn.norms import RMSNorm
    return official(MMFREE, "mmfreelm/ops/bitnet.py", ("activation_quant", "weight_quant", "BitLinear"),
                    RMSNorm=RMSNorm)


def test_matmul_free_quantisers_equal_official():
    from ingur_lib.nn import quant
    off = _mmfree_bitnet()
    torch.manual_seed(0)
    x, w = torch.randn(4, 7, 24) * 3, torch.randn(16, 24) * 0.1
    torch.testing.assert_close(quant.activation_quant(x), off.activation_quant(x.clone()))
    torch.testing.assert_close(quant.weight_quant(w), off.weight_quant(w.clone()))


def test_matmul_free_bitlinear_equals_official():
    """RMSNorm (eps 1e-8), int8 tokens, ternary weights, straight-through gradients, no bias."""
    from ingur_lib.nn.quant import BitLinear
    torch.manual_seed(0)
    theirs, ours = _randomized(_mmfree_bitnet().BitLinear(24, 16, bias=False)), BitLinear(24, 16)
    _same_state(ours, theirs)
    x = (torch.randn(3, 5, 24) * 2).requires_grad_()
    out_t, out_o = theirs(x), ours(x)
    torch.testing.assert_close(out_o, out_t)
    g = torch.randn_like(out_t)
    grads = [torch.autograd.grad(o, [x, *m.parameters()], g) for o, m in ((out_t, theirs), (out_o, ours))]
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a)


def test_matmul_free_recurrence_equals_official_naive_hgrn():
    """h_t = f_t * h_{t-1} + c_t, the official reference loop (per head, (B, H, T, d)) against ours (B, T, D)."""
    from ingur_lib.models.mlgru import mlgru_scan
    naive = official(MMFREE, "mmfreelm/ops/hgrn/naive.py", ("naive_recurrent_hgrn",)).naive_recurrent_hgrn
    torch.manual_seed(0)
    c, f = torch.randn(2, 9, 12), torch.rand(2, 9, 12)
    heads = lambda t: t.view(2, 9, 3, 4).transpose(1, 2)  # noqa: E731
    theirs, _ = naive(heads(c), heads(f))
    torch.testing.assert_close(mlgru_scan(f, c), theirs.transpose(1, 2).reshape(2, 9, 12))


def _mmfree_token_mixer(dim: int = 32) -> nn.Module:
    """The official MLGRU (HGRNBitAttention) on the CPU: the pure-torch BitLinear, the reference recurrence
    (naive_recurrent_hgrn) for the Triton one, and for FusedRMSNormSwishGate the file's own rms_norm_ref times
    the kernel's swish gate line (y * o * sigmoid(o))."""
    einops = pytest.importorskip("einops", reason="the official MLGRU uses einops (pip install einops)")
    ref = official(MMFREE, "mmfreelm/modules/fused_norm_gate.py", ("rms_norm_ref",)).rms_norm_ref
    naive = official(MMFREE, "mmfreelm/ops/hgrn/naive.py", ("naive_recurrent_hgrn",)).naive_recurrent_hgrn

    class SwishGate(nn.Module):
        def __init__(self, hidden_size, eps=1e-5):
            super().__init__()
            self.eps, self.weight = eps, nn.Parameter(torch.ones(hidden_size))

        def forward(self, x, o):
            return ref(x, self.weight, None, eps=self.eps) * o * torch.sigmoid(o)

    off = official(MMFREE, "mmfreelm/layers/hgrn_bit.py", ("HGRNBitAttention",), rearrange=einops.rearrange,
                   BitLinear=_mmfree_bitnet().BitLinear, FusedRMSNormSwishGate=SwishGate, ShortConvolution=None,
                   swiglu=lambda x, y: F.silu(x) * y, fused_recurrent_hgrn=naive, Cache=object, HGRNAttention=object)
    return _randomized(off.HGRNBitAttention(hidden_size=dim, num_heads=2, layernorm_eps=1e-6, layer_idx=1))


def _mlgru_pair(official_gate: bool):
    from ingur_lib.models.mlgru import MLGRU
    theirs, ours = _mmfree_token_mixer(), MLGRU(32, official_gate=official_gate)
    rename = {f"i_proj.{k}": f"c_proj.{k}" for k in ("weight", "norm.weight")}
    state = {rename.get(k, k): v for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state if official_gate else {k: v for k, v in state.items() if "g_norm" not in k})
    return theirs, ours, torch.randn(2, 9, 32), torch.rand(32) * 0.5


def test_matmul_free_mlgru_equals_official_with_its_output_gate():
    """MLGRU(official_gate=True): forget gate with the lower bound, SiLU candidate times 1 - f, the recurrence,
    and the official output RMSNorm(g) * SiLU(h): equal to the official HGRNBitAttention."""
    theirs, ours, x, bound = _mlgru_pair(True)
    torch.testing.assert_close(ours(x, bound), theirs(x, lower_bound=bound)[0])


def test_matmul_free_mlgru_paper_gate_differs_from_official():
    """Our default follows the paper, sigmoid(g) * h: on the same weights the mixer's output differs."""
    theirs, ours, x, bound = _mlgru_pair(False)
    assert relative(ours(x, bound), theirs(x, lower_bound=bound)[0]) > 0.1


def _mmfree_mlp(dim: int = 32, hidden: int = 64) -> nn.Module:
    """The official channel mixer (HGRNBitMLP) with the pure-torch BitLinear; `swiglu` is a CUDA jiterator there,
    whose code string computes x * sigmoid(x) * y: that formula stands in on the CPU."""
    off = official(MMFREE, "mmfreelm/models/hgrn_bit/modeling_hgrn_bit.py", ("HGRNBitMLP",),
                   BitLinear=_mmfree_bitnet().BitLinear, ACT2FN={"swish": nn.SiLU()},
                   swiglu=lambda x, y: F.silu(x) * y)
    return _randomized(off.HGRNBitMLP(dim, intermediate_size=hidden))


def test_matmul_free_glu_equals_official_mlp_when_fused():
    """GLU(fused=True): gate and up one BitLinear split in two (one ternary scale, one RMSNorm gain)."""
    from ingur_lib.nn.glu import GLU
    from ingur_lib.nn.quant import BitLinear
    theirs, ours = _mmfree_mlp(), GLU(32, 64, BitLinear, fused=True)
    _same_state(ours, theirs, {"gate_proj.weight": "gate_up.weight", "gate_proj.norm.weight": "gate_up.norm.weight",
                               "down_proj.weight": "down.weight", "down_proj.norm.weight": "down.norm.weight"})
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(ours(x), theirs(x))


def test_matmul_free_glu_default_differs_from_official_by_the_split_scale():
    """Our default (the recorded runs): gate and up are two BitLinears, each with its own ternary scale
    mean|W| and RMSNorm gain. Loaded with the official weights (the gain copied to both), the outputs differ
    only by the two scales; measured here on random weights whose halves differ in scale by 1.5x."""
    from ingur_lib.nn.glu import GLU
    from ingur_lib.nn.quant import BitLinear
    theirs, ours = _mmfree_mlp(), GLU(32, 64, BitLinear)
    with torch.no_grad():
        theirs.gate_proj.weight[:64] *= 1.5
        gate, up = theirs.gate_proj.weight.chunk(2)
        for name, w in (("gate", gate), ("up", up)):
            getattr(ours, name).weight.copy_(w), getattr(ours, name).norm.weight.copy_(theirs.gate_proj.norm.weight)
        ours.down.load_state_dict(theirs.down_proj.state_dict())
    x = torch.randn(2, 7, 32)
    assert relative(ours(x), theirs(x)) > 0.05
