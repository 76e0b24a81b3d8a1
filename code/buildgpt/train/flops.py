"""Model FLOPs utilisation (MFU): the arithmetic a training step needs, over what the device could do.

A token's forward and backward pass cost about 6 FLOPs per weight it meets (2 forward, 4
backward: PaLM's appendix B), plus attention's scores and weighted sums, which have no
weights: 12 per layer, per channel, per position of the context. nanoGPT's `estimate_mfu`
counts the same way, leaving out the position table, which is looked up rather than multiplied.
nanoGPT's token table is also its output layer (tied weights), so it counts that matrix once, as
the output multiply; ours are two matrices, so the token table, only looked up, is left out too.
"""

from __future__ import annotations

import torch.nn as nn

from ..nn.model import GPT


def flops_per_token(model: GPT) -> float:
    """FLOPs of one token's forward and backward pass in a full context: 6N + 12 L C T.

    Example: `flops_per_token(GPT(LECTURE_MODEL))` is about 7e7.
    """
    c = model.config
    tables = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))  # read by index: no multiply
    n = sum(p.numel() for p in model.parameters()) - tables
    return 6 * n + 12 * c.n_layer * c.n_embd * c.block_size


def model_flops_utilization(model: GPT, tokens_per_second: float, peak_flops: float) -> float:
    """The fraction of `peak_flops` (FLOP/s) that training at `tokens_per_second` uses.

    Example: `model_flops_utilization(model, history.tokens_per_second[-1], 989e12)` on an H100 in bfloat16.
    """
    if peak_flops <= 0:
        raise ValueError(f"peak_flops must be positive (the device's FLOP/s), got {peak_flops}")
    return flops_per_token(model) * tokens_per_second / peak_flops

