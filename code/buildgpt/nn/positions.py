"""Position information for attention, which on its own sees a set of tokens, not a sequence.

- sinusoidal: a fixed table added to the token embeddings (Attention Is All You Need, 3.5), scaled
  down to the learned table's size, or as the paper has it (`sinusoidal_paper`: the raw table, and
  token embeddings scaled up by sqrt(d));
- RoPE: rotate each query/key pair of channels by an angle proportional to the position, so
  their dot product depends only on the offset between positions (RoFormer);
- ALiBi: no embedding at all; subtract from each attention score a per-head slope times the
  distance between query and key (Press et al., "Train Short, Test Long").
Learned absolute embeddings (GPT-2) are `LearnedPositions`, a table with one row per position.

The schemes added to the embeddings share one interface: `module(T, start=0)` gives the
(T, n_embd) vectors of positions start .. start + T - 1 (or 0.0 when nothing is added).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def sinusoidal_table(n_positions: int, dim: int, base: float = 10000.0, start: int = 0) -> torch.Tensor:
    """(n_positions, dim): PE[p, 2i] = sin(p / base^(2i/dim)), PE[p, 2i+1] = cos(p / base^(2i/dim)).

    >>> sinusoidal_table(2, 4)  # position 0 is sin 0 = 0 and cos 0 = 1 in every pair
    tensor([[0.0000, 1.0000, 0.0000, 1.0000],
            [0.8415, 0.5403, 0.0100, 0.9999]])
    """
    if dim % 2:
        raise ValueError(f"the sinusoidal table needs an even dimension, got {dim}")
    positions = torch.arange(start, start + n_positions, dtype=torch.float32)[:, None]
    frequencies = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    table = torch.empty(n_positions, dim)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies)
    return table


def sinusoidal_offset_matrix(offset: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The fixed (dim, dim) matrix M with table[p + offset] = table[p] @ M for every position p.

    Each (sin, cos) pair rotates by offset * frequency: the same rotation whatever p, which is
    why the paper expected the model to attend by relative position easily.
    Example: `sinusoidal_table(10, 8)[:7] @ sinusoidal_offset_matrix(3, 8)` is rows 3..9 of the table, to rounding.
    """
    frequencies = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    matrix = torch.zeros(dim, dim, dtype=torch.float64)
    for i, angle in enumerate(offset * frequencies):
        c, s = math.cos(angle), math.sin(angle)
        # [sin(a+b), cos(a+b)] = [sin a, cos a] @ [[cos b, -sin b], [sin b, cos b]]
        matrix[2 * i: 2 * i + 2, 2 * i: 2 * i + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return matrix.float()


def rope_angles(positions: torch.Tensor, head_size: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angle of each channel pair at each position: (T, head_size / 2) each.

    >>> [part.shape for part in rope_angles(torch.arange(3), head_size=4)]
    [torch.Size([3, 2]), torch.Size([3, 2])]
    """
    if head_size % 2:
        raise ValueError(f"RoPE rotates pairs of channels; head_size={head_size} is odd")
    frequencies = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32, device=positions.device) / head_size)
    angles = positions.float()[:, None] * frequencies[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (0,1), (2,3), ... of x (..., T, head_size) by the angles of each position.

    >>> x = torch.randn(5, 4)
    >>> torch.allclose(apply_rope(x, *rope_angles(torch.arange(5), 4)).norm(dim=-1), x.norm(dim=-1))  # lengths kept
    True
    """
    even, odd = x[..., 0::2].float(), x[..., 1::2].float()
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """The paper's per-head slopes: a geometric sequence starting at 2^(-8/n) for n a power of two;
    otherwise the slopes of the nearest smaller power of two, then every other slope of the next.

    >>> alibi_slopes(4).tolist()
    [0.25, 0.0625, 0.015625, 0.00390625]
    """
    def geometric(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_head).is_integer():
        return torch.tensor(geometric(n_head))
    closest = 2 ** math.floor(math.log2(n_head))
    extra = alibi_slopes(2 * closest)[0::2][: n_head - closest]
    return torch.cat((torch.tensor(geometric(closest)), extra))


def alibi_bias(n_head: int, t_query: int, t_key: int, device=None) -> torch.Tensor:
    """(n_head, t_query, t_key): -slope * distance from each query back to each key (queries are the
    last t_query positions). Future keys get a positive bias here; the causal mask removes them.

    >>> alibi_bias(1, 1, 3)  # one head (slope 1/256), the last query: keys 2, 1 and 0 positions back
    tensor([[[-0.0078, -0.0039, -0.0000]]])
    """
    query_pos = torch.arange(t_key - t_query, t_key, device=device)[:, None]
    key_pos = torch.arange(t_key, device=device)[None, :]
    distance = (query_pos - key_pos).float()
    return -alibi_slopes(n_head).to(device)[:, None, None] * distance


class LearnedPositions(nn.Embedding):
    """GPT-2's learned table: one trained vector per position, `block_size` rows, none beyond."""

    def forward(self, T: int, start: int = 0) -> torch.Tensor:
        if start + T > self.num_embeddings:
            raise ValueError(f"sequence of {start + T} tokens exceeds the context window "
                             f"block_size={self.num_embeddings}: a learned position table has no rows "
                             "beyond it. Crop the input (generation does), or use another position scheme")
        return super().forward(torch.arange(start, start + T, device=self.weight.device))  # (T, n_embd)


class SinusoidalPositions(nn.Module):
    """The fixed sinusoidal table, for any length, times `scale`.

    By default scaled to the size of the learned embeddings at initialisation (RMS 0.02; the raw
    table has RMS 1/sqrt(2)), so positions do not drown the tokens. The paper instead keeps the
    raw table (scale 1) and scales the token embeddings up (`ScaledEmbedding`).
    """

    SCALE = 0.02 * math.sqrt(2)

    def __init__(self, n_embd: int, block_size: int, scale: float = SCALE):
        super().__init__()
        self.scale = scale
        self.register_buffer("table", scale * sinusoidal_table(block_size, n_embd), persistent=False)

    def forward(self, T: int, start: int = 0) -> torch.Tensor:
        if start + T <= len(self.table):
            return self.table[start:start + T]
        table = sinusoidal_table(T, self.table.size(1), start=start).to(self.table.device)
        return self.scale * table  # past the precomputed rows (evaluating beyond the context)


class ScaledEmbedding(nn.Embedding):
    """Token embeddings as Attention Is All You Need uses them (section 3.4) beside the raw sinusoidal
    table: weights initialised at N(0, 1/d) (`GPT._init_weights`) and multiplied by sqrt(d) when looked
    up, so tokens and positions start at one size.

    ScaledEmbedding(65, 64)(idx)  # (B, T, 64), RMS about 1 once GPT has initialised it (alone: nn.Embedding's N(0, 1))
    """

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return super().forward(idx) * math.sqrt(self.embedding_dim)


class NoPositions(nn.Module):
    """Nothing added to the embeddings: no position information, or positions inside attention (RoPE, ALiBi)."""

    def forward(self, T: int, start: int = 0) -> float:
        return 0.0
