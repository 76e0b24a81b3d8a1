"""Exact-match evaluation of an arithmetic GPT (exercise 2): batched greedy decoding with a KV cache.

Accuracy on thousands of held-out problems needs thousands of decodes. One at a time, each
token re-runs the model over the whole text (`greedy_reference`, the plain path). Batched, the
prompts of one length run together through the model once, and then each step runs one new
position per problem from the cache (`greedy_decode`): the same tokens, many times faster
(benchmarks/bench_arithmetic.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.arithmetic import (
    MARKER,
    NEWLINE,
    STOI,
    ArithmeticFormat,
    Problem,
    decode,
    encode,
)
from ..data.arithmetic_steps import count_carries, digit_correct
from ..nn.model import GPT
from .batched import decode_until


@torch.no_grad()
def greedy_decode(model: GPT, prompts: torch.Tensor, max_new_tokens: int, stop_at_marker: bool = False) -> list[list[int]]:
    """The greedy completion of each prompt (B, T), up to and including its ending newline.

    All prompts have one length, so they run as one batch: the prompts once, then one position
    per step through the KV cache (a model that cannot use the cache reruns the whole text each
    step, still as one batch). Decoding stops at `max_new_tokens` or once every row has
    ended: at its first newline, or with `stop_at_marker` (traces) at the first newline after ">".
    Example: `greedy_decode(model, torch.tensor([encode("012+345=")]), 5)` gives [[ids of "7530\\n"]].
    """
    newline, marker = STOI[NEWLINE], STOI[MARKER]
    answering = torch.full((prompts.size(0),), not stop_at_marker, device=next(model.parameters()).device)

    def ends(next_id: torch.Tensor) -> torch.Tensor:  # the first newline once past the ">" (always, without traces)
        answering.logical_or_(next_id == marker)
        return answering & (next_id == newline)

    return decode_until(model, prompts, max_new_tokens, ends)


@torch.no_grad()
def greedy_reference(model: GPT, prompt: list[int], max_new_tokens: int, stop_at_marker: bool = False) -> list[int]:
    """The same decode for one prompt on the plain path: the whole text through `model(idx)` per token.

    Example: `greedy_reference(model, encode("012+345="), 5)`."""
    if len(prompt) + max_new_tokens - 1 > model.config.block_size:
        raise ValueError(f"a prompt of {len(prompt)} tokens and {max_new_tokens} new ones exceed the window")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids, new, answering = list(prompt), [], not stop_at_marker
    try:
        for _ in range(max_new_tokens):
            logits, _ = model(torch.tensor([ids], device=device))
            next_id = int(logits[0, -1].argmax())
            ids.append(next_id), new.append(next_id)
            answering |= next_id == STOI[MARKER]
            if answering and next_id == STOI[NEWLINE]:
                break
    finally:
        model.train(was_training)
    return new


@dataclass
class ArithmeticEval:
    """Per problem: what the model wrote after the "=", the answer parsed from it (None if malformed), and
    whether that is the exact answer."""

    problems: list[Problem]
    completions: list[str]
    predicted: list
    correct: list[bool]

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct) if self.correct else float("nan")

    def mistakes(self, n: int = 5) -> list[tuple[str, str]]:
        """Up to `n` wrong problems as (prompt text, what the model wrote)."""
        return [(f"{p.a}{p.op}{p.b}", c) for p, c, ok in zip(self.problems, self.completions, self.correct) if not ok][:n]


def evaluate_problems(model: GPT, problems: list[Problem], fmt: ArithmeticFormat, batch_size: int = 2048) -> ArithmeticEval:
    """Exact-match accuracy of greedy decoding on `problems`, with the result of each.

    Prompts are grouped by length, so each group decodes as batches (with `width`, all are one
    group). Each group may write one character more than its longest expected completion (if the
    window allows), so a run-on answer shows as such; the answer must then parse exactly (see `ArithmeticFormat.parse`).
    Example: `evaluate_problems(model, held_out_problems(2000, 3), ArithmeticFormat(width=3)).accuracy`.
    """
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(problems):
        groups.setdefault(len(fmt.prompt(p)), []).append(i)
    completions = [""] * len(problems)
    for indices in groups.values():
        longest = max(len(fmt.completion(problems[i])) for i in indices)
        budget = min(longest + 1, model.config.block_size - len(fmt.prompt(problems[indices[0]])) + 1)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            prompts = torch.tensor([encode(fmt.prompt(problems[i])) for i in chunk])
            for i, ids in zip(chunk, greedy_decode(model, prompts, budget, stop_at_marker=fmt.trace)):
                completions[i] = decode(ids)
    predicted = [fmt.parse(c, p.op, p.digits) for c, p in zip(completions, problems)]
    correct = [value is not None and value == p.answer for value, p in zip(predicted, problems)]
    return ArithmeticEval(list(problems), completions, predicted, correct)


def digit_accuracy_by_carries(result: ArithmeticEval, digits: int) -> list[list[float]]:
    """For additions: accuracy of each digit of the sum (columns: units first, `digits` + 1 of them),
    among the problems with 0, 1, ... `digits` carries (rows). NaN where no problem has that many.

    Example: `digit_accuracy_by_carries(evaluate_problems(model, test, fmt), 3)[2][1]` is how often
    the tens digit is right when the addition carries twice.
    """
    if others := sorted({p.op for p in result.problems} - {"+"}):
        raise ValueError(f"digit_accuracy_by_carries counts the carries of additions; these problems also hold {others}")
    totals = [[0] * (digits + 1) for _ in range(digits + 1)]
    counts = [0] * (digits + 1)
    for p, value in zip(result.problems, result.predicted):
        carries = count_carries(p.a, p.b)
        counts[carries] += 1
        for position, ok in enumerate(digit_correct(value, p.answer, digits + 1)):
            totals[carries][position] += ok
    return [[total / counts[c] if counts[c] else float("nan") for total in row] for c, row in enumerate(totals)]
