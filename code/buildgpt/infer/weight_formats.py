"""One model in every weight format, measured the same way: bytes, val loss, decode speed, greedy agreement.

Used by the "Making it fast" chapter and `benchmarks/bench_quantize.py`. The formats: float32
(the reference), our int8, Q8_0 and Q4_0 (`quantize.py`), and PyTorch's own int8 path,
`torch.ao.quantization.quantize_dynamic` (deprecated in favour of torchao, which this project
does not install). Bytes are those of a safetensors checkpoint for ours; PyTorch's quantized
modules do not go into safetensors, so its row counts the bytes it holds in memory.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass

import torch

from ..nn.model import GPT
from ..train import checkpoint
from ..train.evaluate import split_loss
from ..utils.timing import seconds_per_call
from .generate import generate
from .quantize import FORMATS, quantize_model, save_quantized, weight_bytes

PYTORCH_INT8 = "PyTorch int8 (quantize_dynamic)"


@dataclass
class FormatResult:
    name: str
    bytes: int
    val_loss: float  # over the whole val split
    tokens_per_second: float  # greedy decoding with the KV cache
    greedy_tokens: torch.Tensor  # what it decoded, to compare with float32's


def pytorch_int8(model: GPT) -> torch.nn.Module:
    """PyTorch's dynamic int8 quantization of every nn.Linear (weights int8 per tensor, activations on the fly).

    Example: `logits, _ = pytorch_int8(model)(idx)`, on the CPU.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice: here it is the reference
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _pytorch_int8_bytes(model: torch.nn.Module) -> int:
    total = weight_bytes(model)  # embeddings and norms, still float32
    for module in model.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            weight, bias = module._weight_bias()
            total += weight.int_repr().numel() + 8 + (0 if bias is None else 4 * bias.numel())  # + one scale, zero
    return total


def measure_formats(model: GPT, val: torch.Tensor, prompt: torch.Tensor, new_tokens: int = 100,
                    repeats: int = 3, formats: tuple[str, ...] = FORMATS) -> list[FormatResult]:
    """float32, each of `formats` and PyTorch's int8, in that order, each measured on `val` and `prompt` (1, T).

    Example: `rows = measure_formats(model, val_tokens, val_tokens[None, :32])`, then compare rows[i] to rows[0].
    """
    model = model.eval()
    block = model.config.block_size
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"fp32": model, **{f: quantize_model(model, f) for f in formats}, PYTORCH_INT8: pytorch_int8(model)}
        for name, variant in variants.items():
            file = os.path.join(tmp, f"{name}.safetensors")
            if name == "fp32":
                size = os.path.getsize(checkpoint.save(file, model, 0, {}))
            elif name in FORMATS:
                size = os.path.getsize(save_quantized(file, variant, {}))
            else:
                size = _pytorch_int8_bytes(variant)
            loss = split_loss(variant, val, block, batch_size=256)
            out = generate(variant, prompt, new_tokens, temperature=0)
            seconds = seconds_per_call(lambda v=variant: generate(v, prompt, new_tokens, temperature=0),
                                       repeats=repeats, warmup=0)
            results.append(FormatResult(name, size, loss, new_tokens / seconds, out[0, prompt.size(1):]))
    return results


def agreement(result: FormatResult, reference: FormatResult) -> int:
    """How many greedy tokens `result` decoded before its first difference from `reference`.

    Example: `rows = measure_formats(...)`, then `agreement(rows[1], rows[0])`: the first format against float32.
    """
    return int((result.greedy_tokens == reference.greedy_tokens).cumprod(0).sum())
