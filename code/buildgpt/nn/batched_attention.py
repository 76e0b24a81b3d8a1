"""Exercise 1: every head at once. One matrix multiply makes all heads' queries, keys and values,
and the heads become a batch dimension, so the attention of all of them is one batched matmul."""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention import MultiHeadAttention, attention_weights
from .dropout import Dropout


class BatchedSelfAttention(nn.Module):
    """The same function as `MultiHeadAttention`, with the heads as a batch dimension."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)  # every head's q, k and v in one matrix
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = Dropout(dropout)
        self.dropout = Dropout(dropout)
        self.last_weights = None  # (B, n_head, T, T) of the last call, for the figures

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, n_head, T, C // n_head)."""
        B, T, C = x.shape
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = map(self.split_heads, self.qkv(x).split(C, dim=2))  # each (B, n_head, T, head_size)
        weights = attention_weights(q, k)  # (B, n_head, T, T)
        self.last_weights = weights.detach()
        y = self.attn_dropout(weights) @ v  # (B, n_head, T, head_size)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.dropout(self.proj(y))

    @torch.no_grad()
    def load_from_heads(self, mha: MultiHeadAttention) -> BatchedSelfAttention:
        """Copy the weights of a per-head module, so both compute the same function."""
        for i, part in enumerate(("query", "key", "value")):
            rows = torch.cat([getattr(h, part).weight for h in mha.heads], dim=0)
            self.qkv.weight[i * rows.size(0):(i + 1) * rows.size(0)].copy_(rows)
        self.proj.load_state_dict(mha.proj.state_dict())
        return self
