"""bfloat16 autocast against float32, per training run of the CPU book, reported as ratios.

    .venv/bin/python benchmarks/bench_precision.py              # all threads
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_precision.py  # as the CPU book runs each chapter

For each run the `cpu` profile trains (its model and batch shape, read from the settings), the
median seconds of a training step (forward, backward, AdamW) in float32 and in bfloat16
autocast, the two interleaved so that drifts in machine speed hit both alike; then the speed-up
and the precision the trainer runs it in on this machine (`train/precision.py`, or the run's
own `bf16` setting). `precision.MIN_CPU_WIDTH` is the narrowest width from which autocast pays
on a CPU with native bfloat16; this table is the evidence for it. Random tokens: a step's time
does not depend on what the text says.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch

from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.settings.chapters import settings_for
from buildgpt.settings.presets import LECTURE_MODEL
from buildgpt.train import precision
from buildgpt.train.loop import TrainConfig, make_optimizer

CHAT_TOKENS = 240  # about the assistant's longest chats (243 tokens: its settings; its page asserts all fit in 256)


def book_runs() -> list[tuple[str, GPTConfig, int, int, bool | None]]:
    """(name, model, batch rows, row length, its own bf16 setting) of the CPU book's training runs, from the `cpu`
    settings."""
    gpt, assistant, calculator = (settings_for(chapter, "cpu") for chapter in ("gpt", "assistant", "calculator"))
    addition, study = settings_for("addition", "cpu"), settings_for("positions", "cpu")
    traced = calculator.run
    return [
        ("chapter 3, exercise 3, bits per byte", gpt.model, gpt.train.batch_size, gpt.model.block_size, gpt.train.bf16),
        ("assistant: pretraining", assistant.model, assistant.pretrain.batch_size, assistant.pretrain_block_size,
         assistant.pretrain.bf16),
        ("assistant: SFT, longest chats", assistant.model, assistant.sft.batch_size, CHAT_TOKENS, assistant.sft.bf16),
        ("calculator, traced", traced.model, traced.train.batch_size, traced.model.block_size - 1, traced.train.bf16),
        ("addition", addition.model, addition.train.batch_size, addition.model.block_size, addition.train.bf16),
        ("positions, exercise 4", study.model, study.train.batch_size, study.model.block_size, study.train.bf16),
        ("lecture model (benchmark only)", LECTURE_MODEL, 16, LECTURE_MODEL.block_size, None),
    ]


def step_seconds(config: GPTConfig, rows: int, length: int, repeats: int) -> dict[bool, float]:
    """Median seconds per training step in float32 (False) and bfloat16 autocast (True)."""
    torch.manual_seed(0)
    model = GPT(replace(config, dropout=0.0)).train()
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.1), "cpu")
    x = torch.randint(model.config.vocab_size, (rows, length))
    times: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(repeats + 1):  # the first round warms up
        for bf16 in times:
            start = time.perf_counter()
            with precision.autocast(model, "cpu", bf16):
                _, loss = model(x, x)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if repeat:
                times[bf16].append(time.perf_counter() - start)
    return {bf16: statistics.median(t) for bf16, t in times.items()}


def main(repeats: int = 8) -> None:
    native = precision.cpu_has_native_bf16()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bfloat16: {native}, "
          f"MIN_CPU_WIDTH {precision.MIN_CPU_WIDTH}")
    print("| run | width x layers | batch | ms float32 | ms bfloat16 | speed-up | trainer picks |")
    print("|---|---|---|---:|---:|---:|---|")
    for name, config, rows, length, setting in book_runs():
        seconds = step_seconds(config, rows, length, repeats)
        with torch.device("meta"):
            picks = precision.use_bf16(GPT(config), "cpu", setting)
        print(f"| {name} | {config.n_embd} x {config.n_layer} | {rows} x {length} | {1e3 * seconds[False]:.1f} "
              f"| {1e3 * seconds[True]:.1f} | {seconds[False] / seconds[True]:.2f}x "
              f"| {'bfloat16' if picks else 'float32'} |")


if __name__ == "__main__":
    main()
