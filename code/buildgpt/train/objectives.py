"""What the training loop needs to know about a task: where batches come from and what loss they give.

A batch source hands out batches of a split as tuples of tensors; a loss function turns the
model and one batch into one number to minimise. The plain language model's pair is
`data.batches.TokenBatches` and `next_token_loss`; later chapters add their own (masked answers,
chat turns, preference pairs) without touching the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from ..nn.loss import IGNORE_INDEX


class BatchSource(Protocol):
    """Anything that hands out batches: a tuple of tensors for a split ("train" or "val")."""

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        ...


LossFn = Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]


def next_token_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The language-model loss of a batch `(x, y)`: the model's own mean next-token cross-entropy.

    Example: `next_token_loss(model, batches.batch("train", 32))`.
    """
    x, y = batch
    _, loss = model(x, y)
    return loss


def scored_lengths(y: torch.Tensor) -> torch.Tensor:
    """One past each row's last scored target (y != -100), 0 for a row with none: the part of a row that counts.

    Example: `scored_lengths(torch.tensor([[-100, 3, 4, -100]]))` gives tensor([3]).
    """
    scored = y != IGNORE_INDEX  # (B, T)
    return torch.where(scored.any(1), y.size(1) - scored.flip(1).int().argmax(1), 0)


def padding_share(y: torch.Tensor) -> float:
    """The share of a padded batch's positions after each row's last scored target: work that changes no loss.

    Example: `padding_share(torch.tensor([[5, 6, -100, -100]]))` is 0.5.
    """
    return 1 - scored_lengths(y).sum().item() / y.numel()


def unpadded_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], min_saving: float = 0.2,
                  min_batch_saving: float = 0.1) -> torch.Tensor:
    """`next_token_loss` of a padded batch `(x, y)`, computed without running most of the padding: the same value.

    In a causal model nothing after a row's last scored target (y != -100) changes that target's
    loss, so each row can be cut there. Rows run in groups, each cut to its longest row; a shorter
    length gets a group of its own only when that saves at least `min_saving` of its rows' length,
    and the batch is split at all only when that saves `min_batch_saving` of all its positions,
    since every extra run costs time too (split to save a few percent, the calculator's answer-only batches ran
    slower than padded; splitting pays on its traced ones, whose lengths differ more).
    Example: `unpadded_loss(model, ArithmeticBatches(...).batch("train", 64))`.
    """
    x, y = batch
    lengths, counts = scored_lengths(y), (y != IGNORE_INDEX).sum(1)
    if not counts.any():  # the padded loss would be a mean over nothing: NaN
        raise ValueError(f"this batch of {len(y)} rows has no scored target (every y is {IGNORE_INDEX}): nothing to "
                         "learn from. Check the batch source's masks: each row needs at least one target to score")
    cuts: list[int] = []  # the groups' lengths, longest first
    for length in sorted(lengths[lengths > 0].unique().tolist(), reverse=True):
        if not cuts or length <= (1 - min_saving) * cuts[-1]:
            cuts.append(length)
    ascending = torch.tensor(cuts[::-1], device=y.device)
    cut_of_row = torch.where(lengths > 0, ascending[torch.bucketize(lengths, ascending)], 0)  # shortest cut >= length
    if cut_of_row.sum() > (1 - min_batch_saving) * cuts[0] * (lengths > 0).sum():  # too little saved: one run
        return model(x[:, :cuts[0]], y[:, :cuts[0]])[1]
    total = y.new_zeros((), dtype=torch.float32)
    for cut in cuts:
        rows = (cut_of_row == cut) & (lengths > 0)
        _, loss = model(x[rows, :cut], y[rows, :cut])  # the mean over this group's scored targets
        total = total + loss * counts[rows].sum()
    return total / counts.sum()
