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
from .sampling import check_sampling_args, sample_next

POSITIONS = ("learned", "none")
NORMS = ("layernorm",)
MLPS = ("relu", "gelu")
ATTENTIONS = ("per_head", "batched", "fused")


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

    def __post_init__(self):
        for name, allowed in (("position", POSITIONS), ("norm", NORMS), ("mlp", MLPS), ("attention", ATTENTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name}={getattr(self, name)!r}; choose one of {allowed}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        if unknown := set(values) - known:
            raise ValueError(f"unknown GPTConfig fields: {sorted(unknown)}")
        return cls(**values)


class LayerNorm(nn.Module):
    """Normalise each position's features to mean 0 and variance 1, then scale and shift (learned)."""

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centered = x - x.mean(dim=-1, keepdim=True)
        var = centered.pow(2).mean(dim=-1, keepdim=True)  # the population variance, as nn.LayerNorm
        x = centered * torch.rsqrt(var + self.eps) * self.weight
        return x if self.bias is None else x + self.bias


class FeedForward(nn.Module):
    """Per position, independently: widen 4x, a non-linearity, project back. Where tokens "think"."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        hidden = 4 * config.n_embd
        self.up = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.act = nn.ReLU() if config.mlp == "relu" else nn.GELU()
        self.down = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.act(self.up(x))))


def make_attention(config: GPTConfig) -> nn.Module:
    if config.attention == "per_head":
        return MultiHeadAttention(config.n_embd, config.n_head, config.dropout, config.bias)
    return BatchedSelfAttention(config.n_embd, config.n_head, config.dropout, config.bias,
                                fused=config.attention == "fused")


class Block(nn.Module):
    """Communication (attention) then computation (feed-forward), each added to the residual stream (pre-norm)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = LayerNorm(config.n_embd, config.bias)
        self.attn = make_attention(config)
        self.ln2 = LayerNorm(config.n_embd, config.bias)
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
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, config.bias)
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
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds the context window "
                             f"block_size={self.config.block_size}; crop it (generate() does)")
        x = self.token_embedding(idx)
        if self.position_embedding is not None:
            x = x + self.position_embedding(torch.arange(start, start + T, device=idx.device))
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
