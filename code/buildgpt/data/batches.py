"""From one long tensor of token ids to training batches: the split, and random windows."""

from __future__ import annotations

import torch


def train_val_split(data: torch.Tensor, train_fraction: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `train_fraction` of the tokens for training, the rest held out for validation.

    A contiguous split (not a shuffled one) keeps validation text the model has never seen
    in any context.

    >>> [part.tolist() for part in train_val_split(torch.arange(10), 0.8)]
    [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9]]
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    n = int(train_fraction * len(data))
    return data[:n], data[n:]


def check_fits_one_window(n_tokens: int, block_size: int) -> None:
    """Raise a clear error when `n_tokens` cannot fill one window of `block_size` plus its next token.

    Example: `check_fits_one_window(100, block_size=8)` passes; `check_fits_one_window(8, 8)` raises.
    """
    if n_tokens < block_size + 1:
        raise ValueError(
            f"the data has {n_tokens} tokens, but one window of block_size={block_size} needs "
            f"{block_size + 1} (inputs plus the next token); use more text or a smaller block_size"
        )


def get_batch(data: torch.Tensor, batch_size: int, block_size: int, device: str | torch.device = "cpu",
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows of `block_size` tokens (x) and the same windows shifted by one (y).

    >>> x, y = get_batch(torch.arange(100), batch_size=2, block_size=4)
    >>> (y - x).unique().tolist()  # every target is the token after its input
    [1]
    """
    check_fits_one_window(len(data), block_size)
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size)  # (T,)
    x = data[starts[:, None] + offsets]  # (B, T)
    y = data[starts[:, None] + offsets + 1]  # (B, T)
    return x.to(device), y.to(device)


class TokenBatches:
    """The batch source of plain language modelling: random windows of one token stream per split.

    Example: `TokenBatches(train_data, val_data, block_size=64).batch("train", 32)` gives (x, y).
    """

    def __init__(self, train: torch.Tensor, val: torch.Tensor, block_size: int):
        self.splits = {"train": train, "val": val}
        self.block_size = block_size

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None):
        return get_batch(self.splits[split], batch_size, self.block_size, generator=generator)
