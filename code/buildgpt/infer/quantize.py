"""Smaller weights for inference, written from scratch: int8 per output channel, and llama.cpp's Q8_0 and Q4_0.

A weight matrix (out, in) becomes small integers plus a few float scales, w ≈ q · scale:

- `int8`: one float32 scale per output row, absmax / 127, so the row's largest weight maps to
  ±127 and q is in [-127, 127]. Four times smaller than float32.
- `q8_0`: blocks of 32 weights along each row, one float16 scale per block (absmax / 127): a
  large weight only coarsens its own block, not its whole row. 8.5 bits per weight.
- `q4_0`: blocks of 32, one float16 scale d per block, 4-bit codes 0..15 two to a byte, and
  w ≈ (q - 8) · d. d = m / -8 where m is the block's weight of largest magnitude, so m itself
  is exact and the sixteen levels cover [-8d, 7d]. 4.5 bits per weight: about 7x smaller.

Q8_0 and Q4_0 are ggml's formats (llama.cpp, GGUF) byte for byte, rounding included: the tests
compare our bytes with the `gguf` package's reference quantizers. A `QuantizedLinear` stores
only the packed weights and turns them back into a float32 matrix when it runs.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..train import checkpoint

FORMATS = ("int8", "q8_0", "q4_0")
BLOCK = 32  # weights per block of q8_0 and q4_0


@dataclass
class Quantized:
    """A quantized matrix: `codes` (int8; for q4_0 uint8, two codes per byte) and `scales`."""

    format: str
    shape: tuple[int, int]
    codes: torch.Tensor  # int8: (out, in); q8_0: (out, in/32, 32); q4_0: (out, in/32, 16)
    scales: torch.Tensor  # int8: float32 (out,); q8_0, q4_0: float16 (out, in/32)

    @property
    def nbytes(self) -> int:
        return self.codes.numel() * self.codes.element_size() + self.scales.numel() * self.scales.element_size()


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's roundf, which ggml uses: halves go away from zero (torch.round sends them to the even neighbour).

    Written without `|x| + 0.5`, which float32 rounds up to 1 for x just below one half.
    """
    a = x.abs()
    whole = torch.floor(a)
    return torch.sign(x) * (whole + torch.floor(2 * (a - whole)))


