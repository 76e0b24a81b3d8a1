"""Training step time of exercise 2's calculator, side by side: the padded loss against `unpadded_loss`.

    .venv/bin/python benchmarks/bench_unpadded_loss.py              # about 30 s on 2 cores
    .venv/bin/python benchmarks/bench_unpadded_loss.py --steps 100

The model and batches are the calculator's `cpu` settings (traced and answer-only formats).
Each loss trains a fresh model from the same weights for `--steps` steps in the book's loop; the
two alternate, twice, and the faster of each pair of runs is kept. Both losses give the same
value on the same batch (checked below, and in tests/test_train_loop.py).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from buildgpt.data.arithmetic import OPS, VOCAB, ArithmeticBatches, ArithmeticFormat, held_out_problems
from buildgpt.nn.model import GPT
from buildgpt.settings.chapters import settings_for
from buildgpt.train import loop, objectives


def seconds_per_step(batches: ArithmeticBatches, settings, loss_fn, steps: int) -> float:
    torch.manual_seed(0)
    model = GPT(replace(settings.run.model, vocab_size=len(VOCAB)))
    config = replace(settings.run.train, max_iters=steps, eval_interval=steps, eval_iters=1)
    start = time.perf_counter()
    loop.train(model, batches, config, loss_fn=loss_fn, progress=False)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    settings = settings_for("calculator", "cpu")
    held_out = held_out_problems(settings.n_test, settings.digits, OPS, seed=0)
    losses = {"padded": objectives.next_token_loss, "unpadded": objectives.unpadded_loss}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps per run, "
          f"batch {settings.run.train.batch_size}, ops {' '.join(settings.train_ops)}")
    print("| format | padding | padded ms/step | unpadded ms/step | speed-up |\n|---|---:|---:|---:|---:|")
    for name, trace in (("with the working", True), ("answer only", False)):
        fmt = ArithmeticFormat(reverse=True, width=settings.digits, trace=trace)
        batches = ArithmeticBatches(fmt, settings.digits, held_out, settings.train_ops)
        x, y = batches.batch("train", 1024, torch.Generator().manual_seed(0))
        padding = objectives.padding_share(y)
        model = GPT(replace(settings.run.model, vocab_size=len(VOCAB)))
        with torch.no_grad():
            torch.testing.assert_close(objectives.unpadded_loss(model, (x, y)), objectives.next_token_loss(model, (x, y)))
        times = {label: [] for label in losses}
        for _ in range(2):
            for label, loss_fn in losses.items():
                times[label].append(seconds_per_step(batches, settings, loss_fn, args.steps))
        padded, unpadded = min(times["padded"]), min(times["unpadded"])
        print(f"| {name} | {padding:.0%} | {padded * 1e3:.0f} | {unpadded * 1e3:.0f} | {padded / unpadded:.2f}x |")


if __name__ == "__main__":
    main()
