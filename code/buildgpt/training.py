"""A small training loop: AdamW steps on random batches, with the loss measured as it goes."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

with warnings.catch_warnings():  # without ipywidgets, tqdm.auto falls back to text bars; that is fine
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from .batches import estimate_loss, get_batch


@dataclass
class TrainConfig:
    max_iters: int = 3000
    eval_interval: int = 200
    eval_iters: int = 100
    batch_size: int = 32
    block_size: int = 8
    learning_rate: float = 1e-2
    seed: int = 1337


@dataclass
class History:
    """The measured losses: `steps[i]` is when `train[i]` and `val[i]` were estimated."""

    steps: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)

    @property
    def final_val(self) -> float:
        return self.val[-1]


def train(model: torch.nn.Module, train_data: torch.Tensor, val_data: torch.Tensor,
          config: TrainConfig, device: str = "cpu", progress: bool = True) -> History:
    """Train `model` in place and return its loss history (evaluated every `eval_interval` steps and at the end)."""
    batches = torch.Generator().manual_seed(config.seed)
    evals = torch.Generator().manual_seed(config.seed + 1)  # same eval batches, whatever the training does
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    splits = {"train": train_data, "val": val_data}
    history = History()
    bar = tqdm(total=config.max_iters, desc="training", disable=not progress, mininterval=1.0)
    for step in range(config.max_iters + 1):
        if step % config.eval_interval == 0 or step == config.max_iters:
            losses = estimate_loss(model, splits, config.eval_iters, config.batch_size,
                                   config.block_size, device, evals)
            history.steps.append(step)
            history.train.append(losses["train"])
            history.val.append(losses["val"])
            bar.set_postfix(train=f"{losses['train']:.3f}", val=f"{losses['val']:.3f}")
        if step == config.max_iters:
            break
        x, y = get_batch(train_data, config.batch_size, config.block_size, device, batches)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.update(1)
    bar.close()
    return history
