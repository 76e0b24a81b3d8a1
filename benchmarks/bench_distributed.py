"""Data-parallel throughput, side by side: one process alone vs N processes with DDP, and the ring model's prediction.

    .venv/bin/python benchmarks/bench_distributed.py                      # ~30 s on 2 cores: the CPU book's model
    .venv/bin/python benchmarks/bench_distributed.py --model lecture --steps 10 --nproc 4

Each process gets the same batch of its own (so N processes train N times the tokens per step)
and one thread. The run is `buildgpt.train.distributed_runs throughput` under torchrun on
loopback gloo: rank 0 trains alone, then all ranks with DDP; then each part of a DDP step is
timed apart (compute with the gradient sync off, one all-reduce of the gradients) and the
model of `buildgpt.train.scaling` adds them up. On a machine shared with other work the
processes compete for cores, so read the compute time next to the tokens per second.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace

import torch

from buildgpt.settings.presets import CPU_MODEL, CPU_SCHEDULE, LECTURE_MODEL
from buildgpt.train import distributed, distributed_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["cpu", "lecture"], default="cpu")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=CPU_SCHEDULE.batch_size, help="per process")
    args = parser.parse_args()

    model = {"cpu": CPU_MODEL, "lecture": replace(LECTURE_MODEL, dropout=0.0)}[args.model]
    config = replace(CPU_SCHEDULE, max_iters=args.steps, batch_size=args.batch_size, compile=False)
    with tempfile.TemporaryDirectory() as out:
        distributed_runs.write_spec(out, model, config)
        result = distributed.launch(["-m", "buildgpt.train.distributed_runs", "throughput", out], args.nproc)
        if result.returncode:
            raise SystemExit(result.stdout[-2000:] + result.stderr[-3000:])
        measured = torch.load(f"{out}/throughput.pt", weights_only=True)
    speed, n = measured["tokens_per_second"], measured["world_size"]
    print(f"{args.model} model, {args.steps} steps of {args.batch_size} x {model.block_size} tokens per process")
    for count, tps in speed.items():
        print(f"{count:>3} process(es): {tps:>10,.0f} tokens/s  ({tps / speed[1]:.2f}x one process)")
    loop_step = n * measured["tokens_per_step"] / speed[n]
    predicted = measured["compute_seconds"] + measured["allreduce_seconds"]
    print(f"DDP step: compute {measured['compute_seconds'] * 1e3:.1f} ms + all-reduce of "
          f"{measured['gradient_bytes'] / 1e6:.1f} MB {measured['allreduce_seconds'] * 1e3:.1f} ms = "
          f"{predicted * 1e3:.1f} ms predicted; {loop_step * 1e3:.1f} ms measured ({predicted / loop_step:.2f}x)")


if __name__ == "__main__":
    main()
