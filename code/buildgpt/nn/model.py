"""The GPT: token and position embeddings, a stack of Transformer blocks, a final norm, a language-model head.

One file, one dataclass config, no framework (after nanoGPT's model.py). The config's
`position`, `norm`, `mlp` and `attention` fields choose each part's implementation, so later
chapters can ablate them without forking the model; `GPT.forward` itself is the lecture's path.
Generation (sampling, the KV cache, faster weights) lives in `buildgpt.infer`, apart from the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import MultiHeadAttention
from .causal_attention import CausalSelfAttention
from .dropout import Dropout
from .loss import cross_entropy
from .norms import LayerNorm, RMSNorm
from .positions import LearnedPositions, NoPositions, ScaledEmbedding, SinusoidalPositions

POSITIONS = ("learned", "none", "sinusoidal", "sinusoidal_paper", "rope", "alibi")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("relu", "gelu", "swiglu")
ATTENTIONS = ("per_head", "batched", "fused")


@dataclass(frozen=True)  # shared presets: change a copy (dataclasses.replace), never in place
class GPTConfig:
    vocab_size: int = 65  # distinct tokens (65 characters in tinyshakespeare)
    block_size: int = 256  # the context window, in tokens
    n_layer: int = 6  # Transformer blocks
    n_head: int = 6  # attention heads per block; head size is n_embd // n_head
    n_embd: int = 384  # width of the residual stream
    dropout: float = 0.2  # probability of zeroing an activation in training
    bias: bool = True  # in the projections, the MLP, the norms and the head (never in q, k, v)
    position: str = "learned"  # one of POSITIONS (chapter 4)
    norm: str = "layernorm"  # one of NORMS (exercise 4)
    mlp: str = "relu"  # the feed-forward non-linearity, one of MLPS (exercise 4)
    attention: str = "fused"  # one of ATTENTIONS: the same function, three implementations (exercise 1)
    qk_norm: bool = False  # RMS-normalise queries and keys per head (batched paths only; exercise 4)

    def __post_init__(self):
        for name, allowed in (("position", POSITIONS), ("norm", NORMS), ("mlp", MLPS), ("attention", ATTENTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name}={getattr(self, name)!r}; choose one of {allowed}")
        if min(self.n_head, self.n_embd) < 1:
            raise ValueError(f"n_head and n_embd must each be at least 1, got {self.n_head} and {self.n_embd}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.attention == "per_head" and (self.position in ("rope", "alibi") or self.qk_norm):
            raise ValueError(f"position={self.position!r} and qk_norm live inside attention and need "
                             "attention='batched' or 'fused', not 'per_head'")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        if unknown := set(values) - known:
            raise ValueError(f"unknown GPTConfig fields: {sorted(unknown)}")
        return cls(**values)


class FeedForward(nn.Module):
    """Per position, independently: widen 4x, a non-linearity, project back. Where tokens "think"."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.mlp not in ("relu", "gelu"):
            raise ValueError(f"FeedForward takes mlp='relu' or 'gelu', got {config.mlp!r} (see SwiGLU)")
        self.up = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.act = nn.ReLU() if config.mlp == "relu" else nn.GELU()
        self.down = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.act(self.up(x))))  # (B, T, n_embd)


class SwiGLU(nn.Module):
    """The gated feed-forward of LLaMA (Shazeer 2020): a SiLU-activated gate multiplies the widened vector.

    With three matrices instead of two, its width is 2/3 of 4x, so the parameter count stays the same.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        hidden = round(8 * config.n_embd / 3)
        self.gate = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.up = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.down = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


def make_feed_forward(config: GPTConfig) -> nn.Module:
    """The feed-forward layer `config.mlp` names.

    Example: `make_feed_forward(GPTConfig(mlp="swiglu"))` is a `SwiGLU`.
    """
    return SwiGLU(config) if config.mlp == "swiglu" else FeedForward(config)


def make_norm(config: GPTConfig) -> nn.Module:
    """The normalisation `config.norm` names.

    Example: `make_norm(GPTConfig(norm="rmsnorm"))` is an `RMSNorm`.
    """
    return LayerNorm(config.n_embd, config.bias) if config.norm == "layernorm" else RMSNorm(config.n_embd)


def make_attention(config: GPTConfig) -> nn.Module:
    """The attention `config.attention` names: a list of heads, or all heads at once (batched or fused).

    Example: `make_attention(GPTConfig(attention="per_head"))` is a `MultiHeadAttention`.
    """
    if config.attention == "per_head":
        return MultiHeadAttention(config.n_embd, config.n_head, config.dropout, config.bias)
    return CausalSelfAttention(config.n_embd, config.n_head, config.dropout, config.bias,
                               fused=config.attention == "fused",
                               position=config.position if config.position in ("rope", "alibi") else None,
                               qk_norm=config.qk_norm)


def make_positions(config: GPTConfig) -> nn.Module:
    """What is added to the token embeddings: a learned table, the sinusoidal one, or nothing.

    Example: `make_positions(GPTConfig(position="none"))` is a `NoPositions`.
    """
    if config.position == "learned":
        return LearnedPositions(config.block_size, config.n_embd)
    if config.position == "sinusoidal":
        return SinusoidalPositions(config.n_embd, config.block_size)
    if config.position == "sinusoidal_paper":  # the raw table, beside token embeddings scaled up by sqrt(d)
        return SinusoidalPositions(config.n_embd, config.block_size, scale=1.0)
    return NoPositions()


class Block(nn.Module):
    """Communication (attention) then computation (feed-forward), each added to the residual stream (pre-norm)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = make_norm(config)
        self.attn = make_attention(config)
        self.ln2 = make_norm(config)
        self.ffwd = make_feed_forward(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        x = x + self.ffwd(self.ln2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        embedding = ScaledEmbedding if config.position == "sinusoidal_paper" else nn.Embedding
        self.token_embedding = embedding(config.vocab_size, config.n_embd)
        self.position_embedding = make_positions(config)
        self.dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = make_norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)
        self.apply(self._init_weights)
        # GPT-2: shrink the layers that write into the residual stream, one pair per block.
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, ScaledEmbedding):  # N(0, 1/d), times sqrt(d) when looked up: unit size
            nn.init.normal_(module.weight, mean=0.0, std=module.embedding_dim ** -0.5)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, vocab) for every position, and the mean loss if `targets` (B, T) are given."""
        B, T = idx.shape
        tok_emb = self.token_embedding(idx)  # (B, T, n_embd)
        pos_emb = self.position_embedding(T)  # (T, n_embd)
        x = self.dropout(tok_emb + pos_emb)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        loss = None if targets is None else cross_entropy(logits, targets)
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """Attention weights of every layer and head for one sequence: (n_layer, n_head, T, T)."""
        was_training = self.training
        self.eval()
        attns = [block.attn for block in self.blocks]
        for attn in attns:
            attn.record_weights = True  # the fused kernel keeps no weights: take the written-out path
        try:
            self(idx[:1])
            return torch.stack([attn.last_weights[0] for attn in attns])
        finally:
            for attn in attns:
                attn.record_weights = False
            self.train(was_training)
