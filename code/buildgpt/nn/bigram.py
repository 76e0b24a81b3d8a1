"""The bigram language model: the next character depends only on the current one."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .loss import cross_entropy


class BigramLanguageModel(nn.Module):
    """A lookup table: row `i` holds the logits of the character that follows character `i`."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.token_logits = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.token_logits(idx)  # (B, T, vocab_size)
        loss = None if targets is None else cross_entropy(logits, targets)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend each row of `idx` (B, T) by sampling `max_new_tokens` characters, one at a time."""
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if idx.numel() == 0:
            raise ValueError("generation needs a prompt of at least one token per row")
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -1:])  # only the last character matters
            probs = F.softmax(logits[:, -1, :], dim=-1)  # (B, vocab_size)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
            idx = torch.cat((idx, next_id), dim=1)
        return idx
