"""Normalisation layers beyond torch's LayerNorm.

`RMSNorm` (Zhang & Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * g, over the last axis, with a learnable
gain g (initialised to 1) and no bias or mean subtraction. Transformer++ (LLaMA-style) and the MatMul-free
LM [9] use it before every token and channel mixer, and BitLinear applies one to its own input (Sec. 3.1).
"""
from __future__ import annotations

import torch
from torch import nn


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(mean(x^2, last axis) + eps), times `weight` if given; computed in float32."""
    y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    y = y.to(x.dtype)
    return y * weight if weight is not None else y


class RMSNorm(nn.Module):
    """Root-mean-square normalisation over the last axis with a learnable gain."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
