"""Many prompts of one length decoded together: the prompts once, then one new position per row per step.

The rows share one KV cache (a model that cannot use the cache reruns the whole text each step,
still as one batch). Each task says when a row has ended: exercise 2 at the newline after its
answer, the assistant at `<|end|>`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..nn.model import GPT
from .kv_cache import KVCache, forward_cached, supports_cache
from .sampling import check_sampling_args, sample_next


@torch.no_grad()
def decode_until(model: GPT, prompts: torch.Tensor, max_new_tokens: int, ends: Callable[[torch.Tensor], torch.Tensor],
                 temperature: float = 0.0, generator: torch.Generator | None = None) -> list[list[int]]:
    """The new tokens of each prompt (B, T), up to and including the one where `ends` first says True.

    `ends(next_id)` gets the step's new token of every row (B,) and returns which rows end there
    (it may keep state across steps). Decoding stops when every row has ended, or at
    `max_new_tokens`. Greedy when `temperature` is 0.
    Example: `decode_until(model, prompts, 50, lambda t: t == end_id)`.
    """
    check_sampling_args(max_new_tokens, temperature, None, None)
    if max_new_tokens == 0:
        return [[] for _ in range(prompts.size(0))]
    if prompts.size(1) + max_new_tokens - 1 > model.config.block_size:
        raise ValueError(f"prompts of {prompts.size(1)} tokens and {max_new_tokens} new ones need a block_size of "
                         f"{prompts.size(1) + max_new_tokens - 1}; the model has {model.config.block_size}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    use_cache = supports_cache(model)
    caches = [KVCache() for _ in model.blocks]
    ended = torch.zeros(prompts.size(0), dtype=torch.bool, device=device)
    lengths = torch.full(ended.shape, max_new_tokens, device=device)
    tokens, idx = [], prompts.to(device)
    try:
        for step in range(max_new_tokens):
            if use_cache:
                logits = forward_cached(model, idx, caches)[:, -1, :]
            else:
                logits = model(torch.cat([prompts.to(device), *(t[:, None] for t in tokens)], dim=1))[0][:, -1]
            next_id = sample_next(logits, temperature, generator=generator)[:, 0]  # (B,)
            tokens.append(next_id)
            stops = ~ended & ends(next_id)
            lengths[stops] = step + 1
            ended |= stops
            if ended.all():
                break
            idx = next_id[:, None]
    finally:
        model.train(was_training)
    rows = torch.stack(tokens, dim=1).tolist()
    return [row[:n] for row, n in zip(rows, lengths.tolist())]
