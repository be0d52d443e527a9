"""Every technique of the book as a switch of one model: the capstone's `Recipe`.

A recipe names which of the chapters' mechanisms one small ViT uses, each taken from its own module (no
copies): SPT + LSA (chapter 5, `nn.spt`, `nn.lsa`), LayerScale + class-attention (chapter 3,
`nn.layer_scale`, `nn.class_attention`), the AugReg recipe (chapter 4, `data.randaugment`), hard-label
distillation with a distillation token (chapter 2, `models.deit`, `nn.distill`), VTP pruning (chapter 7,
`nn.prune`), ternary BitLinear weights (chapter 9, `nn.quant`) and BinaryViT's binary weights and activations
with its ladder (chapter 8, `models.binaryvit`).

`build(recipe, base)` makes the model a recipe trains; the training pipeline (teacher, sparsity training,
slimming, fine-tuning) is the capstone chapter's, because it is a procedure, not a module. Two switches change
more than a layer, and say so:

* `weights="binary"` builds a `BinaryViT` of the same width, depth, heads and patch (its blocks are BinaryViT's
  own: sign activations with learnable shifts, RPReLU, binary attention), with the paper's ladder short of the
  pyramid (GAP, multi-pooling, affine). SPT + LSA, LayerScale and pruning are switches of the ViT's blocks and
  do not apply; distillation does (hard labels, no distillation token: `split_outputs` reads one head as both).
* `weights="ternary"` swaps every `nn.Linear` inside the blocks for a `BitLinear` (`ternary_linears`); the patch
  embedding and the head stay full precision, as the MatMul-free LM keeps its embedding and output layer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from torch import nn

from ..errors import IngurError
from ..nn.layer_scale import layer_scale_init
from ..nn.quant import BitLinear
from .binaryvit import BinaryViT, BinaryViTConfig
from .deit import DistilledViT
from .vit import ViT, ViTConfig

WEIGHTS = ("float", "ternary", "binary")
# Where the capstone's switches come from: the chapter that teaches each.
SWITCHES = {"spt_lsa": "SPT + LSA", "cait": "LayerScale + class-attention", "augreg": "AugReg",
            "distill": "distillation", "prune": "VTP pruning", "weights": "low-bit weights"}


@dataclass(frozen=True)
class Recipe:
    """Which techniques one model uses (all off: the plain ViT)."""
    spt_lsa: bool = False       # shifted-patch tokens and locality self-attention (SPT + LSA)
    cait: bool = False          # LayerScale in every block and 2 class-attention layers (CaiT)
    augreg: bool = False        # the AugReg augmentation (RandAugment + Mixup), in the training recipe
    distill: bool = False       # hard-label distillation from the CNN teacher (with a distillation token)
    prune: float = 0.0          # VTP: the fraction of dimensions pruned after sparsity training (0 = off)
    weights: str = "float"      # "float", "ternary" (BitLinear) or "binary" (BinaryViT)

    def __post_init__(self):
        if self.weights not in WEIGHTS:
            raise IngurError(f"Unknown weights {self.weights!r}: use one of {', '.join(WEIGHTS)}.")
        if not 0 <= self.prune < 1:
            raise IngurError(f"prune={self.prune} must be a fraction in [0, 1): the share of dimensions VTP removes.")
        if self.weights == "binary" and (self.spt_lsa or self.cait or self.prune):
            raise IngurError("A binary recipe is BinaryViT's own blocks: SPT + LSA, LayerScale and pruning switch "
                             "the ViT's blocks, so combine them with weights='float' or 'ternary' instead.")

    @property
    def name(self) -> str:
        """A short name: the techniques on, joined by '+' ('ViT' when none is)."""
        parts = [label for key, label in (("spt_lsa", "SPT+LSA"), ("cait", "LS+CA"), ("augreg", "AugReg"),
                                           ("distill", "distill")) if getattr(self, key)]
        parts += [f"VTP {self.prune:.0%}"] if self.prune else []
        parts += [self.weights] if self.weights != "float" else []
        return " + ".join(parts) or "ViT"

    def to_dict(self) -> dict:
        return asdict(self)


def vit_config(recipe: Recipe, base: ViTConfig) -> ViTConfig:
    """`base` with the recipe's ViT switches: SPT + LSA, LayerScale + 2 class-attention layers."""
    cfg = base
    if recipe.spt_lsa:
        cfg = replace(cfg, tokenizer="spt", attention="lsa")
    if recipe.cait:
        cfg = replace(cfg, layer_scale=layer_scale_init(cfg.depth), class_attention=2)
    return cfg


def binary_config(base: ViTConfig) -> BinaryViTConfig:
    """BinaryViT of `base`'s size: one stage, the ladder's GAP, multi-pooling and affine rungs on."""
    return BinaryViTConfig(image_size=base.image_size, in_chans=base.in_chans, num_classes=base.num_classes,
                           patch_size=base.patch_size, dims=(base.dim,), depths=(base.depth,), heads=base.heads,
                           mlp_ratio=base.mlp_ratio, pool="mean", multi_pool=True, affine=True)


def build(recipe: Recipe, base: ViTConfig) -> nn.Module:
    """The untrained model of `recipe` at `base`'s size (ternary weights are swapped in by the pipeline:
    from the start, or after slimming when the recipe also prunes)."""
    if recipe.weights == "binary":
        return BinaryViT(binary_config(base))
    cfg = vit_config(recipe, base)
    return DistilledViT(cfg) if recipe.distill else ViT(cfg)


def ternary_linears(model: nn.Module) -> nn.Module:
    """Every `nn.Linear` inside the model's blocks (self- and class-attention) replaced, in place, by a
    `BitLinear` that starts from its weights: the patch embedding and the head stay full precision."""
    blocks = [*getattr(model, "blocks", ()), *getattr(model, "class_blocks", ())]
    if not blocks:
        raise IngurError("ternary_linears expects a ViT with .blocks: build it with models.combined.build.")
    for blk in blocks:
        for parent in list(blk.modules()):
            for name, child in parent.named_children():
                if type(child) is nn.Linear:  # exactly a Linear: not an already swapped BitLinear
                    setattr(parent, name, _bitlinear(child))
    return model


def _bitlinear(linear: nn.Linear) -> BitLinear:
    new = BitLinear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    new.weight.data.copy_(linear.weight.data)
    if linear.bias is not None:
        new.bias.data.copy_(linear.bias.data)
    return new.to(linear.weight.device)
