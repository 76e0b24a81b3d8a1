"""Chapter 3's settings: the GPT it trains, the lecture's ladder of components, and the dropout experiment."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..nn.ladder import LECTURE_RUNGS, Pieces
from ..nn.model import GPTConfig
from ..train.loop import TrainConfig
from .types import GPTSettings

# The ladder's rungs below the top: the lecture's small model, one size per profile.
SMOKE_RUNG = GPTConfig(block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0, mlp="relu", attention="per_head")
CPU_RUNG = GPTConfig(block_size=32, n_layer=2, n_head=4, n_embd=64, dropout=0.0, mlp="relu", attention="per_head")
GPU_RUNG = GPTConfig(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, mlp="relu", attention="per_head")


@dataclass(frozen=True)
class LadderSettings:
    """Every rung of the lecture's ladder trained with one budget (`vocab_size` is replaced by the data's)."""

    model: GPTConfig  # the sizes of every rung but the last
    train: TrainConfig  # the same for every rung: steps, batch, learning rate, seed
    top: GPTConfig  # the last rung: every piece on, with dropout (and larger, where the profile affords it)
    top_name: str  # the last rung's row in the table
    min_margin: float | None  # the full model ("+ LayerNorm") beats the bigram and one head by this (None: no claim)

    def rungs(self) -> list[tuple[str, Pieces, GPTConfig]]:
        """(name, pieces, model) of each rung, bottom to top."""
        return [(name, pieces, self.model) for name, pieces in LECTURE_RUNGS] + [(self.top_name, Pieces(), self.top)]


@dataclass(frozen=True)
class DropoutSettings:
    """One GPT trained without dropout and with it, on a slice of the training text small enough to memorise."""

    model: GPTConfig  # its `dropout` is replaced: 0, then `dropout`
    train: TrainConfig
    train_chars: int  # train on the first this many training characters only
    dropout: float
    min_narrowing: float | None  # dropout shrinks the final val - train gap by at least this (None: no claim)


@dataclass(frozen=True)
class GPTChapterSettings(GPTSettings):
    """Chapter 3: the GPT (as `GPTSettings`), the ladder and the dropout experiment (`overfitting`)."""

    ladder: LadderSettings = field(kw_only=True)
    overfitting: DropoutSettings = field(kw_only=True)
