"""Cross-attention, as chapter 2 explains it: one sequence asks, another one answers.

In self-attention the queries, keys and values all come from the same sequence. In the
original Transformer's decoder (Vaswani et al. 2017, translation), a second attention layer
takes its queries from the sentence being written and its keys and values from the encoded
source sentence. Every target position may read every source position, so there is no mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class CrossAttention(nn.Module):
    """One head of cross-attention: queries from `x`, keys and values from `context`, no mask.

    Example: `CrossAttention(n_embd=32, head_size=16)(x, context)` with x (B, T, 32) and
    context (B, S, 32) gives (B, T, 16).
    """

    def __init__(self, n_embd: int, head_size: int):
        super().__init__()
        self.query = nn.Linear(n_embd, head_size, bias=False)  # reads the sequence being written
        self.key = nn.Linear(n_embd, head_size, bias=False)  # reads the context
        self.value = nn.Linear(n_embd, head_size, bias=False)  # reads the context
        self.last_weights = None  # (B, T, S) of the last call, for the page

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        C = self.query.in_features
        if x.dim() != 3 or context.dim() != 3 or x.size(0) != context.size(0) or {x.size(-1), context.size(-1)} != {C}:
            raise ValueError(f"expected x (B, T, {C}) and context (B, S, {C}) with the same B, got {tuple(x.shape)} "
                             f"and {tuple(context.shape)}: give one context sequence per sequence of x, both {C} wide")
        q = self.query(x)  # (B, T, head_size)
        k, v = self.key(context), self.value(context)  # (B, S, head_size) each
        scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))  # (B, T, S): no mask, all of the context is visible
        weights = F.softmax(scores, dim=-1)  # each of the T rows sums to 1 over the S context positions
        self.last_weights = weights.detach()
        return weights @ v  # (B, T, head_size)
