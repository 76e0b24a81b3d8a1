"""Quantized weights, measured side by side: size, val loss on the whole tinyshakespeare val split, decode speed.

    .venv/bin/python benchmarks/bench_quantize.py                                  # trains a cpu-size model first
    .venv/bin/python benchmarks/bench_quantize.py --checkpoint checkpoints/shakespeare-char/best.safetensors

Rows: float32 (the reference), the float16 copy `buildgpt sample` decodes with, our int8 per
channel, ggml's Q8_0 and Q4_0, and PyTorch's own int8 path, `torch.ao.quantization.quantize_dynamic`
(deprecated in favour of torchao, which is not installed here). For each: bytes on disk as a
safetensors checkpoint (ours; PyTorch's quantized modules do not go into safetensors, so its
row gives the in-memory size), the whole-split val loss and its change from float32, greedy
decode tokens per second with the KV cache, and how many of float32's greedy tokens it repeats.
Our formats turn the packed weights back into float32 on every call: they save bytes, not time;
a fused kernel (llama.cpp's, or torch.compile's) is what makes them fast.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import replace

import torch

from buildgpt.data import registry
from buildgpt.data.batches import TokenBatches, train_val_split
from buildgpt.infer.generate import generate
from buildgpt.infer.half_weights import with_half_weights
from buildgpt.infer.load import load_char_model
from buildgpt.infer.quantize import FORMATS, quantize_model, save_quantized, weight_bytes
from buildgpt.nn.model import GPT
from buildgpt.settings.chapters import settings_for
from buildgpt.tokenizers.chars import CharTokenizer
from buildgpt.train import checkpoint
from buildgpt.train.evaluate import split_loss
from buildgpt.train.loop import train


def trained_model(path: str | None, steps: int):
    text = registry.load_text("tinyshakespeare")
    if path:
        model, tokenizer, _ = load_char_model(path, text=text)
    else:
        tokenizer = CharTokenizer.from_text(text)
        settings = settings_for("gpt", "cpu")
        torch.manual_seed(0)
        model = GPT(replace(settings.model, vocab_size=tokenizer.vocab_size))
        tokens = torch.tensor(tokenizer.encode(text))
        train(model, TokenBatches(*train_val_split(tokens), model.config.block_size),
              replace(settings.train, max_iters=steps), progress=True)
    val = train_val_split(torch.tensor(tokenizer.encode(text)))[1]
    return model.eval(), val


def decode_speed(model, prompt: torch.Tensor, tokens: int, repeats: int) -> tuple[float, torch.Tensor]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = generate(model, prompt, tokens, temperature=0)
        times.append(time.perf_counter() - start)
    return tokens / statistics.median(times), out[0, prompt.size(1):]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a float32 character checkpoint; default: train one")
    parser.add_argument("--steps", type=int, default=1200, help="training steps when no checkpoint is given")
    parser.add_argument("--tokens", type=int, default=200, help="greedy tokens decoded per timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, val = trained_model(args.checkpoint, args.steps)
    block = model.config.block_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantize_dynamic's deprecation notice: it is the reference here
        reference = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    variants = {"fp32": model, "fp16 copy": with_half_weights(model),
                **{f: quantize_model(model, f) for f in FORMATS}, "torch quantize_dynamic int8": reference}
    prompt = val[:block // 2][None]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, variant in variants.items():
            if name in FORMATS or name == "fp32":
                file = os.path.join(tmp, f"{name}.safetensors")
                if name == "fp32":
                    checkpoint.save(file, model, 0, {})
                else:
                    save_quantized(file, model, name, {})
                size = os.path.getsize(file)
            else:
                size = weight_bytes(variant) if name == "fp16 copy" else _dynamic_bytes(variant)
            loss = split_loss(variant, val, block, batch_size=256)
            speed, tokens = decode_speed(variant, prompt, args.tokens, args.repeats)
            rows.append((name, size, loss, speed, tokens))
    base_size, base_loss, base_speed, base_tokens = rows[0][1], rows[0][2], rows[0][3], rows[0][4]
    print(f"{model.num_params():,} parameters, {torch.get_num_threads()} threads, val split {len(val):,} characters")
    print(f"{'weights':>28} {'MB':>7} {'x smaller':>9} {'val loss':>9} {'change':>8} {'tokens/s':>9} "
          f"{'x fp32':>7} {'same greedy tokens':>19}")
    for name, size, loss, speed, tokens in rows:
        same = int((tokens == base_tokens).cumprod(0).sum())
        print(f"{name:>28} {size / 1e6:7.2f} {base_size / size:9.2f} {loss:9.4f} {loss - base_loss:+8.4f} "
              f"{speed:9.0f} {speed / base_speed:7.2f} {same:>10} of {len(base_tokens)}")


def _dynamic_bytes(model) -> int:
    """In-memory bytes of a quantize_dynamic model: its int8 weights with their scales, and the float32 rest."""
    total = weight_bytes(model)
    for module in model.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            weight, bias = module._weight_bias()
            total += weight.int_repr().numel() + 8 + (0 if bias is None else 4 * bias.numel())  # per-tensor scale
    return total


if __name__ == "__main__":
    main()
