"""CViT (Wodajo & Atnafu 2021, Sec. 3.2, Fig. 2): a VGG-like convolutional feature extractor whose
feature map becomes the token sequence of a transformer encoder; a class token and an MLP head decide.

    F = VGG(x)                        3x3 conv + BN + ReLU blocks, each stage ending in a 2x2 max-pool
    z0 = [x_cls; p(F)_1 E; ...] + E_pos    each p x p cell of the feature map is one token
    y = MLP(LN(z_L^0))                the ViT's pre-LN blocks in between (`ingur_lib.models.vit`)

The paper's extractor has stages (32x3, 64x3, 128x3, 256x4, 512x4): 224 px -> 512 x 7 x 7. Its official
code cuts that map with patch size 7, i.e. ONE feature token beside the class token; here `feature_patch`
defaults to 1 (one token per feature cell) so attention has a grid to look at (a Deviation of the chapter).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from torch import nn

from ..errors import IngurError
from .vit import ViT, ViTConfig

PAPER_STAGES = ((32, 3), (64, 3), (128, 3), (256, 4), (512, 4))


@dataclass
class CViTConfig:
    vit: ViTConfig = field(default_factory=lambda: ViTConfig(image_size=24, in_chans=1, num_classes=2))
    stages: tuple[tuple[int, int], ...] = ((16, 2), (32, 2))  # (channels, convs) per stage
    feature_patch: int = 1            # p: each p x p cell of the feature map is one token
    mlp_head: int = 128               # hidden width of the MLP head (paper: 2048)

    def __post_init__(self):
        if not self.stages or any(c < 1 or n < 1 for c, n in self.stages):
            raise IngurError(f"stages must be (channels, convs) pairs >= 1, got {self.stages}.")
        down = 2 ** len(self.stages) * self.feature_patch
        if self.vit.image_size % down:
            raise IngurError(f"Image size {self.vit.image_size} is not divisible by {down} (2 per stage "
                             f"x feature_patch {self.feature_patch}): use fewer stages or resize the images.")

    @property
    def grid(self) -> int:
        return self.vit.image_size // (2 ** len(self.stages) * self.feature_patch)

    def to_dict(self) -> dict:
        return asdict(self)


def vgg_features(in_chans: int, stages) -> nn.Sequential:
    """The VGG-like extractor: per stage, `convs` x (3x3 conv, BN, ReLU), then a 2x2 max-pool."""
    layers, c_in = [], in_chans
    for c, n in stages:
        for _ in range(n):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class ConvTokenizer(nn.Module):
    """(B, C, H, W) -> (B, N, dim): VGG features, then each p x p cell projected to a token (a stride-p
    conv equals the official rearrange + Linear)."""

    def __init__(self, cfg: CViTConfig):
        super().__init__()
        self.features = vgg_features(cfg.vit.in_chans, cfg.stages)
        p = cfg.feature_patch
        self.proj = nn.Conv2d(cfg.stages[-1][0], cfg.vit.dim, kernel_size=p, stride=p)
        self.grid, self.num_patches, self.image_size = cfg.grid, cfg.grid ** 2, cfg.vit.image_size

    def forward(self, x):
        if tuple(x.shape[-2:]) != (self.image_size,) * 2:
            raise IngurError(f"Expected {self.image_size}px square images, got {tuple(x.shape[-2:])}: "
                             f"build the model with image_size={x.shape[-1]}.")
        return self.proj(self.features(x)).flatten(2).transpose(1, 2)


class CViT(ViT):
    """The ViT with its patch embedding replaced by `ConvTokenizer` and its head by the paper's MLP head."""

    def __init__(self, cfg: CViTConfig):
        down = 2 ** len(cfg.stages) * cfg.feature_patch  # a patch size giving the same grid, for ViT's init
        super().__init__(replace(cfg.vit, patch_size=down, pool="cls"))
        self.cvit_cfg = cfg
        self.patch_embed = ConvTokenizer(cfg)
        self.head = nn.Sequential(nn.Linear(cfg.vit.dim, cfg.mlp_head), nn.ReLU(inplace=True),
                                  nn.Linear(cfg.mlp_head, cfg.vit.num_classes))
