"""The KV cache: keep each layer's keys and values, so generation runs one new position per step.

Without it, every new token re-runs the model over the whole context; with it, past positions'
keys and values are computed once and read back, and a step costs one position's work.
"""

from __future__ import annotations

import torch

from ..nn.model import GPT


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer: (B, n_head, T, head_size).

    They live in buffers that grow by doubling, so a generation step writes one new slot
    instead of copying the whole cache (as torch.cat would, every step).
    Example: `k, v = cache.extend(k_new, v_new)` gives every key and value so far.
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


def supports_cache(model: GPT) -> bool:
    """Whether `forward_cached` computes what `model(idx)` does: a GPT whose forward is `GPT.forward`
    (not a variant with its own, such as Abacus), with batched or fused attention (the per-head
    attention of chapter 3 keeps no cache). Example: `supports_cache(GPT(GPTConfig(attention="fused")))` is True."""
    return type(model).forward is GPT.forward and model.config.attention != "per_head"


def forward_cached(model: GPT, idx: torch.Tensor, caches: list[KVCache]) -> torch.Tensor:
    """`model(idx)`'s logits (B, T, vocab) for tokens that follow the ones already in `caches`.

    The same computation as `GPT.forward` (tested equal), with two differences: positions start
    where the cache ends, and each attention layer reads and extends its cache.
    Example: `caches = [KVCache() for _ in model.blocks]`, then `forward_cached(model, prompt, caches)`.
    """
    if not supports_cache(model):
        raise ValueError("the per-head attention keeps no KV cache; use attention='batched' or 'fused'")
    start = caches[0].length
    x = model.token_embedding(idx) + model.position_embedding(idx.size(1), start)  # (B, T, n_embd)
    x = model.dropout(x)
    for block, cache in zip(model.blocks, caches):
        x = x + block.attn(block.ln1(x), cache)
        x = x + block.ffwd(block.ln2(x))
    return model.lm_head(model.ln_f(x))
