"""Measuring a model: the mean loss over random batches, over a whole split, in bits per byte."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .objectives import BatchSource, LossFn, next_token_loss


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, batches: BatchSource, eval_iters: int, batch_size: int,
                  device: str | torch.device = "cpu", generator: torch.Generator | None = None,
                  loss_fn: LossFn = next_token_loss, splits: tuple[str, ...] = ("train", "val")) -> dict[str, float]:
    """The mean loss over `eval_iters` random batches of each of `splits`, in eval mode.

    One batch is noisy; averaging many gives a curve smooth enough to compare runs.
    Example: `estimate_loss(model, TokenBatches(train, val, 64), eval_iters=20, batch_size=32)`.
    """
    was_training = model.training
    model.eval()
    losses = {}
    try:
        for split in splits:
            total = 0.0
            for _ in range(eval_iters):
                batch = tuple(t.to(device) for t in batches.batch(split, batch_size, generator))
                total += loss_fn(model, batch).item()
            losses[split] = total / eval_iters
    finally:
        model.train(was_training)
    return losses


@torch.no_grad()
def split_loss(model: torch.nn.Module, data: torch.Tensor, block_size: int, batch_size: int = 64,
               device: str | torch.device = "cpu") -> float:
    """The mean loss over every token of `data`, read in consecutive windows of `block_size`.

    Unlike `estimate_loss`, nothing is sampled: each of the len(data) - 1 next-token
    predictions is scored once, so the number is exact and repeatable. Positions early in a
    window see less context, as they do in training.
    Example: `split_loss(model, val_data, model.config.block_size)`.
    """
    if len(data) < 2:
        raise ValueError(f"the data has {len(data)} tokens; scoring needs at least 2")
    was_training = model.training
    model.eval()
    starts = range(0, len(data) - 1, block_size)
    full = [s for s in starts if s + block_size < len(data)]
    groups = [(full[i:i + batch_size], block_size) for i in range(0, len(full), batch_size)]
    if tail := [s for s in starts if s + block_size >= len(data)]:  # one shorter window at the end
        groups.append((tail, len(data) - 1 - tail[0]))
    total, count = 0.0, 0
    try:
        for windows, t in groups:
            x = torch.stack([data[s:s + t] for s in windows]).to(device)
            y = torch.stack([data[s + 1:s + 1 + t] for s in windows]).to(device)
            logits, _ = model(x)
            total += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
    finally:
        model.train(was_training)
    return total / count


def bits_per_byte(loss: float, n_tokens: int, n_bytes: int) -> float:
    """A mean loss of `loss` nats per token, over `n_tokens` predicted tokens that together hold
    `n_bytes` bytes of text, as bits per byte.

    A loss per token depends on how much text a token holds, so it cannot compare models with
    different tokenizers. The total, `loss * n_tokens` nats, is the cost of the whole text
    whatever the tokens; spread over its bytes and converted to base 2 (divided by ln 2), it can.

    >>> bits_per_byte(math.log(2), n_tokens=4, n_bytes=8)  # a bit per token, two bytes per token
    0.5
    """
    if n_tokens < 1 or n_bytes < 1:
        raise ValueError(f"need at least one token and one byte, got n_tokens={n_tokens}, n_bytes={n_bytes}")
    if not loss >= 0:  # also rejects NaN
        raise ValueError(f"a cross-entropy loss is a number >= 0, got {loss}")
    return loss * n_tokens / (n_bytes * math.log(2))


def unigram_loss(train_data: torch.Tensor, val_data: torch.Tensor, vocab_size: int) -> float:
    """The loss of a model that ignores context: each token predicted with its training-split frequency.

    The floor any model that reads context must beat. Tokens unseen in training get zero
    probability (an infinite loss), which the 90/10 split of a real text does not meet.
    Example: `unigram_loss(train_data, val_data, tokenizer.vocab_size)`.
    """
    counts = torch.bincount(train_data, minlength=vocab_size).double()
    log_probs = torch.log(counts / counts.sum())
    return -log_probs[val_data].mean().item()


def bigram_loss(train_data: torch.Tensor, val_data: torch.Tensor, vocab_size: int) -> float:
    """The loss of the counted bigram table: each token predicted from the one before it alone,
    with the training split's pair counts plus one (so pairs unseen in training keep some probability).

    Chapter 1's trained bigram approaches it; a model that reads more context must go below it.
    Example: `bigram_loss(train_data, val_data, tokenizer.vocab_size)`, about 2.48 nats on tinyshakespeare.
    """
    pairs = train_data[:-1] * vocab_size + train_data[1:]
    counts = torch.bincount(pairs, minlength=vocab_size * vocab_size).double().view(vocab_size, vocab_size) + 1
    log_probs = torch.log(counts / counts.sum(dim=1, keepdim=True))
    return -log_probs[val_data[:-1], val_data[1:]].mean().item()
