"""Self-attention from scratch, as chapter 2 builds it: the formula, one head, many heads.

Every position asks a question (its query), advertises what it holds (its key) and has
something to tell (its value). Queries, keys and values have no bias (as in the lecture); the
output projection does. The batched and fused versions of the same function are in
`batched_attention.py` and `causal_attention.py`, tested equal to these.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dropout import Dropout


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T), True where position i may attend to position j: j <= i, the past and itself.

    Example: `causal_mask(3)` is the lower triangle of a 3x3 matrix of True.
    """
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)), each query blind to later keys: (..., T, T), rows summing to 1.

    >>> attention_weights(torch.zeros(3, 2), torch.zeros(3, 2))  # equal scores: the average of the past
    tensor([[1.0000, 0.0000, 0.0000],
            [0.5000, 0.5000, 0.0000],
            [0.3333, 0.3333, 0.3333]])
    """
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))  # (..., T, T)
    scores = scores.masked_fill(~causal_mask(T, q.device), float("-inf"))  # no peeking ahead
    return F.softmax(scores, dim=-1)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention written out: each position's output is a weighted average of the values.

    The 1/sqrt(d) keeps the scores' variance near 1 whatever the head size, so the softmax
    does not saturate into a one-hot at initialisation.
    Example: `scaled_dot_product_attention(q, k, v)` with q, k, v of shape (B, T, d) gives (B, T, d).
    """
    return attention_weights(q, k) @ v


class Head(nn.Module):
    """One head of causal self-attention."""

    def __init__(self, n_embd: int, head_size: int, dropout: float = 0.0):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.dropout = Dropout(dropout)
        self.last_weights = None  # (B, T, T) of the last call, for the figures

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = attention_weights(self.query(x), self.key(x))  # (B, T, T)
        self.last_weights = weights.detach()
        return self.dropout(weights) @ self.value(x)  # (B, T, head_size)


class MultiHeadAttention(nn.Module):
    """Several heads side by side, outputs concatenated, then projected back into the residual stream."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.heads = nn.ModuleList(Head(n_embd, n_embd // n_head, dropout) for _ in range(n_head))
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, n_embd)
        return self.dropout(self.proj(out))

    @property
    def last_weights(self) -> torch.Tensor:
        """(B, n_head, T, T) attention weights of the last forward pass."""
        return torch.stack([h.last_weights for h in self.heads], dim=1)
