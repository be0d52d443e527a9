"""The MatMul-free language model [9] (Zhu et al. 2024, Sec. 3.2): MLGRU token mixer + ternary GLU channel mixer.

MLGRU (Sec. 3.2.1, "MatMul-free Linear Gated Recurrent Unit"), for every position t, all products
elementwise and every projection a ternary BitLinear:

    f_t = sigmoid(BitLinear_f(x_t))                forget gate (optionally raised to a lower bound, below)
    c_t = SiLU(BitLinear_c(x_t)) * (1 - f_t)       candidate, already weighted by the input gate 1 - f_t
    h_t = f_t * h_{t-1} + c_t                      the recurrence: no matrix acts on h, so it is MatMul-free
    g_t = sigmoid(BitLinear_g(x_t))                output gate
    o_t = BitLinear_o(g_t * h_t)

The official code (`mmfreelm/layers/hgrn_bit.py`) gates differently: o_t = BitLinear_o(RMSNorm(BitLinear_g(x_t))
* SiLU(h_t)) (its `FusedRMSNormSwishGate`); `MLGRU(official_gate=True)` builds that (LMConfig.official_gate).

The hidden state is updated by elementwise products only (unlike a GRU or LSTM, whose h_{t-1} passes
through a weight matrix), so the only matrix products left are the ternary projections of x_t.

**Forget-gate lower bound** (from HGRN; the official code's `use_lower_bound`): learnable parameters
B (depth x dim) give each layer a bound lb_l = cumsum(softmax(B, over layers))_l - softmax(B)_0, so the
first layer has lb = 0 and the bound rises with depth; then f_t = lb + (1 - lb) * sigmoid(...). Deeper
layers are made to remember longer.

The channel mixer is `nn.glu.GLU` with BitLinear projections (Sec. 3.2.2); embeddings stay full precision.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.attention import recording
from ..nn.norms import RMSNorm
from ..nn.quant import BitLinear
from .decoder import CausalLM, LMConfig


def mlgru_scan(f: torch.Tensor, c: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = f_t * h_{t-1} + c_t along axis 1: f, c (B, T, D) -> h (B, T, D); h_{-1} = h0 or 0.

    A plain loop over positions: short contexts make it cheap, and it reads like the equation.
    """
    h = torch.zeros_like(c[:, 0]) if h0 is None else h0
    out = []
    for t in range(c.shape[1]):
        h = f[:, t] * h + c[:, t]
        out.append(h)
    return torch.stack(out, 1)


class MLGRU(nn.Module):
    """The MatMul-free token mixer: four ternary projections (f, c, g, o) and an elementwise recurrence."""

    def __init__(self, dim: int, official_gate: bool = False, eps: float = 1e-6):
        super().__init__()
        self.f_proj, self.c_proj, self.g_proj, self.o_proj = (BitLinear(dim, dim) for _ in range(4))
        self.g_norm = RMSNorm(dim, eps) if official_gate else None  # the official RMSNorm-swish output gate
        self.record: list | None = None  # set by record_gates(): forget gates (B, T, D) are appended

    def gates(self, x: torch.Tensor, lower_bound: torch.Tensor | None = None):
        """(f, c): forget gate (raised to the lower bound when given) and the gated candidate."""
        f = torch.sigmoid(self.f_proj(x))
        if lower_bound is not None:
            f = lower_bound + (1 - lower_bound) * f
        return f, F.silu(self.c_proj(x)) * (1 - f)

    def forward(self, x, lower_bound=None):
        f, c = self.gates(x, lower_bound)
        if self.record is not None:
            self.record.append(f.detach())
        h = mlgru_scan(f, c)
        return self.o_proj(self.output_gate(self.g_proj(x), h))

    def output_gate(self, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """sigmoid(g) * h (the paper), or RMSNorm(g) * SiLU(h) (the official code's FusedRMSNormSwishGate)."""
        return self.g_norm(g) * F.silu(h) if self.g_norm is not None else torch.sigmoid(g) * h


def lower_bounds(params: torch.Tensor) -> torch.Tensor:
    """(depth, dim) bounds from the raw parameters: cumulative softmax over layers, minus the first term,
    so layer 0 gets 0 and every bound lies in [0, 1) and rises with depth."""
    p = params.softmax(0)
    return p.cumsum(0) - p[0]


class MatMulFreeLM(CausalLM):
    """Embedding -> depth x (RMSNorm, MLGRU; RMSNorm, ternary GLU) -> RMSNorm -> head (BitLinear by default)."""

    linear = BitLinear

    def __init__(self, cfg: LMConfig):
        super().__init__(cfg)
        self.lower_bound_params = nn.Parameter(torch.zeros(cfg.depth, cfg.dim)) if cfg.lower_bound else None

    def make_mixer(self, i):
        return MLGRU(self.cfg.dim, self.cfg.official_gate)

    def head_linear(self):
        return BitLinear if self.cfg.ternary_head else nn.Linear

    def mixer_kwargs(self):
        if self.lower_bound_params is None:
            return [{} for _ in self.blocks]
        return [{"lower_bound": lb} for lb in lower_bounds(self.lower_bound_params)]


def record_gates(model: nn.Module):
    """Collect every MLGRU's forget gates during the forward passes inside the block: a list that fills with
    one (B, T, D) tensor per layer, in forward order."""
    return recording([m for m in model.modules() if isinstance(m, MLGRU)], "record")
