"""Generating text from a GPT: sample a token, append it, repeat; with a KV cache, one position per step."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..nn.model import GPT
from .kv_cache import KVCache, forward_cached, supports_cache
from .sampling import check_sampling_args, sample_next


@torch.no_grad()
def generate_stream(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                    generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield each new token (B, 1) as soon as it is sampled.

    Only the last `block_size` tokens are ever used as context: a longer prompt is cropped.
    With `use_cache`, keys and values of past positions are kept (KV cache), so each step
    runs the model on one new token instead of the whole window; the tokens are the same as
    without the cache while the sequence fits the window. Once it outgrows the window, the
    cache is rebuilt from the last `block_size // 2` tokens (positions are absolute, so a
    full cache cannot simply slide), so from then on the context is half to one window long.
    `temperature=0` means greedy decoding. See `sampling.sample_next` for top-k and top-p.
    Example: `for token in generate_stream(model, prompt, 100): print(decode(token[0]))`.
    """
    check_sampling_args(max_new_tokens, temperature, top_k, top_p)
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError("the prompt must be a (batch, time) tensor with at least one token")
    use_cache = use_cache and supports_cache(model)
    was_training = model.training
    model.eval()
    window = model.config.block_size
    caches = None
    try:
        for _ in range(max_new_tokens):
            if not use_cache:  # recompute the whole (cropped) context
                logits, _ = model(idx[:, -window:])
            elif caches is None or caches[0].length >= window:  # first step, or the cache is full:
                keep = window if caches is None else max(1, window // 2)  # (re)fill it from the last tokens
                caches = [KVCache() for _ in model.blocks]
                logits = forward_cached(model, idx[:, -keep:], caches)
            else:  # only the newest token runs; the rest is in the cache
                logits = forward_cached(model, idx[:, -1:], caches)
            # only the last position's logits matter: they predict the next token
            next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
            idx = torch.cat((idx, next_id), dim=1)
            yield next_id
    finally:
        model.train(was_training)


@torch.no_grad()
def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """The prompt followed by `max_new_tokens` sampled tokens; keyword arguments as `generate_stream`.

    Example: `generate(model, torch.zeros(1, 1, dtype=torch.long), 500, top_k=40)`.
    """
    new = list(generate_stream(model, idx, max_new_tokens, **kwargs))
    return torch.cat([idx, *new], dim=1)
