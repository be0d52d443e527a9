"""Patch embedding (ViT, Dosovitskiy et al. 2021, Eq. 1): cut the image into p x p patches, project each."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import IngurError


def check_patchable(image_size: int, patch_size: int) -> int:
    """Number of patches per side; a clear error when the patch does not tile the image."""
    if image_size % patch_size:
        fits = [p for p in range(2, image_size + 1) if image_size % p == 0]
        raise IngurError(f"Image size {image_size} is not divisible by patch size {patch_size}: "
                         f"use a patch size in {fits} or resize the images.")
    return image_size // patch_size


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, N, dim) with N = (H/p)(W/p); a strided conv equals a Linear on flattened patches."""

    def __init__(self, image_size: int, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.grid = check_patchable(image_size, patch_size)
        self.num_patches = self.grid ** 2
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.grid * self.proj.stride[0] or x.shape[-2] != x.shape[-1]:
            raise IngurError(f"Expected {self.grid * self.proj.stride[0]}px square images, got "
                             f"{tuple(x.shape[-2:])}: build the model with image_size={x.shape[-1]}.")
        return self.proj(x).flatten(2).transpose(1, 2)


TOKENIZERS = {"patch": PatchEmbed}