def quantize(weight: torch.Tensor, format: str) -> Quantized:
    """`weight` (out, in) in `format`. Example: `quantize(torch.randn(64, 128), "q4_0").nbytes` is 4608."""
    if format not in FORMATS:
        raise ValueError(f"unknown weight format {format!r}; choose one of {', '.join(FORMATS)}")
    if weight.dim() != 2:
        raise ValueError(f"quantize takes a matrix (out, in), got shape {tuple(weight.shape)}")
    w = weight.detach().float()
    out_features, in_features = w.shape
    if format == "int8":
        scales = w.abs().amax(dim=1) / 127  # (out,)
        inverse = torch.where(scales == 0, 0.0, 1 / scales)
        codes = torch.round(w * inverse[:, None]).clamp(-127, 127).to(torch.int8)
        return Quantized(format, (out_features, in_features), codes, scales)
    if in_features % BLOCK:
        raise ValueError(f"{format} quantizes rows in blocks of {BLOCK}; this matrix has {in_features} columns. "
                         "Use int8 (one scale per row), or a model whose widths are multiples of 32")
    blocks = w.reshape(out_features, in_features // BLOCK, BLOCK)  # (out, nb, 32)
    if format == "q8_0":
        d = blocks.abs().amax(dim=-1, keepdim=True) / 127
        codes = _round_half_away(blocks * torch.where(d == 0, 0.0, 1 / d)).to(torch.int8)
        return Quantized(format, (out_features, in_features), codes, d.squeeze(-1).half())
    # q4_0: the weight of largest magnitude, with its sign, maps to code 0, i.e. to -8 d
    largest = blocks.gather(-1, blocks.abs().argmax(dim=-1, keepdim=True))
    d = largest / -8
    q = torch.trunc(blocks * torch.where(d == 0, 0.0, 1 / d) + 8.5).clamp(0, 15).to(torch.uint8)
    packed = q[..., :BLOCK // 2] | (q[..., BLOCK // 2:] << 4)  # byte j holds codes j and j + 16, as ggml does
    return Quantized(format, (out_features, in_features), packed, d.squeeze(-1).half())


def dequantize(q: Quantized) -> torch.Tensor:
    """The float32 matrix that `q` stands for.

    >>> dequantize(quantize(torch.tensor([[1.0, -0.5, 0.0]]), "int8"))  # the largest and 0 exact, -0.5 to a step of 1/127
    tensor([[ 1.0000, -0.5039,  0.0000]])
    """
    if q.format == "int8":
        return q.codes.float() * q.scales[:, None]
    if q.format == "q8_0":
        values = q.codes.float()
    else:
        low, high = q.codes & 0x0F, q.codes >> 4
        values = torch.cat([low, high], dim=-1).float() - 8  # (out, nb, 32)
    return (values * q.scales.float()[..., None]).reshape(q.shape)


def ggml_bytes(q: Quantized) -> bytes:
    """The matrix as ggml stores it: per block, the float16 scale's two bytes, then the codes.

    Example: `len(ggml_bytes(quantize(torch.zeros(4, 64), "q4_0")))` is 144: 8 blocks of 2 + 16 bytes.
    """
    if q.format == "int8":
        raise ValueError("int8 per-channel is not a ggml block format; ggml_bytes takes q8_0 or q4_0")
    scale_bytes = q.scales.contiguous().view(torch.uint8).reshape(*q.scales.shape, 2)
    return torch.cat([scale_bytes, q.codes.view(torch.uint8)], dim=-1).numpy().tobytes()


class QuantizedLinear(nn.Module):
    """A frozen linear layer that keeps only its quantized weights, turned back to float32 when it runs."""

    def __init__(self, linear: nn.Linear, format: str):
        super().__init__()
        q = quantize(linear.weight, format)
        self.format, self.shape = format, q.shape
        self.register_buffer("codes", q.codes)
        self.register_buffer("scales", q.scales)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = dequantize(Quantized(self.format, self.shape, self.codes, self.scales))
        return F.linear(x, weight.to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.shape[1]}, out_features={self.shape[0]}, format={self.format}"


def quantize_model(model: nn.Module, format: str) -> nn.Module:
    """A copy of `model` with every nn.Linear stored in `format`; embeddings and norms stay float32.

    Quantizing a quantized model is refused: its weights were already rounded once, and
    rounding again would hide how much was lost. Example: `small = quantize_model(model, "int8")`.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown weight format {format!r}; choose one of {', '.join(FORMATS)}")
    if done := formats_in(model):
        raise ValueError(f"the model is already quantized ({', '.join(sorted(done))}); quantize the float32 model")
    return replace_linears(model, lambda linear: QuantizedLinear(linear, format))


def formats_in(model: nn.Module) -> set[str]:
    """The formats of `model`'s quantized layers: empty for a float model. Example: `formats_in(small)` is {"int8"}."""
    return {m.format for m in model.modules() if isinstance(m, QuantizedLinear)}


def replace_linears(model: nn.Module, make) -> nn.Module:
    """A frozen copy of `model` in eval mode, each nn.Linear replaced by `make(linear)`; the original is untouched.

    Example: `replace_linears(model, lambda linear: QuantizedLinear(linear, "q8_0"))`.
    """
    copied = copy.deepcopy(model).eval().requires_grad_(False)
    for parent in list(copied.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                setattr(parent, name, make(child))
    return copied


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer: what the model holds in memory, or on disk in safetensors.

    >>> weight_bytes(nn.Linear(4, 2))  # 8 weights and 2 biases, 4 bytes each
    40
    """
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def save_quantized(path: str | os.PathLike, quantized: nn.Module, meta: dict, step: int = 0) -> Path:
    """Write a model from `quantize_model` as a checkpoint that `load.load_model` reads back in its format.

    Example: `save_quantized("checkpoints/shakespeare-char/best.int8.safetensors", quantize_model(model, "int8"),
    ckpt.meta)`.
    """
    formats = formats_in(quantized)
    if len(formats) != 1:
        raise ValueError(f"save_quantized needs a model from quantize_model, in one format; this one has "
                         f"{', '.join(sorted(formats)) or 'no quantized layer'}")
    meta = {k: v for k, v in meta.items() if k != "history"} | {"weights": formats.pop()}
    return checkpoint.save(path, quantized, step=step, meta=meta)
