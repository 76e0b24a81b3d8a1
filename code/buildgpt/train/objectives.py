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
