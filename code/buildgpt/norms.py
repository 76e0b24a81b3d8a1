"""Normalisation layers, written out: LayerNorm (GPT-2) and RMSNorm (Zhang & Sennrich, 2019)."""

from __future__ import annotations

import torch
import torch.nn as nn


class LayerNorm(nn.Module):
    """Normalise each position's features to mean 0 and variance 1, then scale and shift (learned)."""

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centered = x - x.mean(dim=-1, keepdim=True)
        var = centered.pow(2).mean(dim=-1, keepdim=True)  # the population variance, as nn.LayerNorm
        x = centered * torch.rsqrt(var + self.eps) * self.weight
        return x if self.bias is None else x + self.bias


class RMSNorm(nn.Module):
    """Scale each position's features to unit root-mean-square; no centring, no bias.

    Cheaper than LayerNorm; the paper argues the re-scaling, not the re-centring, is what helps.
    """

    def __init__(self, ndim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight
