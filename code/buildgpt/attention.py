"""Self-attention: scaled dot-product attention from scratch, one head, many heads.

Queries, keys and values have no bias (as in the lecture); the output projection does.

Three implementations of multi-head causal self-attention compute the same function:
- `MultiHeadAttention`: a list of `Head` modules run one after another (the lecture's version);
- `BatchedSelfAttention(fused=False)`: all heads at once, heads as a batch dimension;
- `BatchedSelfAttention(fused=True)`: the same, calling PyTorch's fused kernel.
The batched module also supports a KV cache for fast generation.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dropout import Dropout, dropout as drop
from .norms import RMSNorm
from .positions import alibi_bias, apply_rope, rope_angles


def causal_mask(t_query: int, t_key: int, device=None) -> torch.Tensor:
    """True where query i may attend to key j. Queries are the last `t_query` of `t_key` positions."""
    offset = t_key - t_query
    return torch.ones(t_query, t_key, dtype=torch.bool, device=device).tril(diagonal=offset)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True,
                                 dropout: float = 0.0, training: bool = False,
                                 return_weights: bool = False, bias: torch.Tensor | None = None):
    """softmax(q kᵀ / sqrt(d) + bias + mask) v, written out; q: (..., Tq, d), k and v: (..., Tk, d).

    The 1/sqrt(d) keeps the scores' variance near 1 whatever the head size, so the softmax
    does not saturate into a one-hot at initialisation. `bias` (broadcast to the scores) is
    where ALiBi's distance penalty goes.
    """
    scores = (q / math.sqrt(q.size(-1))) @ k.transpose(-2, -1)  # scaling q: T·d numbers, not T·T scores
    if bias is not None:
        scores = scores + bias
    if causal:
        scores = scores.masked_fill_(~causal_mask(q.size(-2), k.size(-2), q.device), float("-inf"))  # fresh: in place
    weights = F.softmax(scores, dim=-1)
    out = drop(weights, dropout, training) @ v
    return (out, weights) if return_weights else out


class Head(nn.Module):
    """One head of causal self-attention: each position asks (query), advertises (key) and tells (value)."""

    def __init__(self, n_embd: int, head_size: int, dropout: float = 0.0):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.dropout = dropout
        self.last_weights = None  # (B, T, T), kept when record_weights is set, for figures
        self.record_weights = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, weights = scaled_dot_product_attention(self.query(x), self.key(x), self.value(x),
                                                    dropout=self.dropout, training=self.training,
                                                    return_weights=True)
        if self.record_weights:
            self.last_weights = weights.detach()
        return out


class MultiHeadAttention(nn.Module):
    """Several heads side by side, outputs concatenated, then projected back into the residual stream."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.heads = nn.ModuleList(Head(n_embd, n_embd // n_head, dropout) for _ in range(n_head))
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: "KVCache | None" = None) -> torch.Tensor:
        if cache is not None:
            raise NotImplementedError("the per-head module has no KV cache; use attention='batched' or 'fused'")
        return self.resid_dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=-1)))

    @property
    def record_weights(self) -> bool:
        return self.heads[0].record_weights

    @record_weights.setter
    def record_weights(self, value: bool) -> None:
        for h in self.heads:
            h.record_weights = value

    @property
    def last_weights(self) -> torch.Tensor:
        """(B, n_head, T, T) attention weights of the last forward pass."""
        return torch.stack([h.last_weights for h in self.heads], dim=1)


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer: (B, n_head, T, head_size).

    They live in buffers that grow by doubling, so a generation step writes one new slot
    instead of copying the whole cache (as torch.cat would, every step).
    """

    def __init__(self):
        self._k = self._v = None
        self.length = 0

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.size(2)
        if self._k is None or end > self._k.size(2):
            capacity = max(end, 2 * (0 if self._k is None else self._k.size(2)), 16)
            self._k, self._v = (self._grow(old, new, capacity) for old, new in ((self._k, k), (self._v, v)))
        self._k[:, :, self.length:end] = k
        self._v[:, :, self.length:end] = v
        self.length = end
        return self.k, self.v

    def _grow(self, old: torch.Tensor | None, new: torch.Tensor, capacity: int) -> torch.Tensor:
        buffer = new.new_empty(*new.shape[:2], capacity, new.size(3))
        if old is not None:
            buffer[:, :, :self.length] = old[:, :, :self.length]
        return buffer

    @property
    def k(self) -> torch.Tensor | None:
        return None if self._k is None else self._k[:, :, :self.length]

    @property
    def v(self) -> torch.Tensor | None:
        return None if self._v is None else self._v[:, :, :self.length]


class BatchedSelfAttention(nn.Module):
    """All heads at once: one matrix multiply makes every head's q, k and v; heads become a batch dimension.

    `position` adds relative position information inside attention: "rope" rotates queries and
    keys, "alibi" biases the scores by distance (see `positions.py`). `qk_norm` RMS-normalises
    each head's queries and keys before their dot product, which bounds the scores.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, fused: bool = False,
                 position: str | None = None, qk_norm: bool = False):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        if position not in (None, "rope", "alibi"):
            raise ValueError(f"attention-level position must be None, 'rope' or 'alibi', got {position!r}")
        self.n_head = n_head
        self.position = position
        self.q_norm = RMSNorm(n_embd // n_head) if qk_norm else None
        self.k_norm = RMSNorm(n_embd // n_head) if qk_norm else None
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = dropout
        self.resid_dropout = Dropout(dropout)
        self.fused = fused
        self.record_weights = False
        self.last_weights = None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, n_head, T, C // n_head)."""
        B, T, C = x.shape
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = map(self.split_heads, self.qkv(x).split(C, dim=2))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        start = cache.length if cache is not None else 0
        if self.position == "rope":  # rotate by absolute position; cached keys are stored rotated
            cos, sin = rope_angles(torch.arange(start, start + T, device=x.device), C // self.n_head)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.extend(k, v)
        bias = alibi_bias(self.n_head, T, k.size(2), x.device) if self.position == "alibi" else None
        dropout = self.dropout if self.training else 0.0
        # PyTorch has no fused CPU kernel with dropout: it falls back to the written-out math, which
        # ours matches with a cheaper random mask (dropout.py).
        fused = self.fused and not self.record_weights and not (dropout and x.device.type == "cpu")
        if fused:
            if bias is not None:  # the fused kernel takes a float mask: the bias, -inf in the future
                mask = bias.masked_fill(~causal_mask(T, k.size(2), x.device), float("-inf")).to(q.dtype)
            elif T == 1 or k.size(2) == T:  # one new query sees every key; or square: is_causal suffices
                mask = None
            else:  # is_causal assumes square attention; with cached keys, pass the offset mask instead
                mask = causal_mask(T, k.size(2), x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                               is_causal=mask is None and T > 1)
        else:
            y, weights = scaled_dot_product_attention(q, k, v, dropout=dropout, training=self.training,
                                                      return_weights=True, bias=bias)
            if self.record_weights:
                self.last_weights = weights.detach()
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.proj(y))

    @torch.no_grad()
    def load_from_heads(self, mha: MultiHeadAttention) -> "BatchedSelfAttention":
        """Copy the weights of a per-head module, so both compute the same function."""
        for i, part in enumerate(("query", "key", "value")):
            rows = torch.cat([getattr(h, part).weight for h in mha.heads], dim=0)
            self.qkv.weight[i * rows.size(0):(i + 1) * rows.size(0)].copy_(rows)
        self.proj.load_state_dict(mha.proj.state_dict())
        return self
