"""Batched image augmentation on tensors: every op transforms a whole (B, C, H, W) batch at once.

All randomness comes from the `generator` argument, so a seeded run is repeatable and resumable.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import IngurError


def _rand(n, gen, device):
    return torch.rand(n, generator=gen).to(device)


def _beta(alpha: float, gen: torch.Generator) -> float:
    """One Beta(alpha, alpha) draw from `gen` (torch's Beta sampler has no generator argument)."""
    import numpy as np
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` and crop back at a random offset per image (one gather, no loop)."""
    b, c, h, w = x.shape
    xp = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, c, h, w + 2 * padding)
    xp = xp.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, c, h, w)
    return xp.gather(3, cols)


def random_flip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    flip = _rand(x.shape[0], gen, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_erasing(x: torch.Tensor, gen: torch.Generator, p: float = 0.25, area=(0.02, 1 / 3)) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020): zero a random rectangle in a fraction p of the images."""
    b, _, h, w = x.shape
    dev = x.device
    s = (area[0] + (area[1] - area[0]) * _rand(b, gen, dev)) * h * w
    ratio = torch.exp(torch.log(torch.tensor(0.3))
                      + (torch.log(torch.tensor(3.3)) - torch.log(torch.tensor(0.3))) * _rand(b, gen, dev))
    eh = (s * ratio).sqrt().clamp(1, h).long()
    ew = (s / ratio).sqrt().clamp(1, w).long()
    y0 = (_rand(b, gen, dev) * (h - eh + 1)).long()
    x0 = (_rand(b, gen, dev) * (w - ew + 1)).long()
    ys, xs = torch.arange(h, device=dev), torch.arange(w, device=dev)
    box = ((ys[None, :, None] >= y0[:, None, None]) & (ys[None, :, None] < (y0 + eh)[:, None, None]) &
           (xs[None, None, :] >= x0[:, None, None]) & (xs[None, None, :] < (x0 + ew)[:, None, None]))
    box &= (_rand(b, gen, dev) < p)[:, None, None]
    return x.masked_fill(box[:, None], 0.0)


def mixup(x, y_onehot, gen, alpha: float = 0.2):
    """mixup (Zhang et al. 2018): blend each image and its label with a partner's (one lambda per batch)."""
    lam = _beta(alpha, gen) if alpha > 0 else 1.0
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y_onehot + (1 - lam) * y_onehot[perm]


def cutmix(x, y_onehot, gen, alpha: float = 1.0):
    """CutMix (Yun et al. 2019): paste a partner's box; labels mixed by the pasted area."""
    b, _, h, w = x.shape
    lam = _beta(alpha, gen)
    perm = torch.randperm(b, generator=gen).to(x.device)
    ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
    cy, cx = int(torch.randint(0, h, (1,), generator=gen)), int(torch.randint(0, w, (1,), generator=gen))
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, lam * y_onehot + (1 - lam) * y_onehot[perm]


@dataclass
class Augment:
    """Which batched augmentations a run uses. Defaults: crop with 2-px padding and flips."""
    crop_padding: int = 2
    flip: bool = True
    erasing: float = 0.0     # probability per image
    mixup: float = 0.0       # alpha; 0 = off
    cutmix: float = 0.0      # alpha; 0 = off (with mixup on too, each batch picks one at random)
    randaug_layers: int = 0  # RandAugment's N (data/randaugment.py), on [0, 1] pixels before normalizing
    randaug_magnitude: float = 0.0  # RandAugment's M (0-30; 10 is the usual strength)

    def __post_init__(self):
        from .randaugment import check
        check(self.randaug_layers, self.randaug_magnitude)
        if self.mixup < 0 or self.cutmix < 0:
            raise IngurError(f"mixup={self.mixup}, cutmix={self.cutmix}: use alphas >= 0 (0 turns one off).")

    def pixels(self, x, gen):
        """The ops that need [0, 1] pixels (RandAugment), on a float batch before normalization."""
        if not self.randaug_layers:
            return x
        from .randaugment import rand_augment
        return rand_augment(x, self.randaug_layers, self.randaug_magnitude, gen)

    def __call__(self, x, y, gen, num_classes):
        if self.crop_padding:
            x = random_crop(x, self.crop_padding, gen)
        if self.flip:
            x = random_flip(x, gen)
        if self.erasing:
            x = random_erasing(x, gen, self.erasing)
        if self.mixup or self.cutmix:
            y = F.one_hot(y, num_classes).float()
            use_cutmix = self.cutmix and (not self.mixup or torch.rand(1, generator=gen).item() < 0.5)
            x, y = cutmix(x, y, gen, self.cutmix) if use_cutmix else mixup(x, y, gen, self.mixup)
        return x, y


def prepared(prepare, images: torch.Tensor, device=None) -> torch.Tensor:
    """Model inputs for stored `images` through `prepare` in evaluation mode (no augmentation), on `device`."""
    return prepare((images if device is None else images.to(device), None), False, None)[0]


def image_prepare(mean, std, augment: Augment | None = None, num_classes: int = 10):
    """A `fit` prepare function: uint8 -> normalized float, plus `augment` on training batches."""
    def prepare(batch, train, gen):
        x, y, *rest = batch
        m = torch.as_tensor(mean, device=x.device).view(1, -1, 1, 1)
        s = torch.as_tensor(std, device=x.device).view(1, -1, 1, 1)
        x = x.float() / 255
        if train and augment is not None:
            x = augment.pixels(x, gen)
        x = (x - m) / s
        if train and augment is not None:
            x, y = augment(x, y, gen, num_classes)
        return (x, y, *rest)
    return prepare
