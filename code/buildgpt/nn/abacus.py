"""Abacus embeddings (McLeish et al. 2024): each digit learns where it sits in its number.

Chapter 4's schemes number the positions of the whole text, so digit i of one operand and digit
i of the other sit at positions that change with every operand's length. Abacus numbers each
digit within its own number instead: with every number written units first, index i is the
10^(i-1) column in `a`, in `b` and in the sum alike, whatever their lengths. During training
every index of a sequence is shifted by one random offset, so the rows for longer numbers than
any trained on are trained too: that is what lets the model add longer numbers.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .loss import cross_entropy
from .model import GPT, GPTConfig


def digit_indices(is_digit: torch.Tensor) -> torch.Tensor:
    """(B, T): 1, 2, 3, ... along each run of digits, 0 elsewhere.

    Example: for "12+345=" the indices are 1 2 0 1 2 3 0.
    """
    run = torch.cumsum(is_digit.long(), dim=1)  # digits seen so far
    before = torch.cummax(torch.where(is_digit, 0, run), dim=1).values  # ... when the current number began
    return (run - before) * is_digit


class AbacusEmbedding(nn.Module):
    """A learned vector per digit index (row 0: not a digit), indices shifted by a random offset in training."""

    def __init__(self, digit_ids: list[int], vocab_size: int, n_embd: int, max_digits: int, max_offset: int):
        super().__init__()
        is_digit = torch.zeros(vocab_size, dtype=torch.bool)
        is_digit[digit_ids] = True
        self.register_buffer("is_digit", is_digit, persistent=False)
        self.max_offset = max_offset
        self.table = nn.Embedding(1 + max_digits + max_offset, n_embd)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        is_digit = self.is_digit[idx]  # (B, T)
        index = digit_indices(is_digit)
        longest = int(index.max())
        max_digits = self.table.num_embeddings - 1  # at test time the offset rows hold longer numbers
        if self.training:
            max_digits -= self.max_offset  # room for the largest offset
        if longest > max_digits:
            raise ValueError(f"a number of {longest} digits is longer than the Abacus table holds "
                             f"{'in training ' if self.training else ''}({max_digits}); build it with a larger max_digits")
        if self.training and self.max_offset:  # one offset per sequence: lengths beyond training get trained rows
            offset = torch.randint(0, self.max_offset + 1, (idx.size(0), 1), device=idx.device)
            index = torch.where(is_digit, index + offset, 0)
        return self.table(index)  # (B, T, n_embd)


class AbacusGPT(GPT):
    """The GPT with Abacus embeddings in place of position embeddings (`config.position` must be "none")."""

    def __init__(self, config: GPTConfig, digit_ids: list[int], max_digits: int, max_offset: int):
        if config.position != "none":
            raise ValueError(f"Abacus replaces position embeddings: use position='none', not {config.position!r}")
        super().__init__(config)
        self.abacus = AbacusEmbedding(digit_ids, config.vocab_size, config.n_embd, max_digits, max_offset)
        nn.init.normal_(self.abacus.table.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x = self.dropout(self.token_embedding(idx) + self.abacus(idx))  # (B, T, n_embd)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return logits, None if targets is None else cross_entropy(logits, targets)
