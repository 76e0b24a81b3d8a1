"""The language-modelling loss: cross-entropy of the next token, averaged over the positions that count."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # a target equal to this is not scored (a prompt, padding): masked targets


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss over every scored position of every sequence (logits: B, T, V).

    >>> cross_entropy(torch.zeros(1, 2, 4), torch.tensor([[1, IGNORE_INDEX]]))  # ln 4, one position scored
    tensor(1.3863)
    """
    flat_logits, flat_targets = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)  # (B*T, V), (B*T,)
    return F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE_INDEX)
