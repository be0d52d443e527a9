"""BinaryViT [1] (Le & Li, CVPR-W 2023): a binary DeiT and the four enhancements of its Table 3, each a switch.

    rung 0  binary DeiT: 1-bit weights and activations in every block linear and in attention (`nn.binary`)
    +GAP    `pool="mean"`: the head reads the mean token instead of a class token (Sec. 3.1)
    +multi-pooling  `multi_pool`: average pools 1x3, 3x1, 1x5, 5x1 of the normed tokens, each scaled by
            its own affine (init 0), added beside attention (Sec. 3.2)
    +affine `affine`: x * a + b per channel (a init 0.1) on every branch before its residual add (Sec. 3.3)
    +pyramid `pyramid`: 4 stages, tokens merged 2x2 and widths growing between stages (Sec. 3.4)

`binary=False` builds the same architecture in full precision (softmax attention, GELU): the teacher.
The patch embedding and the head stay full precision, as in the paper.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import IngurError
from ..nn.binary import BinaryLinear, RPReLU, binarize_attention, bireal_sign

POOLS = ((1, 3), (3, 1), (1, 5), (5, 1))  # the multi-pooling branches' kernels (rows, cols)


@dataclass
class BinaryViTConfig:
    image_size: int = 28
    in_chans: int = 1
    num_classes: int = 10
    patch_size: int = 4
    dims: tuple[int, ...] = (64,)     # width per stage (one stage = plain ViT)
    depths: tuple[int, ...] = (4,)    # blocks per stage
    heads: int = 4
    mlp_ratio: float = 2.0
    binary: bool = True               # False: the full-precision teacher
    binary_attention: bool = True     # binarise q, k, v and the attention probabilities
    binary_mlp: bool = True           # binarise the block linears (qkv, proj, fc1, fc2)
    pool: str = "cls"                 # "cls" or "mean" (GAP)
    multi_pool: bool = False
    affine: bool = False
    # The official code's choices (phuoc-hoan-le/BinaryViT, transformer/modeling_vit_extra_res.py), off by default:
    # the chapter's recorded runs predate them (tests/test_official.py runs each beside the official module).
    pool_pad: bool = False            # the pools' averages count the zero padding (AvgPool2d's count_include_pad)
    pool_at_output: bool = False      # the pools read the post-attention norm and add at the block output
    attn_alpha: float | None = None   # initial alpha of the binary probabilities; None: 2 / N (official 0.005)
    norm: str = "layer"               # "batch": BatchNorm per channel over batch and tokens (official --replace-ln-bn)

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise IngurError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}: "
                             "pick a patch size that divides the image.")
        if len(self.dims) != len(self.depths):
            raise IngurError(f"dims {self.dims} and depths {self.depths} differ in length: give one per stage.")
        if self.pool not in ("cls", "mean"):
            raise IngurError(f"Unknown pool {self.pool!r}: use 'cls' or 'mean'.")
        if (self.multi_pool or len(self.dims) > 1) and self.pool != "mean":
            raise IngurError("multi-pooling and the pyramid need pool='mean': a class token has no place on "
                             "the token grid (turn on GAP first, as the paper's ladder does).")
        if self.norm not in ("layer", "batch"):
            raise IngurError(f"Unknown norm {self.norm!r}: use 'layer' or 'batch'.")
        if any(d % self.heads for d in self.dims):
            raise IngurError(f"heads={self.heads} must divide every width {self.dims}.")

    def to_dict(self) -> dict:
        return asdict(self)


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over (B, N, C) tokens: statistics per channel over the batch and the tokens."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _norm(cfg: BinaryViTConfig, dim: int) -> nn.Module:
    return TokenBatchNorm(dim) if cfg.norm == "batch" else nn.LayerNorm(dim)


def _linear(cfg: BinaryViTConfig, binary: bool, n_in: int, n_out: int) -> nn.Linear:
    return BinaryLinear(n_in, n_out) if cfg.binary and binary else nn.Linear(n_in, n_out)


class Affine(nn.Module):
    """x * a + b per channel (a initialised at `init`, b at 0)."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.full((dim,), init)), nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return x * self.a + self.b


