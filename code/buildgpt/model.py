"""The GPT: token and position embeddings, a stack of Transformer blocks, a final norm, a language-model head.

One file, one dataclass config, no framework (after nanoGPT's model.py). The config's
`position`, `norm`, `mlp` and `attention` fields choose each part's implementation, so later
chapters can ablate them without forking the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import BatchedSelfAttention, KVCache, MultiHeadAttention
from .batches import cross_entropy
from .dropout import Dropout
from .norms import LayerNorm, RMSNorm
from .positions import sinusoidal_table
from .sampling import check_sampling_args, sample_next

POSITIONS = ("learned", "none", "sinusoidal", "rope", "alibi")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("relu", "gelu", "swiglu")
ATTENTIONS = ("per_head", "batched", "fused")
# The fixed table's entries have RMS 1/sqrt(2); scaled to RMS 0.02, the size of the learned
# embeddings at initialisation, so positions do not drown the token embeddings at the start.
SINUSOIDAL_SCALE = 0.02 * math.sqrt(2)


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 256  # the context window, in tokens
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.2
    bias: bool = True  # in the projections, the MLP, the norms and the head (never in q, k, v)
    position: str = "learned"
    norm: str = "layernorm"
    mlp: str = "relu"
    attention: str = "fused"
    qk_norm: bool = False  # RMS-normalise queries and keys per head (batched paths only)

    def __post_init__(self):
        for name, allowed in (("position", POSITIONS), ("norm", NORMS), ("mlp", MLPS), ("attention", ATTENTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name}={getattr(self, name)!r}; choose one of {allowed}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.attention == "per_head" and (self.position in ("rope", "alibi") or self.qk_norm):
            raise ValueError(f"position={self.position!r} and qk_norm live inside attention and need "
                             "attention='batched' or 'fused', not 'per_head'")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        if unknown := set(values) - known:
            raise ValueError(f"unknown GPTConfig fields: {sorted(unknown)}")
        return cls(**values)


class FeedForward(nn.Module):
    """Per position, independently: widen 4x, a non-linearity, project back. Where tokens "think".

    SwiGLU (Shazeer 2020) multiplies a SiLU-activated gate into the widened vector; with three
    matrices instead of two, its width is 2/3 of 4x so the parameter count stays the same.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        gated = config.mlp == "swiglu"
        hidden = round(8 * config.n_embd / 3) if gated else 4 * config.n_embd
        self.up = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.gate = nn.Linear(config.n_embd, hidden, bias=config.bias) if gated else None
        self.act = {"relu": nn.ReLU(), "gelu": nn.GELU(), "swiglu": nn.SiLU()}[config.mlp]
        self.down = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.up(x)) if self.gate is None else self.act(self.gate(x)) * self.up(x)
        return self.dropout(self.down(hidden))


def make_norm(config: GPTConfig) -> nn.Module:
    return LayerNorm(config.n_embd, config.bias) if config.norm == "layernorm" else RMSNorm(config.n_embd)


def make_attention(config: GPTConfig) -> nn.Module:
    if config.attention == "per_head":
        return MultiHeadAttention(config.n_embd, config.n_head, config.dropout, config.bias)
    return BatchedSelfAttention(config.n_embd, config.n_head, config.dropout, config.bias,
                                fused=config.attention == "fused",
                                position=config.position if config.position in ("rope", "alibi") else None,
                                qk_norm=config.qk_norm)


class Block(nn.Module):
    """Communication (attention) then computation (feed-forward), each added to the residual stream (pre-norm)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = make_norm(config)
        self.attn = make_attention(config)
        self.ln2 = make_norm(config)
        self.ffwd = FeedForward(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.ffwd(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd) if config.position == "learned" else None
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
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                caches: list[KVCache] | None = None):
        """Logits (B, T, vocab) for every position, and the mean loss if `targets` (B, T) are given."""
        B, T = idx.shape
        start = caches[0].length if caches else 0
        if self.position_embedding is not None and start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds the context window "
                             f"block_size={self.config.block_size}: a learned position table has no rows "
                             "beyond it. Crop the input (generate() does), or use another position scheme")
        x = self.token_embedding(idx)
        if self.position_embedding is not None:
            x = x + self.position_embedding(torch.arange(start, start + T, device=idx.device))
        elif self.config.position == "sinusoidal":
            table = sinusoidal_table(T, self.config.n_embd, start=start).to(x.device, x.dtype)
            x = x + SINUSOIDAL_SCALE * table
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            x = block(x, caches[i] if caches else None)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else cross_entropy(logits, targets)
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """Attention weights of every layer and head for one sequence: (n_layer, n_head, T, T)."""
        was_training = self.training
        self.eval()
        attns = [block.attn for block in self.blocks]
        for attn in attns:
            attn.record_weights = True
        try:
            self(idx[:1])
            return torch.stack([attn.last_weights[0] for attn in attns])
        finally:
            for attn in attns:
                attn.record_weights = False
            self.train(was_training)

    @torch.no_grad()
    def generate_stream(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                        top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                        generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """Yield each new token (B, 1) as soon as it is sampled.

        Only the last `block_size` tokens are ever used as context: a longer prompt is cropped.
        With `use_cache`, keys and values of past positions are kept (KV cache), so each step
        runs the model on one new token instead of the whole window; the tokens are the same as
        without the cache while the sequence fits the window. Once it outgrows the window, the
        cache is rebuilt from the last `block_size // 2` tokens (positions are absolute, so a
        full cache cannot simply slide), so from then on the context is half to one window long.
        `temperature=0` means greedy decoding. See `sampling.sample_next` for top-k and top-p.
        """
        check_sampling_args(max_new_tokens, temperature, top_k, top_p)
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError("the prompt must be a (batch, time) tensor with at least one token")
        if self.config.attention == "per_head":
            use_cache = False  # the per-head module keeps no cache
        was_training = self.training
        self.eval()
        window = self.config.block_size
        caches = None
        try:
            for _ in range(max_new_tokens):
                if not use_cache:
                    logits, _ = self(idx[:, -window:])
                elif caches is None or caches[0].length >= window:
                    keep = window if caches is None else max(1, window // 2)
                    caches = [KVCache() for _ in self.blocks]
                    logits, _ = self(idx[:, -keep:], caches=caches)
                else:
                    logits, _ = self(idx[:, -1:], caches=caches)
                next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
                idx = torch.cat((idx, next_id), dim=1)
                yield next_id
        finally:
            self.train(was_training)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
        """The prompt followed by `max_new_tokens` sampled tokens; keyword arguments as `generate_stream`."""
        new = list(self.generate_stream(idx, max_new_tokens, **kwargs))
        return torch.cat([idx, *new], dim=1)
