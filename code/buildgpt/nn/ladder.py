"""The lecture's ladder: a GPT assembled one component at a time, to measure what each one buys.

Each rung switches on one more piece of the package's own modules, in the lecture's order:
one `Head` of self-attention on top of the bigram's embeddings, then `MultiHeadAttention`, then a
`FeedForward` after it, then a stack of layers, then residual connections (the package's
`Block`, its norms switched off), then LayerNorm. With every piece on the model is `GPT` itself:
same parameter names, and with the same weights the same logits (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .attention import Head, MultiHeadAttention
from .dropout import Dropout
from .loss import cross_entropy
from .model import Block, FeedForward, GPTConfig, make_norm, make_positions

ATTENTIONS = ("none", "head", "multi_head")


@dataclass(frozen=True)
class Pieces:
    """Which components a rung has; each needs the one before it (the lecture's order)."""

    attention: str = "multi_head"  # "none" (the bigram), "head" (one head as wide as the model) or "multi_head"
    feed_forward: bool = True  # a feed-forward after each attention
    stacked: bool = True  # config.n_layer layers; False: one
    residual: bool = True  # each sub-layer added to its input, x + f(x), instead of replacing it
    layer_norm: bool = True  # LayerNorm before each sub-layer (pre-norm) and before the head

    def __post_init__(self):
        if self.attention not in ATTENTIONS:
            raise ValueError(f"Pieces.attention={self.attention!r}; choose one of {ATTENTIONS}")
        order = [("attention", self.attention != "none"), ("multi_head", self.attention == "multi_head"),
                 ("feed_forward", self.feed_forward), ("stacked", self.stacked), ("residual", self.residual),
                 ("layer_norm", self.layer_norm)]
        for (before, has_before), (name, has) in zip(order, order[1:]):
            if has and not has_before:
                raise ValueError(f"Pieces: {name} needs {before} (the ladder adds them in that order)")


# The lecture's rungs below the full model, in order: (name, pieces).
LECTURE_RUNGS = (
    ("bigram", Pieces("none", False, False, False, False)),
    ("one head", Pieces("head", False, False, False, False)),
    ("multi-head", Pieces("multi_head", False, False, False, False)),
    ("+ feed-forward", Pieces("multi_head", True, False, False, False)),
    ("+ stacked layers", Pieces("multi_head", True, True, False, False)),
    ("+ residual", Pieces("multi_head", True, True, True, False)),
    ("+ LayerNorm", Pieces()),
)


def make_layer(config: GPTConfig, pieces: Pieces) -> nn.Module:
    """One layer of a rung: the package's `Block` once residuals are on, else attention (then feed-forward).

    Example: `make_layer(GPTConfig(n_embd=32, n_head=4), Pieces("head", False, False, False, False))` is a `Head`.
    """
    if pieces.residual:
        block = Block(config)
        if not pieces.layer_norm:
            block.ln1, block.ln2 = nn.Identity(), nn.Identity()
        return block
    if pieces.attention == "head":
        attention = Head(config.n_embd, config.n_embd, config.dropout)
    else:
        attention = MultiHeadAttention(config.n_embd, config.n_head, config.dropout, config.bias)
    return nn.Sequential(attention, FeedForward(config)) if pieces.feed_forward else attention


class LadderModel(nn.Module):
    """A GPT with only some of its pieces: embeddings, the rung's layers, (a final norm,) the head.

    Laid out as `GPT` (same parameter names), but every rung keeps PyTorch's default initialisation,
    as the lecture's did: GPT-2's smaller one (`GPT._init_weights`) is made for a residual stream and
    starves the rungs that have none.
    """

    def __init__(self, config: GPTConfig, pieces: Pieces = Pieces()):
        super().__init__()
        self.config, self.pieces = config, pieces
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = make_positions(config)
        self.dropout = Dropout(config.dropout)
        n_layers = 0 if pieces.attention == "none" else config.n_layer if pieces.stacked else 1
        self.blocks = nn.ModuleList(make_layer(config, pieces) for _ in range(n_layers))
        self.ln_f = make_norm(config) if pieces.layer_norm else nn.Identity()
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, vocab) and the mean loss if `targets` (B, T) are given, as `GPT.forward`."""
        B, T = idx.shape
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(T))  # (B, T, n_embd)
        for layer in self.blocks:
            x = layer(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        loss = None if targets is None else cross_entropy(logits, targets)
        return logits, loss
