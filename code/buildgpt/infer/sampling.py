"""Choosing the next token from the model's logits: temperature, top-k, top-p (nucleus)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_TEMPERATURE = 1e-4  # the smallest temperature that is not 0: below it, use greedy decoding


def check_sampling_args(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Reject settings that have no meaning, before any work is done.

    `max_new_tokens=0` is allowed and generates nothing; `temperature=0` means greedy;
    a `top_k` larger than the vocabulary keeps the whole vocabulary.
    Example: `check_sampling_args(100, temperature=0.8, top_k=40, top_p=None)` passes; `top_k=0` raises.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not math.isfinite(temperature) or temperature < 0:  # NaN passes a `< 0` check, then samples garbage
        raise ValueError(f"temperature must be a number >= 0 (0 means greedy), got {temperature}")
    if 0 < temperature < MIN_TEMPERATURE:  # far enough below, dividing by it overflows float32 logits: NaN
        raise ValueError(f"temperature {temperature} is too small to divide by: use 0 for greedy decoding "
                         f"(which it would be anyway), or at least {MIN_TEMPERATURE}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None for no limit), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:  # NaN fails both comparisons, so it is refused too
        raise ValueError(f"top_p must be in (0, 1] (or None for no limit), got {top_p}")


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of `logits` (B, vocab), returned as (B, 1).

    Temperature divides the logits: below 1 sharpens the distribution, above 1 flattens it.
    top-k keeps the k likeliest tokens; top-p keeps the smallest set whose probability
    reaches p. Both cut off the long tail of unlikely tokens that makes samples derail.

    >>> sample_next(torch.tensor([[0.0, 5.0, 1.0]]), temperature=0)  # greedy: the largest logit
    tensor([[1]])
    """
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1): each row's k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = (cumulative - F.softmax(sorted_logits, dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