class BinaryAttention(nn.Module):
    """Self-attention with sign(q), sign(k), sign(v) and probabilities in {0, alpha} when binary."""

    def __init__(self, cfg: BinaryViTConfig, dim: int, n_tokens: int):
        super().__init__()
        self.heads, self.head_dim = cfg.heads, dim // cfg.heads
        self.qkv, self.proj = _linear(cfg, cfg.binary_mlp, dim, 3 * dim), _linear(cfg, cfg.binary_mlp, dim, dim)
        self.binary, self.alpha_tokens = cfg.binary and cfg.binary_attention, n_tokens
        # alpha = 2 / N: at first a token is kept where its probability is above uniform
        alpha = 2.0 / n_tokens if cfg.attn_alpha is None else cfg.attn_alpha
        self.alpha = nn.Parameter(torch.tensor(alpha)) if self.binary else None
        self.capture: list | None = None  # set by nn.attention.capture_attention()

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.binary:
            q, k, v = bireal_sign(q), bireal_sign(k), bireal_sign(v)
        p = (q @ k.transpose(-2, -1) * self.head_dim ** -0.5).softmax(-1)
        if self.binary:
            p = binarize_attention(p, self.alpha)
        if self.capture is not None:
            self.capture.append(p.detach())
        return self.proj((p @ v).transpose(1, 2).reshape(b, n, -1))


def pooling_matrices(grid: tuple[int, int], count_pad: bool = False) -> torch.Tensor:
    """(len(POOLS), N, N): row i of matrix k averages token i's neighbours under kernel k (stride 1, same
    size; `count_pad`: the zero padding counts in the average, as in the official code). Average pooling is
    linear in the tokens, so one matmul applies it."""
    n = grid[0] * grid[1]
    eye = torch.eye(n).view(n, 1, *grid)  # one image per token, holding a 1 at that token
    mats = [F.avg_pool2d(eye, k, 1, (k[0] // 2, k[1] // 2), count_include_pad=count_pad).view(n, n).T for k in POOLS]
    return torch.stack(mats)


class MultiPool(nn.Module):
    """Sum over kernels k of affine_k(avgpool_k(tokens on their grid)); each affine starts at 0."""

    def __init__(self, dim: int, grid: tuple[int, int], count_pad: bool = False):
        super().__init__()
        self.register_buffer("mats", pooling_matrices(grid, count_pad), persistent=False)
        self.a, self.b = nn.Parameter(torch.zeros(len(POOLS), dim)), nn.Parameter(torch.zeros(len(POOLS), dim))

    def forward(self, x):
        pooled = torch.einsum("knm,bmc->bknc", self.mats, x)  # (B, kernels, N, C)
        return (pooled * self.a[:, None] + self.b[:, None]).sum(1)


class BinaryBlock(nn.Module):
    """Pre-LN block: x + [affine](attn(LN x) [+ pools]); x + [affine](fc2(RPReLU(fc1(LN x)))).
    With `pool_at_output` (the official code) the pools read the second LN and add beside the MLP's residual."""

    def __init__(self, cfg: BinaryViTConfig, dim: int, grid: tuple[int, int]):
        super().__init__()
        n_tokens = grid[0] * grid[1] + (cfg.pool == "cls")
        hidden = int(dim * cfg.mlp_ratio)
        self.norm1, self.norm2 = _norm(cfg, dim), _norm(cfg, dim)
        self.attn = BinaryAttention(cfg, dim, n_tokens)
        self.pools = MultiPool(dim, grid, cfg.pool_pad) if cfg.multi_pool else None
        self.pool_at_output = cfg.pool_at_output
        self.fc1, self.fc2 = _linear(cfg, cfg.binary_mlp, dim, hidden), _linear(cfg, cfg.binary_mlp, hidden, dim)
        self.act = RPReLU(hidden) if cfg.binary else nn.GELU()
        self.aff1 = Affine(dim, 0.1) if cfg.affine else nn.Identity()
        self.aff2 = Affine(dim, 0.1) if cfg.affine else nn.Identity()

    def forward(self, x):
        h = self.norm1(x)
        a = self.attn(h)
        if self.pools is not None and not self.pool_at_output:
            a = a + self.pools(h)
        x = x + self.aff1(a)
        h = self.norm2(x)
        x = x + self.aff2(self.fc2(self.act(self.fc1(h))))
        return x + self.pools(h) if self.pools is not None and self.pool_at_output else x


class Merge(nn.Module):
    """Between stages: 2x2 neighbouring tokens concatenated (grid zero-padded to even) -> linear to the next
    width, binary in a binary model (the paper's BinaryViT; BinaryViT* keeps these full precision)."""

    def __init__(self, cfg: BinaryViTConfig, dim_in: int, dim_out: int):
        super().__init__()
        self.norm = _norm(cfg, 4 * dim_in)
        self.reduce = _linear(cfg, True, 4 * dim_in, dim_out)

    def forward(self, x, grid):
        b, n, c = x.shape
        img = F.pad(x.transpose(1, 2).reshape(b, c, *grid), (0, grid[1] % 2, 0, grid[0] % 2))
        h, w = img.shape[2] // 2, img.shape[3] // 2
        cols = img.view(b, c, h, 2, w, 2).permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, 4 * c)
        return self.reduce(self.norm(cols)), (h, w)


class BinaryViT(nn.Module):
    """Full-precision patch embedding -> stages of binary blocks (merged 2x2 between) -> LN -> head."""

    def __init__(self, cfg: BinaryViTConfig):
        super().__init__()
        self.cfg = cfg
        g = cfg.image_size // cfg.patch_size
        self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.dims[0], cfg.patch_size, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dims[0])) if cfg.pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.randn(1, g * g + (cfg.pool == "cls"), cfg.dims[0]) * 0.02)
        self.stages, self.merges = nn.ModuleList(), nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(cfg.dims, cfg.depths)):
            if i:
                self.merges.append(Merge(cfg, cfg.dims[i - 1], dim))
                g = math.ceil(g / 2)
            self.stages.append(nn.ModuleList(BinaryBlock(cfg, dim, (g, g)) for _ in range(depth)))
        self.norm = _norm(cfg, cfg.dims[-1])
        self.head = nn.Linear(cfg.dims[-1], cfg.num_classes)

    def no_weight_decay(self) -> set[str]:
        return {"cls_token", "pos_embed"} if self.cls_token is not None else {"pos_embed"}

    @property
    def grid(self) -> int:
        return self.cfg.image_size // self.cfg.patch_size

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1)
        x = x + self.pos_embed
        grid = (self.grid, self.grid)
        for i, blocks in enumerate(self.stages):
            if i:
                x, grid = self.merges[i - 1](x, grid)
            for blk in blocks:
                x = blk(x)
        x = self.norm(x)
        return self.head(x[:, 0] if self.cls_token is not None else x.mean(1))


