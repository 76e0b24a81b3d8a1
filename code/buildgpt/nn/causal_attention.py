"""The attention the GPT runs: batched heads plus everything later chapters add to them.

`CausalSelfAttention` computes the function of `BatchedSelfAttention` (tested equal) and adds:
- PyTorch's fused kernel (`fused=True`), `F.scaled_dot_product_attention`: one pass over
  memory, no T x T matrix kept (the efficiency chapter measures it);
- relative positions inside attention (chapter 4): "rope" rotates queries and keys, "alibi"
  biases the scores by distance;
- `qk_norm` (exercise 4): RMS-normalised queries and keys per head, which bounds the scores;
- a KV cache (`infer/kv_cache.py`): keys and values of earlier positions, so generation runs
  one new position at a time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .batched_attention import BatchedSelfAttention
from .dropout import dropout as drop
from .norms import RMSNorm
from .positions import alibi_bias, apply_rope, rope_angles

ATTENTION_POSITIONS = (None, "rope", "alibi")


def causal_mask(t_query: int, t_key: int, device=None) -> torch.Tensor:
    """True where query i may attend to key j, when the queries are the last `t_query` of `t_key`
    positions (the rest are in a KV cache): chapter 2's lower triangle, shifted right.

    Example: `causal_mask(1, 4)` is one row of four True: the newest position sees every key.
    """
    return torch.ones(t_query, t_key, dtype=torch.bool, device=device).tril(diagonal=t_key - t_query)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
           dropout: float = 0.0, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Written-out causal attention with an additive `bias` and dropout; (output, weights).

    The queries are the last q.size(-2) of k.size(-2) positions (a KV cache holds the rest).
    Cheaper than `attention.scaled_dot_product_attention` (tested equal): q is scaled, T·d
    numbers rather than T·T scores, and the mask is applied in place on the fresh scores.
    Example: `out, weights = attend(q, k, v)` with q, k, v (B, n_head, T, head_size).
    """
    scores = (q / math.sqrt(q.size(-1))) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    scores.masked_fill_(~causal_mask(q.size(-2), k.size(-2), q.device), float("-inf"))
    weights = F.softmax(scores, dim=-1)
    return drop(weights, dropout, training) @ v, weights


class CausalSelfAttention(BatchedSelfAttention):
    """Batched heads with a fused kernel, RoPE or ALiBi, QK-norm and a KV cache, each optional."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, fused: bool = True,
                 position: str | None = None, qk_norm: bool = False):
        super().__init__(n_embd, n_head, dropout, bias)
        if position not in ATTENTION_POSITIONS:
            raise ValueError(f"attention-level position must be None, 'rope' or 'alibi', got {position!r}")
        self.p = dropout
        self.fused = fused
        self.position = position
        self.q_norm = RMSNorm(n_embd // n_head) if qk_norm else None
        self.k_norm = RMSNorm(n_embd // n_head) if qk_norm else None
        self.record_weights = False  # keep the weights (written-out path only) for figures

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        """`cache`: an `infer.kv_cache.KVCache` holding this layer's earlier keys and values, or None."""
        B, T, C = x.shape
        q, k, v = map(self.split_heads, self.qkv(x).split(C, dim=2))  # each (B, n_head, T, head_size)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        start = cache.length if cache is not None else 0
        if self.position == "rope":  # rotate by absolute position; cached keys are stored rotated
            cos, sin = rope_angles(torch.arange(start, start + T, device=x.device), C // self.n_head)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.extend(k, v)  # (B, n_head, start + T, head_size)
        bias = alibi_bias(self.n_head, T, k.size(2), x.device) if self.position == "alibi" else None
        p = self.p if self.training else 0.0
        # PyTorch has no fused CPU kernel with dropout: it falls back to the written-out math, which
        # `attend` matches with a cheaper random mask (dropout.py).
        if self.fused and not self.record_weights and not (p and x.device.type == "cpu"):
            y = self._fused(q, k, v, bias, p)
        else:
            y, weights = attend(q, k, v, bias, p, self.training)
            if self.record_weights:
                self.last_weights = weights.detach()
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.dropout(self.proj(y))

    @staticmethod
    def _fused(q, k, v, bias: torch.Tensor | None, p: float) -> torch.Tensor:
        T, t_key = q.size(2), k.size(2)
        if bias is not None:  # the fused kernel takes a float mask: the bias, -inf in the future
            mask = bias.masked_fill(~causal_mask(T, t_key, q.device), float("-inf")).to(q.dtype)
        elif T == 1 or t_key == T:  # one new query sees every key; or square: is_causal suffices
            mask = None
        else:  # is_causal assumes square attention; with cached keys, pass the offset mask instead
            mask = causal_mask(T, t_key, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=mask is None and T > 1)
