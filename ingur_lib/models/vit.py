"""One configurable Vision Transformer (Dosovitskiy et al. 2021), the base every image chapter builds on.

    z0 = [x_cls; x_p^1 E; ...; x_p^N E] + E_pos          (Eq. 1)
    z'_l = z_{l-1} + MSA(LN(z_{l-1}))                     (Eq. 2)
    z_l = z'_l + MLP(LN(z'_l))                            (Eq. 3)
    y = head(LN(z_L^0))  or  head(LN(mean_i z_L^i))       (Eq. 4, or global average pooling)

Chapters switch pieces by name in `ViTConfig` (tokenizer, attention) rather than copying the model.
CaiT's pieces are switches too: `layer_scale` (LayerScale's initial value) and `class_attention` (how many
class-attention layers take the class token after a patches-only self-attention stack).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import IngurError
from ..measure import count_params  # noqa: F401  (re-exported: notebooks count with it)
from ..nn.blocks import Block, check_rate
from ..nn.class_attention import ClassAttentionBlock
from ..nn.layer_scale import layer_scale_init
from ..nn.patch_dropout import patch_dropout
from ..nn.tokens import TOKENIZERS, check_patchable


@dataclass
class ViTConfig:
    image_size: int = 28
    patch_size: int = 4
    in_chans: int = 1
    num_classes: int = 10
    dim: int = 96
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 2.0
    pool: str = "cls"            # "cls" token or "mean" (global average pooling)
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0       # stochastic depth at the last block, linearly from 0
    patch_keep: float = 1.0      # PatchDropout: fraction of patch tokens kept in training (1 = off)
    qkv_bias: bool = True
    tokenizer: str = "patch"     # key of ingur_lib.nn.tokens.TOKENIZERS
    attention: str = "mhsa"      # key of ingur_lib.nn.attention.ATTENTIONS
    layer_scale: float | None = None  # CaiT's LayerScale init epsilon (nn.layer_scale_init(depth)); None = off
    class_attention: int = 0     # CaiT: class-attention layers after the stack (cls token enters late); 0 = off

    def __post_init__(self):
        for name in ("image_size", "patch_size", "in_chans", "num_classes", "dim", "depth", "heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IngurError(f"ViTConfig {name}={value!r} must be a whole number >= 1.")
        check_patchable(self.image_size, self.patch_size)
        for name in ("dropout", "attn_dropout", "drop_path"):  # checked here, before any model is built
            check_rate(f"ViTConfig {name}", getattr(self, name))
        if not 0 < self.patch_keep <= 1:
            raise IngurError(f"patch_keep must be in (0, 1], got {self.patch_keep}: it is the fraction of "
                             "patch tokens kept in training (1 turns PatchDropout off).")
        if self.pool not in ("cls", "mean"):
            raise IngurError(f"Unknown pool {self.pool!r}: use 'cls' or 'mean'.")
        if self.layer_scale is not None and not self.layer_scale > 0:
            raise IngurError(f"layer_scale must be a positive initial value or None, got {self.layer_scale}: "
                             "take nn.layer_scale.layer_scale_init(depth), or None to turn LayerScale off.")
        if self.class_attention < 0 or (self.class_attention and self.pool != "cls"):
            raise IngurError(f"class_attention={self.class_attention} needs pool='cls' and a count >= 0: "
                             "class-attention layers feed the class token to the head.")
        for field, registry in (("tokenizer", TOKENIZERS), ("attention", _attentions())):
            if getattr(self, field) not in registry:
                raise IngurError(f"Unknown {field} {getattr(self, field)!r}: use one of {', '.join(registry)}.")

    def to_dict(self) -> dict:
        return asdict(self)


def _attentions():
    from ..nn.attention import ATTENTIONS
    return ATTENTIONS


class ViT(nn.Module):
    """Vision Transformer: tokenizer -> [cls] + positions -> pre-LN blocks -> LayerNorm -> head."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = TOKENIZERS[cfg.tokenizer](cfg.image_size, cfg.patch_size, cfg.in_chans, cfg.dim)
        n = self.patch_embed.num_patches
        # with class-attention the class token skips the self-attention stack (and its positions)
        self.num_prefix = 1 if cfg.pool == "cls" and not cfg.class_attention else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, n + self.num_prefix, cfg.dim))
        self.pos_drop = nn.Dropout(cfg.dropout)
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # linear in depth
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout, cfg.attn_dropout, r, cfg.qkv_bias, cfg.attention,
                  cfg.layer_scale) for r in rates)
        self.class_blocks = nn.ModuleList(
            ClassAttentionBlock(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.layer_scale)
            for _ in range(cfg.class_attention))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def no_weight_decay(self) -> set[str]:
        """Parameters AdamW must not decay besides biases and norm gains (as in timm): the learned tokens."""
        return {"cls_token", "pos_embed"} if self.cls_token is not None else {"pos_embed"}

    @property
    def grid(self) -> int:
        return self.patch_embed.grid

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1: patch tokens, class token prepended, positions added (then PatchDropout, in training)."""
        x = self.patch_embed(x)
        if self.num_prefix:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
        if self.training and self.cfg.patch_keep < 1:
            x = patch_dropout(x, self.cfg.patch_keep, self.num_prefix)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Eqs. 1-3 and the final LayerNorm: (B, num_prefix + N, dim)."""
        x = self.tokens(x)
        for blk in self.blocks:
            x = blk(x)
        if self.class_blocks:  # CaiT: the class token enters now and reads the (fixed) patches
            cls = self.cls_token.repeat(x.shape[0], 1, 1)  # a copy, not a view: FlopCounterMode needs it
            for blk in self.class_blocks:
                cls = blk(cls, x)
            x = torch.cat([cls, x], dim=1)
        return self.norm(x)

    def pooled(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, 0] if self.cfg.pool == "cls" else z.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(self.features(x)))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# ---------------------------------------------------------------- the papers' variants, beside the model

# CaiT-XXS24 (CaiT [5], official cait_models.cait_XXS24): 24 talking-heads self-attention blocks with
# LayerScale, then 2 class-attention blocks, at 224 px.
CAIT_XXS24 = ViTConfig(image_size=224, patch_size=16, in_chans=3, num_classes=1000, dim=192, depth=24, heads=4,
                       mlp_ratio=4.0, attention="talking_heads", layer_scale=layer_scale_init(24), class_attention=2)
# The SPT+LSA paper's ViT for 32-px images ([2], official code: depth 9, 12 heads of 16, MLP ratio 2, patch 4).
SPT_LSA_PAPER_VIT = ViTConfig(image_size=32, patch_size=4, in_chans=3, num_classes=100, dim=192, depth=9,
                              heads=12)
