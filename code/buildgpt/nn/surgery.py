"""Model surgery: give a trained GPT room for new tokens without disturbing the old ones."""

from __future__ import annotations

from dataclasses import replace

import torch

from .model import GPT


@torch.no_grad()
def grow_vocabulary(model: GPT, n_new: int) -> GPT:
    """A copy of `model` with `n_new` more token ids, after the existing ones.

    The old rows of the embedding and of the head are copied, so every old token's logits are
    unchanged; the new embedding rows start at the mean of the old ones (a token "like an
    average token") and the new head rows at zero weight, with a bias (if any) at the old
    minimum, so the new tokens start unlikely and do not dilute the model's predictions.
    Example: `chat_model = grow_vocabulary(model, 3)` for three chat markers.
    """
    if n_new < 1:
        raise ValueError(f"n_new must be at least 1, got {n_new}")
    old = model.config.vocab_size
    grown = GPT(replace(model.config, vocab_size=old + n_new)).to(next(model.parameters()).device)
    state = model.state_dict()
    for name in ("token_embedding.weight", "lm_head.weight", "lm_head.bias"):
        if name in state:
            state[name] = _extend(name, state[name], n_new)
    grown.load_state_dict(state)
    return grown.train(model.training)


def _extend(name: str, rows: torch.Tensor, n_new: int) -> torch.Tensor:
    if name == "token_embedding.weight":
        new = rows.mean(dim=0, keepdim=True).expand(n_new, -1)
    elif name == "lm_head.weight":
        new = rows.new_zeros(n_new, rows.size(1))
    else:  # the head's bias
        new = rows.min().expand(n_new)
    return torch.cat([rows, new])

