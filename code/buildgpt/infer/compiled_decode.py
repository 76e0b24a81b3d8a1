"""A faster decoder for the CPU: one compiled step over a static KV cache, reading int8 weights.

A cached decode step (`generate.py`) reads every weight once to make one token. Around those
reads it launches about a hundred small operations, and it samples in Python. This decoder
cuts all three costs:

- Bytes. Each linear keeps `quantize.py`'s int8 weights (one scale per output row), packed
  four to a word, and multiplies as a sum of products, `(x * codes).sum(-1) * scale`.
  torch.compile turns that into one loop that converts the codes as it reads them: a quarter
  of float32's bytes, and no float copy of the matrix is ever written (`F.linear` on the
  converted matrix would write one first).
- Launches. Every step has the same shapes: each layer's keys and values live in a buffer of
  `block_size` slots, written in place at the step's position, and attention reads every slot
  through a mask that hides the ones not yet written. So the step compiles once, to C++.
  The prompt, and the refill when the window is full, run eagerly in one pass, as in
  `generate.py`, and their keys and values are copied into the buffers.
- Sampling. The next token is drawn inside the step with the Gumbel-max trick: for uniform u,
  g = -log(-log(u)), and argmax(logits / T + g) is a sample from softmax(logits / T). The
  uniform numbers for every step are drawn up front from the caller's generator.

Compiling takes seconds, once per model shape in a process, so this pays for long generations
and chat sessions, not for a short sample. `benchmarks/bench_gpt_cpu.py --part sampling`
measures both. With `weights="fp32"`, greedy decoding gives the plain path's tokens (tested).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..nn.model import GPT
from .kv_cache import KVCache, forward_cached
from .quantize import QuantizedLinear, replace_linears
from .sampling import check_sampling_args

WEIGHTS = ("int8", "fp32")


class Int8MatVecLinear(QuantizedLinear):
    """`QuantizedLinear`'s int8 weights, packed four to an int32 word, in the form torch.compile fuses.

    Word j of row n holds, one per byte, the codes of columns j, j + in/4, j + in/2 and j + 3in/4,
    so a compiled loop reads whole words, a full vector register at a time, and shifts each code
    out with its sign. Read as single bytes, the same codes ran 2.7 times slower on a CPU without
    AVX-512, whose compiled loop loads bytes eight at a time.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__(linear, "int8")
        if self.shape[1] % 4:
            raise ValueError(f"int8 words hold four codes; this layer has {self.shape[1]} inputs")
        quarters = self.codes.to(torch.int32).chunk(4, dim=1)  # each (out, in/4)
        del self.codes  # the words are the weights now
        self.register_buffer("words", sum((q & 255) << (8 * i) for i, q in enumerate(quarters)))

    def code_quarters(self) -> list[torch.Tensor]:
        """The codes of each quarter of the columns, as integers: byte i of every word, sign-extended."""
        return [(self.words << (24 - 8 * i)) >> 24 for i in range(4)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():  # eagerly (a prompt, many rows): convert once, then multiply
            weight = torch.cat(self.code_quarters(), dim=1) * self.scales[:, None]
            return F.linear(x, weight.to(x.dtype), self.bias)
        quarters = x.unflatten(-1, (4, -1))  # (..., 4, in/4): quarter i meets byte i of the words
        y = sum((quarters[..., i:i + 1, :] * codes.to(x.dtype)).sum(-1)
                for i, codes in enumerate(self.code_quarters())) * self.scales  # (..., out)
        return y if self.bias is None else y + self.bias


def check_supported(model: GPT) -> None:
    """Refuse a model whose step this decoder does not compute: it handles positions added to the
    embeddings (learned, sinusoidal or none) and plain batched or fused attention.

    Example: `check_supported(GPT(GPTConfig(position="rope")))` raises ValueError, naming `generate()`.
    """
    config = model.config
    if type(model).forward is not GPT.forward or config.attention == "per_head":
        raise ValueError("the compiled decoder runs GPTs with batched or fused attention; use generate() for this one")
    if config.position in ("rope", "alibi") or config.qk_norm:
        raise ValueError(f"the compiled decoder adds positions to the embeddings; position={config.position!r}, "
                         f"qk_norm={config.qk_norm} are inside attention: use generate() for this model")


def decode_step(model: GPT, token: torch.Tensor, position: torch.Tensor, keys: list[torch.Tensor],
                values: list[torch.Tensor], position_table: torch.Tensor, temperature: torch.Tensor,
                gumbel: torch.Tensor) -> torch.Tensor:
    """Run `token` (B, 1) at `position` (1,), writing its keys and values into the caches
    (each (B, n_head, block_size, head_size)); return the next token (B, 1) drawn with `gumbel` (B, vocab).

    Example: `next_token = decode_step(model, token, torch.tensor([t]), keys, values, table, 0.8, gumbel)`.
    """
    B, C = token.size(0), model.config.n_embd
    window = keys[0].size(2)
    visible = (torch.arange(window, device=token.device) <= position).view(1, window)  # slots written so far
    x = model.token_embedding(token) + position_table[position]  # (B, 1, C)
    for block, k_cache, v_cache in zip(model.blocks, keys, values):
        attn = block.attn
        q, k, v = map(attn.split_heads, attn.qkv(block.ln1(x)).split(C, dim=2))  # each (B, nh, 1, hs)
        k_cache[:, :, position] = k
        v_cache[:, :, position] = v
        # one query: written out as sums, which compile fuses; PyTorch's fused kernel costs more for a single row
        scores = (q * k_cache).sum(-1) / math.sqrt(q.size(-1))  # (B, nh, block_size)
        weights = F.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
        y = (weights.unsqueeze(-1) * v_cache).sum(-2, keepdim=True)  # (B, nh, 1, hs)
        x = x + attn.proj(y.transpose(1, 2).reshape(B, 1, C))
        x = x + block.ffwd(block.ln2(x))
    logits = model.lm_head(model.ln_f(x))[:, -1]  # (B, vocab)
    return (logits / temperature + gumbel).argmax(dim=-1, keepdim=True)


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """-log(-log(u)) for uniform u: added to logits, its argmax samples softmax(logits).

    Example: `(logits + gumbel_noise(logits.shape)).argmax(-1)` draws one token per row.
    """
    u = torch.rand(shape, generator=generator).clamp_(min=torch.finfo(torch.float32).tiny)
    return -torch.log(-torch.log(u))


class CompiledDecoder:
    """Generate from a float32 GPT with one compiled step. Weights: "int8" (default) or "fp32".

    Example: `tokens = CompiledDecoder(model).generate(prompt, 500, generator=torch.Generator().manual_seed(0))`.
    """

    def __init__(self, model: GPT, weights: str = "int8"):
        check_supported(model)
        if weights not in WEIGHTS:
            raise ValueError(f"the compiled decoder reads {' or '.join(WEIGHTS)} weights, not {weights!r}")
        self.model = (replace_linears(model, Int8MatVecLinear) if weights == "int8"
                      else copy.deepcopy(model).eval().requires_grad_(False))
        config = model.config
        self.window, self.head_size = config.block_size, config.n_embd // config.n_head
        device = next(model.parameters()).device
        with torch.no_grad():  # every position's vector up front: the step indexes it with a tensor
            self.position_table = torch.zeros(self.window, config.n_embd, device=device) + \
                self.model.position_embedding(self.window)
        self.positions = torch.arange(self.window, device=device).view(self.window, 1)  # (block_size, 1)
        self.step = torch.compile(decode_step, dynamic=False)

    @torch.no_grad()
    def generate_stream(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                        generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """Yield each new token (B, 1); the context as `generate.generate_stream` keeps it (tested equal):
        the last `block_size` tokens of the prompt, then, whenever the window is full, its last half."""
        check_sampling_args(max_new_tokens, temperature, None, None)
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError("the prompt must be a (batch, time) tensor with at least one token")
        B, vocab, config = idx.size(0), self.model.config.vocab_size, self.model.config
        keys, values = ([idx.new_zeros(B, config.n_head, self.window, self.head_size, dtype=torch.float32)
                         for _ in self.model.blocks] for _ in range(2))
        scale = torch.tensor(temperature or 1.0)
        noise = (torch.zeros(max_new_tokens, B, vocab) if temperature == 0
                 else gumbel_noise((max_new_tokens, B, vocab), generator)).to(idx.device)
        tokens, new, filled = idx, [], self.window  # filled: cache slots written; a full cache is refilled first
        for i in range(max_new_tokens):
            if filled == self.window:  # first step, or the window is full: refill from the last tokens
                tokens, new = torch.cat([tokens, *new], dim=1), []
                context = tokens[:, -(self.window if i == 0 else max(1, self.window // 2)):]
                filled = self._prefill(context[:, :-1], keys, values)
                last = context[:, -1:].clone(memory_format=torch.contiguous_format)  # the strides compiled for
            # The first step checks every guard (and compiles for these shapes if it must); the rest have the same
            # shapes and model, so they check only what tells compiled versions apart: 60 us a step less.
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=i > 0):
                last = self.step(self.model, last, self.positions[filled], keys, values, self.position_table,
                                 scale, noise[i])
            filled += 1
            new.append(last)
            yield last

    def _prefill(self, context: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor]) -> int:
        """Write the keys and values of `context` (B, T) into the first T slots, in one eager pass; return T."""
        if context.size(1):
            caches = [KVCache() for _ in keys]
            forward_cached(self.model, context, caches)
            for cache, k, v in zip(caches, keys, values):
                k[:, :, :cache.length], v[:, :, :cache.length] = cache.k, cache.v
        return context.size(1)

    def generate(self, idx: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
        """The prompt followed by `max_new_tokens` new tokens; keyword arguments as `generate_stream`."""
        return torch.cat([idx, *self.generate_stream(idx, max_new_tokens, **kwargs)], dim=1)
