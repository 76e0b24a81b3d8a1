"""Dropout: zero each activation with probability p during training, scale the rest by 1/(1-p).

On the CPU, drawing the random mask is the expensive part: PyTorch draws one Bernoulli sample
per element, which costs several times our mask (chapter 3 times both). Here one 64-bit random number
decides four elements, 16 bits each: an element is dropped when its 16 bits fall below
round(p * 65536). So the drop probability is p rounded to a multiple of 1/65536 (0.2 becomes
0.199997), and the kept values are scaled by the exact inverse of the keep probability: the
expected output still equals the input. Elsewhere (a GPU) PyTorch's own kernel is fast, and used.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

LEVELS = 1 << 16  # each element's decision uses 16 random bits


def check_probability(p: float) -> None:
    """Refuse a dropout probability outside [0, 1), or so close to 1 that the CPU mask would keep nothing.

    Example: `check_probability(1.0)` raises ValueError.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if round(p * LEVELS) == LEVELS:
        raise ValueError(f"dropout probability {p} rounds to 1 in steps of 1/{LEVELS}: nothing would be kept; "
                         f"use at most {(LEVELS - 1) / LEVELS}")


def keep_mask(shape: torch.Size, p: float) -> tuple[torch.Tensor, float]:
    """A boolean mask that is True with probability 1 - p (rounded), and that probability.

    Example: `keep, kept = keep_mask(torch.Size([8, 64]), 0.2)` gives an (8, 64) mask and `kept` = 0.80000305.
    """
    dropped_levels = round(p * LEVELS)
    numel = shape.numel()
    words = torch.empty((numel + 3) // 4, dtype=torch.int64).random_(-(1 << 63), None)  # all 64 bits random
    bits = words.view(torch.int16)[:numel].view(shape)  # four signed 16-bit lanes per word
    return bits >= dropped_levels - LEVELS // 2, 1 - dropped_levels / LEVELS


class _MaskAndScale(torch.autograd.Function):
    """x where the mask keeps it, else 0, times `scale`; the gradient takes the same path back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0.0).mul_(scale)  # in place on a fresh tensor: one copy fewer

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0.0).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Zero each element with probability `p` and scale the rest by 1 / (1 - p), while training; else `x`.

    Example: `dropout(x, 0.2, training=False)` is `x` itself.
    """
    check_probability(p)
    if not training or p == 0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    keep, keep_probability = keep_mask(x.shape, p)
    return _MaskAndScale.apply(x, keep, 1 / keep_probability)


class Dropout(nn.Module):
    """`dropout` as a layer: active in train() mode, the identity in eval() mode."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        check_probability(p)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
