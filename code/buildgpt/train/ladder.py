"""Climbing the lecture's ladder: every rung trained with the same budget, then scored the same way.

Each rung is built from the same seed and trained by the package's one loop with the same schedule
(steps, batch, learning rate, seed); the context is its model's. Every rung is scored on the whole
validation split, so the differences between rungs are not noise of a sampled evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..nn.ladder import LadderModel, Pieces
from ..nn.model import GPTConfig
from ..utils.progress import tqdm
from .experiments import fit_and_score
from .loop import History, TrainConfig


@dataclass
class RungRun:
    name: str
    pieces: Pieces
    params: int
    history: History
    val_loss: float  # on the whole validation split
    seconds: float  # training time


def train_rung(name: str, pieces: Pieces, config: GPTConfig, schedule: TrainConfig, train_data: torch.Tensor,
               val_data: torch.Tensor, device: str = "cpu") -> RungRun:
    """Build the rung from `schedule.seed`, train it, score it.

    Example: `train_rung("one head", Pieces("head", False, False, False, False), config, schedule, train, val)`.
    """
    model, history, val, seconds = fit_and_score(lambda: LadderModel(config, pieces), schedule, train_data, val_data,
                                                 device)
    return RungRun(name, pieces, model.num_params(), history, val, seconds)


def climb(rungs: Sequence[tuple[str, Pieces, GPTConfig]], schedule: TrainConfig, train_data: torch.Tensor,
          val_data: torch.Tensor, vocab_size: int, device: str = "cpu", progress: bool = True) -> list[RungRun]:
    """Train every rung `(name, pieces, config)` in order, with the same schedule; a bar counts the rungs.

    Example: `climb(study.rungs(), study.train, train_data, val_data, vocab_size=65)`.
    """
    return [train_rung(name, pieces, replace(config, vocab_size=vocab_size), schedule, train_data, val_data, device)
            for name, pieces, config in tqdm(rungs, desc="rungs", disable=not progress)]
