"""Exact-match evaluation speed for exercise 2, side by side: problems per second, batched vs one at a time.

    .venv/bin/python benchmarks/bench_arithmetic.py                 # a few seconds on 2 cores
    .venv/bin/python benchmarks/bench_arithmetic.py --problems 10000 --reference-problems 500

The model is the 3-digit-addition size (2 layers, 4 heads, 128 wide; zero-padded, reversed
format, so every prompt has 8 characters and every answer 5), with random weights: speed does
not depend on what the weights have learnt, and both paths decode the same tokens with the
same budget and stopping rule (checked below on the reference's problems).

Ours: `evaluate_problems`, which decodes all problems as batches through the KV cache and then
parses them. Reference: `greedy_reference`, one problem at a time, the whole text through
`model(idx)` per new token (the plain path), timed on a subset and reported per problem.
The issue's bar is 2,000 problems per second on the CPU.
"""

from __future__ import annotations

import argparse
import time

import torch

from buildgpt.data.arithmetic import VOCAB, ArithmeticFormat, decode, encode, held_out_problems
from buildgpt.infer.arithmetic import evaluate_problems, greedy_reference
from buildgpt.nn.model import GPT, GPTConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=5000)
    parser.add_argument("--reference-problems", type=int, default=300)
    args = parser.parse_args()

    fmt, digits = ArithmeticFormat(width=3), 3
    problems = held_out_problems(args.problems, digits)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(VOCAB), block_size=fmt.max_length(("+",), digits) - 1, n_layer=2,
                          n_head=4, n_embd=128, dropout=0.0)).eval()
    print(f"{model.num_params():,} parameters, {torch.get_num_threads()} threads, {len(problems):,} problems")

    evaluate_problems(model, problems[:256], fmt)  # warm up
    start = time.perf_counter()
    result = evaluate_problems(model, problems, fmt)
    ours = len(problems) / (time.perf_counter() - start)

    subset = problems[:args.reference_problems]
    # what evaluate_problems allows: one past the answer, if the window has room (here it has not)
    budget = min(len(fmt.completion(subset[0])) + 1, model.config.block_size - len(fmt.prompt(subset[0])) + 1)
    start = time.perf_counter()
    slow = [decode(greedy_reference(model, encode(fmt.prompt(p)), budget)) for p in subset]
    reference = len(subset) / (time.perf_counter() - start)
    assert slow == result.completions[:len(subset)], "the two decoders disagree"

    print(f"{'batched + KV cache (ours)':28s} {ours:10,.0f} problems/s")
    print(f"{'one at a time, no cache':28s} {reference:10,.0f} problems/s")
    print(f"ratio: {ours / reference:.1f}x; bar of 2,000 problems/s {'met' if ours >= 2000 else 'NOT met'}")


if __name__ == "__main__":
    main()
