"""Shifted Patch Tokenization (SPT; Lee, Lee & Song 2021, "Vision Transformer for Small-Size Datasets", Sec. 3.2,
Eq. 4).

    S(x) = LN(P([x  s_1  s_2  s_3  s_4])) E

Each s_i is the image shifted by half a patch (p/2 pixels) in one of the four **diagonal** directions,
with zero padding (the official code's `PatchShifting`; a popular rebuild uses 1-pixel cardinal shifts
instead). The five views are stacked as 5C channels, cut into p x p patches P(.), each flattened patch is
LayerNorm-ed over all its 5 C p^2 values and linearly projected to `dim`. A patch token so sees a
(2p x 2p) neighbourhood of the image: the locality the tokenizer adds.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import IngurError
from .tokens import TOKENIZERS, check_patchable

# (dy, dx) of the content for each shifted view: up-left, up-right, down-left, down-right
# (as in the official code's x_lu, x_ru, x_lb, x_rb).
DIAGONALS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def shift_views(x: torch.Tensor, shift: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, 5C, H, W): the image and its four diagonal shifts by `shift` px (zeros enter).

    A view with direction (dy, dx) shows at pixel (i, j) the input pixel (i + dy*shift, j + dx*shift).
    """
    s = shift
    h, w = x.shape[-2:]
    pad = F.pad(x, (s, s, s, s))
    views = [x] + [pad[..., s + dy * s: s + dy * s + h, s + dx * s: s + dx * s + w] for dy, dx in DIAGONALS]
    return torch.cat(views, dim=1)


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, p*p*C), patches in row-major order, each flattened as (row, col, channel)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


class ShiftedPatchTokenizer(nn.Module):
    """SPT: (B, C, H, W) -> (B, N, dim); same constructor as `PatchEmbed`, so ViTConfig(tokenizer="spt") works."""

    def __init__(self, image_size: int, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        if patch_size < 2:
            raise IngurError("SPT shifts by half a patch: use patch_size >= 2.")
        self.grid = check_patchable(image_size, patch_size)
        self.num_patches = self.grid ** 2
        self.patch_size, self.shift = patch_size, patch_size // 2
        patch_dim = 5 * in_chans * patch_size ** 2
        self.norm = nn.LayerNorm(patch_dim)
        self.proj = nn.Linear(patch_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.grid * self.patch_size
        if x.shape[-1] != size or x.shape[-2] != size:
            raise IngurError(f"Expected {size}px square images, got {tuple(x.shape[-2:])}: "
                             f"build the model with image_size={x.shape[-1]}.")
        return self.proj(self.norm(patchify(shift_views(x, self.shift), self.patch_size)))


TOKENIZERS["spt"] = ShiftedPatchTokenizer
