"""Vision Transformer Pruning (VTP; Zhu, Tang & Han 2021, Sec. 3): learn which feature dimensions matter,
then cut them out of the weights for real.

1. **Importance scores** (Sec. 3.2): a learnable score per feature dimension, X* = X diag(a), a initialised
   to 1. Here the gates sit on the features entering each block's qkv projection (the LayerNorm output,
   `dim` scores per block) and on the MLP hidden features (after the GELU, `hidden` scores per block).
2. **Sparsity training**: loss = CE + lambda * sum_l ||a_l||_1 (`l1_penalty`, plugged into `fit(extra_loss=)`).
3. **Pruning**: rank all |a| globally and keep the largest so that exactly round((1 - ratio) * total) scores
   survive (`global_masks`), at least one per gate.
4. **Physical slimming** (`slim`): a new, smaller ViT whose Linear / LayerNorm weights lose the pruned
   rows and columns; each kept score is folded into the weight column it multiplies, so the slim model
   computes exactly what the gated model computes with the pruned scores set to 0. Then fine-tune.

Heads: the qkv gate acts on the *input* dimensions of the qkv projection, so every head keeps its
`head_dim` and the head count never changes; no head constraint can be violated. The residual stream
keeps its width (the paper prunes the projections' dimensions, not the residual), so the block's first
LayerNorm still normalises over all `dim` features and only its affine part is sliced (`KeptLayerNorm`).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import IngurError


class DimGate(nn.Module):
    """X* = X diag(a): one learnable importance score per feature dimension (last axis), initialised to 1.

    The score is stored as a = gain * raw. With Adam-type optimizers a parameter moves about `lr` per
    step whatever its gradient's scale, so `gain` multiplies the scores' effective learning rate: our
    runs have a few hundred steps where the paper's ImageNet run has hundreds of thousands.
    gain = 1 is the plain parameterisation.
    """

    def __init__(self, dim: int, gain: float = 1.0):
        super().__init__()
        self.gain = float(gain)
        self.raw = nn.Parameter(torch.full((dim,), 1.0 / self.gain))

    @property
    def score(self) -> torch.Tensor:
        """a, the importance scores (differentiable)."""
        return self.raw * self.gain

    @torch.no_grad()
    def set_score(self, a: torch.Tensor) -> None:
        self.raw.copy_(torch.as_tensor(a, dtype=self.raw.dtype) / self.gain)

    def forward(self, x):
        return x * self.score


class GatedLinear(nn.Module):
    """A Linear whose input features first pass a DimGate: linear(x diag(a))."""

    def __init__(self, linear: nn.Linear, gain: float = 1.0):
        super().__init__()
        self.gate = DimGate(linear.in_features, gain)
        self.linear = linear

    def forward(self, x):
        return self.linear(self.gate(x))


class KeptLayerNorm(nn.Module):
    """LayerNorm over all `dim` features, returning only the kept ones: LN(x)[..., kept].

    Its affine weight and bias have len(kept) entries: the normalisation statistics still need every
    feature of the residual stream, but the pruned outputs are never computed.
    """

    def __init__(self, norm: nn.LayerNorm, kept: torch.Tensor):
        super().__init__()
        self.dim, self.eps = norm.normalized_shape[0], norm.eps
        self.register_buffer("kept", kept.clone())
        self.weight = nn.Parameter(norm.weight.detach()[kept].clone())
        self.bias = nn.Parameter(norm.bias.detach()[kept].clone())

    def forward(self, x):
        y = F.layer_norm(x, (self.dim,), eps=self.eps)
        # index_select on the 2-D view: ~6x faster on the CPU than indexing the last axis of a 3-D tensor,
        # which cost more than the LayerNorm itself and made slim models at small cuts slower than dense ones
        y = y.reshape(-1, self.dim).index_select(1, self.kept).view(*x.shape[:-1], len(self.kept))
        return y * self.weight + self.bias


def add_gates(model: nn.Module, gain: float = 1.0) -> nn.Module:
    """Insert DimGates into every block of a `ViT` (in place): before qkv and before the MLP's fc2.

    The ViT itself is untouched: its qkv / fc2 Linear layers are wrapped, so with all scores at 1
    the gated model computes exactly what the original does.
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise IngurError("add_gates expects an ingur_lib ViT (a model with .blocks): "
                         "build one with ViT(ViTConfig(...)).")
    for blk in blocks:
        if isinstance(blk.attn.qkv, GatedLinear):
            raise IngurError("This model already has gates: call add_gates once, on a fresh ViT.")
        blk.attn.qkv = GatedLinear(blk.attn.qkv, gain)
        blk.mlp.fc2 = GatedLinear(blk.mlp.fc2, gain)
    return model


def gates(model: nn.Module) -> dict[str, DimGate]:
    """The model's gates by name, in forward order: {'block0.attn': gate, 'block0.mlp': gate, ...}."""
    out = {}
    for i, blk in enumerate(model.blocks):
        for kind, lin in (("attn", blk.attn.qkv), ("mlp", blk.mlp.fc2)):
            if isinstance(lin, GatedLinear):
                out[f"block{i}.{kind}"] = lin.gate
    if not out:
        raise IngurError("The model has no pruning gates: call add_gates(model) first.")
    return out


def scores(model: nn.Module) -> dict[str, torch.Tensor]:
    """|a| per gate (detached, on the CPU)."""
    return {k: g.score.detach().abs().cpu() for k, g in gates(model).items()}