@torch.no_grad()
def count_ops(model: BinaryViT, x: torch.Tensor) -> dict[str, float]:
    """Per image: binary multiply-adds (BOPs), float multiply-adds (FLOPs) and OPs = BOPs/64 + FLOPs.

    Binary: every BinaryLinear (tokens x in x out) and, with binary attention, q k^T and p v (both operands
    1-bit). Float: all other multiply-adds that `measure.count_flops` counts (multiply-add = 2 there), with
    the multi-pooling counted as kh * kw additions per pooled value."""
    from ..measure import count_flops
    bops, hooks = [0], []

    def on_linear(m, inp, out):
        bops[0] += inp[0].numel() // m.in_features * m.bops_per_token()

    def on_attention(m, inp, out):
        b, n, _ = inp[0].shape
        bops[0] += 2 * b * m.heads * n * n * m.head_dim if m.binary else 0

    def on_pools(m, inp, out):
        # counted as the average pools they stand for (kh * kw adds per value), not as the N x N matmuls
        b, n, c = inp[0].shape
        pooled[0] += b * n * c * (sum(kh * kw for kh, kw in POOLS) - len(POOLS) * n)
    pooled = [0]
    for m in model.modules():
        if isinstance(m, BinaryLinear):
            hooks.append(m.register_forward_hook(on_linear))
        elif isinstance(m, BinaryAttention):
            hooks.append(m.register_forward_hook(on_attention))
        elif isinstance(m, MultiPool):
            hooks.append(m.register_forward_hook(on_pools))
    try:
        macs = count_flops(model, x, explicit_attention=False) / 2
    finally:
        for h in hooks:
            h.remove()
    b = len(x)
    flops = (macs - bops[0] + pooled[0]) / b
    return {"bops": bops[0] / b, "flops": flops, "ops": bops[0] / b / 64 + flops}
