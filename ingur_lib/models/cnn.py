"""A small ResNet-style convnet (He et al. 2016): the teacher of the DeiT chapter.

DeiT's best teacher is a convnet (RegNetY-16GF); its point is that a convnet's inductive bias (locality,
translation equivariance) reaches the transformer through the teacher's labels. This is the same idea
at Fashion-MNIST scale: a 3x3 stem, then stages of basic residual blocks, each stage halving the
resolution and doubling the width, global average pooling and a linear classifier.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F


@dataclass
class CNNConfig:
    in_chans: int = 1
    num_classes: int = 10
    widths: tuple[int, ...] = (16, 32, 64)   # one stage per width; stages after the first downsample by 2
    blocks: int = 1                          # basic blocks per stage
    stem_stride: int = 1                     # 2 halves the resolution first: 4x fewer FLOPs, a cheaper teacher

    def to_dict(self) -> dict:
        return asdict(self)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (1x1 conv when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.short(x))


class ResNet(nn.Module):
    def __init__(self, cfg: CNNConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_chans, w[0], 3, cfg.stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(w[0]), nn.ReLU())
        layers, cin = [], w[0]
        for i, cout in enumerate(w):
            for j in range(cfg.blocks):
                layers.append(BasicBlock(cin, cout, stride=2 if i > 0 and j == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)).mean(dim=(2, 3)))