def l1_penalty(lam: float):
    """extra_loss for `fit`: lambda * sum over all gates of ||a||_1 (VTP's sparsity term)."""
    def extra_loss(model):
        return lam * sum(g.score.abs().sum() for g in gates(model).values())
    return extra_loss


def global_masks(score_dict: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Boolean keep-masks: the round((1 - ratio) * total) largest scores over all gates survive.

    Ties are broken by position (a stable sort), so the kept count is exact. Every gate keeps at least
    its best dimension: if the global cut would empty a gate, that gate's best score is kept instead of
    the weakest globally kept score elsewhere.
    """
    if not 0.0 <= ratio < 1.0:
        raise IngurError(f"Pruning ratio {ratio} is outside [0, 1): pass the fraction of dimensions to remove.")
    names = list(score_dict)
    flat = torch.cat([score_dict[k].flatten().float() for k in names])
    owner = torch.cat([torch.full((score_dict[k].numel(),), i) for i, k in enumerate(names)])
    n_keep = len(flat) - round(ratio * len(flat))
    n_keep = max(n_keep, len(names))
    order = torch.sort(flat, descending=True, stable=True).indices
    keep = torch.zeros(len(flat), dtype=torch.bool)
    # Each gate's best dimension first, then the global ranking fills the rest.
    best = [order[owner[order] == i][0] for i in range(len(names))]
    keep[torch.stack(best)] = True
    rest = order[~keep[order]][: n_keep - int(keep.sum())]
    keep[rest] = True
    masks, start = {}, 0
    for k in names:
        n = score_dict[k].numel()
        masks[k] = keep[start:start + n].clone()
        start += n
    return masks


def round_width(full: int, kept: float, multiple: int) -> int:
    """`kept` dimensions rounded to the nearest multiple of `multiple` (CPU matrix kernels run whole vector
    lanes, so a width of 99 costs what 112 does or more), at least one multiple, at most `full`."""
    return min(full, max(multiple, multiple * round(kept / multiple)))


def rounded_masks(score_dict: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                  multiple: int) -> dict[str, torch.Tensor]:
    """Each gate keeps its `round_width` highest-scored dimensions instead of the `global_masks` count (ties
    by position): the learned per-layer ratios, at widths the kernels like. The total changes a little."""
    out = {}
    for k, m in masks.items():
        n = round_width(m.numel(), int(m.sum()), multiple)
        top = torch.sort(score_dict[k].flatten().float(), descending=True, stable=True).indices[:n]
        out[k] = torch.zeros(m.numel(), dtype=torch.bool).index_fill_(0, top, True)
    return out


def kept_fraction(masks: dict[str, torch.Tensor]) -> float:
    total = sum(m.numel() for m in masks.values())
    return sum(int(m.sum()) for m in masks.values()) / total


def slim_linear(linear: nn.Linear, keep_in: torch.Tensor | None = None, keep_out: torch.Tensor | None = None,
                in_scale: torch.Tensor | None = None) -> nn.Linear:
    """A new, smaller Linear with only the kept input columns / output rows (index tensors).

    in_scale (one factor per *kept* input) is folded into the columns: slim(x[kept]) == linear(x * s)[out].
    """
    w, b = linear.weight.detach(), None if linear.bias is None else linear.bias.detach()
    if keep_out is not None:
        w, b = w[keep_out], None if b is None else b[keep_out]
    if keep_in is not None:
        w = w[:, keep_in]
    if in_scale is not None:
        w = w * in_scale
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


@torch.no_grad()
def zero_pruned(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of the gated model with the pruned scores set to 0 (the 'masked' model slimming must equal)."""
    model = copy.deepcopy(model)
    for k, g in gates(model).items():
        g.raw.mul_(masks[k].to(g.raw.device))
    return model


@torch.no_grad()
def slim(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """A new, physically smaller ViT: pruned dimensions removed, kept scores folded into the weights.

    Per block: norm1 -> KeptLayerNorm (kept qkv inputs), qkv -> Linear(k_attn, 3 dim) without a gate;
    fc1 -> Linear(dim, k_mlp) (kept hidden rows), fc2 -> Linear(k_mlp, dim). The result has no gates.
    """
    slim_model = copy.deepcopy(model)
    gated = gates(slim_model)
    for i, blk in enumerate(slim_model.blocks):
        qkv, fc2 = blk.attn.qkv, blk.mlp.fc2
        ka = torch.nonzero(masks[f"block{i}.attn"]).flatten().to(qkv.linear.weight.device)
        km = torch.nonzero(masks[f"block{i}.mlp"]).flatten().to(fc2.linear.weight.device)
        if len(ka) < qkv.linear.in_features:  # nothing pruned: keep the plain LayerNorm (no gather)
            blk.norm1 = KeptLayerNorm(blk.norm1, ka)
        blk.attn.qkv = slim_linear(qkv.linear, keep_in=ka, in_scale=gated[f"block{i}.attn"].score[ka])
        blk.mlp.fc1 = slim_linear(blk.mlp.fc1, keep_out=km)
        blk.mlp.fc2 = slim_linear(fc2.linear, keep_in=km, in_scale=gated[f"block{i}.mlp"].score[km])
    return slim_model


def layer_widths(model: nn.Module) -> list[dict]:
    """Per block, the qkv input width and the MLP hidden width of a (gated, slim or plain) ViT."""
    out = []
    for blk in model.blocks:
        qkv = blk.attn.qkv.linear if isinstance(blk.attn.qkv, GatedLinear) else blk.attn.qkv
        out.append({"attn": qkv.in_features, "mlp": blk.mlp.fc1.out_features})
    return out

