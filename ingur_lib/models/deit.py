"""DeiT (Touvron et al. 2021, "Training data-efficient image transformers & distillation through attention").

Two pieces live here:

* the DeiT family as configs of the book's ViT (Sec. 3, Table 1): Ti 192-dim/3 heads, S 384/6, B 768/12,
  all 12 layers, MLP ratio 4, patch 16 at 224 px, 1000 classes;
* `DistilledViT`, the student with a **distillation token** (Sec. 4, Fig. 2). As in the official code,
  the token sits at position 1, right after the class token, has its own position embedding (the
  position table grows by one row) and its own linear head. In training mode the model returns both
  heads' logits `(cls_logits, dist_logits)`; in eval mode it returns their average, the paper's
  "class+distillation" joint classifier.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..errors import IngurError
from .vit import ViT, ViTConfig, _init_weights

# Table 1 of the paper; the official repo builds them from timm's VisionTransformer the same way.
DEIT_CONFIGS = {
    "tiny": ViTConfig(image_size=224, patch_size=16, in_chans=3, num_classes=1000, dim=192, depth=12, heads=3,
                      mlp_ratio=4.0),
    "small": ViTConfig(image_size=224, patch_size=16, in_chans=3, num_classes=1000, dim=384, depth=12, heads=6,
                       mlp_ratio=4.0),
    "base": ViTConfig(image_size=224, patch_size=16, in_chans=3, num_classes=1000, dim=768, depth=12, heads=12,
                      mlp_ratio=4.0),
}
# What the paper reports (Table 1): params in whole millions, as the table writes them (our counts 5.72M,
# 22.05M and 86.57M read 5M, 22M and 86M there: the table drops the fraction), and V100 images/s.
DEIT_REPORTED = {"tiny": {"params_m": 5, "images_per_s": 2536},
                 "small": {"params_m": 22, "images_per_s": 940},
                 "base": {"params_m": 86, "images_per_s": 292}}


def table1_millions(n_params: int) -> int:
    """A parameter count as Table 1 writes it: whole millions, the fraction dropped."""
    return int(n_params // 1_000_000)


def deit_config(size: str, **overrides) -> ViTConfig:
    """The DeiT-Ti/S/B config ("tiny", "small", "base"), optionally changed (e.g. image_size=28)."""
    if size not in DEIT_CONFIGS:
        raise IngurError(f"Unknown DeiT size {size!r}: use one of {', '.join(DEIT_CONFIGS)}.")
    return replace(DEIT_CONFIGS[size], **overrides)


class DistilledViT(ViT):
    """ViT + distillation token: [cls, dist, patches] + positions -> blocks -> two heads.

    forward(x): training -> (class-head logits, distillation-head logits); eval -> their mean.
    heads(x): both heads' logits in any mode (used to score each head alone).
    """

    num_tokens = 2  # class + distillation

    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay() | {"dist_token"}

    def __init__(self, cfg: ViTConfig):
        if cfg.pool != "cls":
            raise IngurError("A distilled ViT needs pool='cls': the class and distillation tokens are its outputs.")
        super().__init__(cfg)
        self.num_prefix = 2
        self.dist_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))  # not decayed: see no_weight_decay
        # One more row in the position table: the distillation token has its own position embedding.
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 2, cfg.dim))
        self.head_dist = nn.Linear(cfg.dim, cfg.num_classes)
        _init_weights(self.head_dist)
        nn.init.trunc_normal_(self.dist_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with the class token at position 0 and the distillation token at position 1."""
        x = self.patch_embed(x)
        b = x.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), x], dim=1)
        return self.pos_drop(x + self.pos_embed)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.features(x)
        return self.head(z[:, 0]), self.head_dist(z[:, 1])

    def forward(self, x: torch.Tensor):
        cls_logits, dist_logits = self.heads(x)
        if self.training:
            return cls_logits, dist_logits
        return (cls_logits + dist_logits) / 2


class OneHead(nn.Module):
    """A DistilledViT seen through one of its heads (0 = class, 1 = distillation): scoring each head alone."""

    def __init__(self, model: DistilledViT, which: int):
        super().__init__()
        self.model, self.which = model, which

    def forward(self, x):
        return self.model.heads(x)[self.which]
