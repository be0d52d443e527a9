"""PatchDropout (Liu et al. 2023): train a ViT on a random subset of its patch tokens.

During training each image keeps n_keep = round(keep * N) of its N patch tokens, drawn uniformly
without replacement; the prefix tokens (class, distillation) are always kept. Positions are added
*before* the drop, so every kept token still knows where it came from; at evaluation all N tokens
are used. Attention and MLP cost fall with the token count, and the drop acts as a regularizer.
"""
from __future__ import annotations

import torch


def patch_dropout(x: torch.Tensor, keep: float, num_prefix: int = 1) -> torch.Tensor:
    """(B, P + N, D) -> (B, P + n_keep, D): the P prefix tokens, then a random n_keep patch tokens in order.

    Draws from torch's global generator, which the training loop seeds per epoch (repeatable runs).
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}: it is the fraction of patch tokens kept.")
    b, n = x.shape[0], x.shape[1] - num_prefix
    n_keep = max(1, round(keep * n))
    if n_keep == n:
        return x
    # argsort of uniform noise = a random permutation per row; sorting the first n_keep keeps raster order.
    idx = torch.rand(b, n, device=x.device).argsort(dim=1)[:, :n_keep].sort(dim=1).values + num_prefix
    idx = torch.cat([torch.arange(num_prefix, device=x.device).expand(b, -1), idx], dim=1)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))
