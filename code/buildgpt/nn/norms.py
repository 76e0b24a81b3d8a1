"""Normalisation: LayerNorm (GPT-2), written out and as a layer; RMSNorm (Zhang & Sennrich, 2019)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm written out: each position's features to mean 0 and variance 1, then scale and shift.

    >>> layer_norm(torch.tensor([[1.0, 2.0, 3.0]]), weight=torch.ones(3), bias=None).round(decimals=3)
    tensor([[-1.2250,  0.0000,  1.2250]])
    """
    centered = x - x.mean(dim=-1, keepdim=True)
    var = centered.pow(2).mean(dim=-1, keepdim=True)  # the population variance, as nn.LayerNorm
    x = centered * torch.rsqrt(var + eps) * weight
    return x if bias is None else x + bias


class LayerNorm(nn.Module):
    """`layer_norm` as a layer, with a learned gain (and bias, optional, as in nanoGPT).

    It calls PyTorch's fused kernel, which computes the same function as `layer_norm` (tested
    equal) in one pass over memory, where the written-out version makes five.
    """

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


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
