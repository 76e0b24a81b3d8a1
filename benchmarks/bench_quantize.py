"""Quantized weights, measured side by side: size, val loss on the whole tinyshakespeare val split, decode speed.

    .venv/bin/python benchmarks/bench_quantize.py                                  # trains a cpu-size model first
    .venv/bin/python benchmarks/bench_quantize.py --checkpoint checkpoints/shakespeare-char/best.safetensors

Rows (`infer/weight_formats.py`): float32 (the reference), our int8 per channel, ggml's Q8_0
and Q4_0, and PyTorch's own int8 path (`quantize_dynamic`), plus the float16 copy `buildgpt
sample` decodes with. For each: bytes, the whole-split val loss and its change from float32,
greedy decode tokens per second with the KV cache, and how many of float32's greedy tokens it
repeats. Our formats turn the packed weights back into float32 on every call: they save bytes,
not time; a fused kernel (llama.cpp's, or one torch.compile generates) is what makes them fast.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from buildgpt.data import registry
from buildgpt.data.batches import TokenBatches, train_val_split
from buildgpt.infer.generate import generate
from buildgpt.infer.half_weights import with_half_weights
from buildgpt.infer.load import load_char_model
from buildgpt.infer.quantize import weight_bytes
from buildgpt.infer.weight_formats import agreement, measure_formats
from buildgpt.nn.model import GPT
from buildgpt.settings.chapters import settings_for
from buildgpt.tokenizers.chars import CharTokenizer
from buildgpt.train.evaluate import split_loss
from buildgpt.train.loop import train
from buildgpt.utils.timing import seconds_per_call


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
    return model.eval(), train_val_split(torch.tensor(tokenizer.encode(text)))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a float32 character checkpoint; default: train one")
    parser.add_argument("--steps", type=int, default=1200, help="training steps when no checkpoint is given")
    parser.add_argument("--tokens", type=int, default=200, help="greedy tokens decoded per timing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, val = trained_model(args.checkpoint, args.steps)
    prompt = val[:model.config.block_size // 2][None]
    rows = measure_formats(model, val, prompt, args.tokens, args.repeats)
    base = rows[0]
    half = with_half_weights(model)
    half_speed = args.tokens / seconds_per_call(lambda: generate(half, prompt, args.tokens, temperature=0),
                                                repeats=args.repeats, warmup=0)
    print(f"{model.num_params():,} parameters, {torch.get_num_threads()} threads, val split {len(val):,} characters")
    print(f"{'weights':>32} {'MB':>7} {'x smaller':>9} {'val loss':>9} {'change':>8} {'tokens/s':>9} {'x fp32':>7} "
          f"{'same greedy tokens':>19}")
    for r in rows:
        print(f"{r.name:>32} {r.bytes / 1e6:7.2f} {base.bytes / r.bytes:9.2f} {r.val_loss:9.4f} "
              f"{r.val_loss - base.val_loss:+8.4f} {r.tokens_per_second:9.0f} {r.tokens_per_second / base.tokens_per_second:7.2f} "
              f"{agreement(r, base):>10} of {len(base.greedy_tokens)}")
    half_loss = split_loss(half, val, model.config.block_size, batch_size=256)
    print(f"{'fp16 copy (buildgpt sample)':>32} {weight_bytes(half) / 1e6:7.2f} {'(+fp32)':>9} {half_loss:9.4f} "
          f"{half_loss - base.val_loss:+8.4f} {half_speed:9.0f} {half_speed / base.tokens_per_second:7.2f}")


if __name__ == "__main__":
    main()
