"""Exercise 2's calculator you can use: read `a op b`, stream the model's working, check it against Python.

    calc = Calculator.from_checkpoint("checkpoints/calculator/best.safetensors")
    calc.solve("47*36", sys.stdout)    # prints the trace as it is generated, the answer, "correct" or "wrong: ..."

Everything the calculator needs (the format, the operand length it was trained on, its
operations) is in the checkpoint's meta, written by `buildgpt train calculator` with
`calculator_meta`. Bad input raises `CalculatorInputError` with a message that says what was
wrong and what to do; nothing here prints a traceback for a typo.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TextIO

import torch

from ..data.arithmetic import MARKER, NEWLINE, OPS, VOCAB, ArithmeticFormat, Problem, decode, encode
from ..nn.model import GPT
from ..train.checkpoint import CheckpointError
from .arithmetic import ArithmeticEval, evaluate_problems
from .generate import generate_stream
from .load import load_model

TASK = "calculator"
HINTS = {"x": "*", "×": "*", "·": "*", "÷": "/", ":": "/", "−": "-"}  # look-alikes of the four operations


class CalculatorInputError(ValueError):
    """An expression the calculator cannot take; the message says why and what to type instead."""


def calculator_meta(fmt: ArithmeticFormat, digits: int, ops: tuple[str, ...] = OPS) -> dict:
    """What a calculator checkpoint records besides its weights. Example: `calculator_meta(ArithmeticFormat(trace=True), 2)`."""
    return {"task": TASK, "format": asdict(fmt), "digits": digits, "ops": list(ops)}


def parse_expression(text: str) -> Problem:
    """The problem `a op b` in `text`: whole numbers >= 0, one of + - * /, spaces anywhere between, a leading "+" allowed.

    Raises CalculatorInputError for anything else, and for a division by zero.
    Example: `parse_expression(" +1234 * 56 ")` gives Problem(1234, "*", 56).
    """
    if not text.strip():
        raise CalculatorInputError("empty expression: type one such as 47*36 (whole numbers >= 0, one of + - * /)")
    text = text.strip()  # positions in the messages count from the expression the message shows
    tokens: list[tuple[str, int]] = []  # (a number or an operator, its 1-based position)
    for i, c in enumerate(text, start=1):
        if c.isspace():
            continue
        if c in "0123456789":
            if tokens and tokens[-1][0].isdigit() and text[i - 2] in "0123456789":
                tokens[-1] = (tokens[-1][0] + c, tokens[-1][1])
                continue
            if tokens and tokens[-1][0].isdigit():
                raise CalculatorInputError(f"a space inside a number at position {i - 1} of {text!r}: "
                                           "write each number without spaces")
            tokens.append((c, i))
        elif c in OPS:
            tokens.append((c, i))
        else:
            hint = (f"; for {c!r} type {HINTS[c]!r}" if c in HINTS else
                    "; whole numbers only" if c in ".," else "")
            raise CalculatorInputError(f"unknown symbol {c!r} at position {i} of {text!r}: "
                                       f"use digits and one of + - * /{hint}")
    if tokens[0][0] == "+":  # a leading plus sign changes nothing
        tokens = tokens[1:]
    if any(t == "-" for t, _ in tokens[:1]) or any(t in OPS and u == "-" for (t, _), (u, _) in zip(tokens, tokens[1:])):
        raise CalculatorInputError(f"negative numbers are not supported in {text!r}: "
                                   "the operands are whole numbers >= 0")
    operators = [(t, i) for t, i in tokens if t in OPS]
    if not operators:
        raise CalculatorInputError(f"no operation in {text!r}: write a op b with one of + - * /, e.g. 47*36")
    if len(operators) > 1:
        where = ", ".join(f"{t!r} at position {i}" for t, i in operators)
        raise CalculatorInputError(f"one operation at a time: {text!r} has {len(operators)} ({where})")
    if len(tokens) != 3 or not tokens[0][0].isdigit() or not tokens[2][0].isdigit():
        side = "before" if not tokens[0][0].isdigit() else "after"
        raise CalculatorInputError(f"a number is missing {side} {operators[0][0]!r} in {text!r}: write a op b, e.g. 47*36")
    problem = Problem(int(tokens[0][0]), tokens[1][0], int(tokens[2][0]))
    if problem.op == "/" and problem.b == 0:
        raise CalculatorInputError(f"division by zero: {problem.a}/0 has no answer; divide by a whole number >= 1")
    return problem


def show(op: str, value) -> str:
    """An answer as a person reads it. Example: `show("/", (22, 2))` gives "22 remainder 2"."""
    return f"{value[0]} remainder {value[1]}" if op == "/" else str(value)


@dataclass
class Verdict:
    """The answer read from a completion (None if there is no well-formed answer line), and whether Python agrees."""

    problem: Problem
    value: int | tuple[int, int] | None
    correct: bool
    message: str  # "correct" or "wrong: Python says ..."


def check(problem: Problem, completion: str, fmt: ArithmeticFormat) -> Verdict:
    """Read the answer in a model's `completion` of `problem` and compare it with Python's.

    Example: `check(Problem(57, "+", 68), "11\\n>521\\n", ArithmeticFormat(trace=True)).message` gives "correct".
    """
    value, truth = fmt.parse(completion, problem.op, problem.digits), problem.answer
    if value == truth:
        return Verdict(problem, value, True, "correct")
    read = "no answer line could be read" if value is None else f"the model says {show(problem.op, value)}"
    return Verdict(problem, value, False, f"wrong: {read}; Python says {show(problem.op, truth)}")


@dataclass
class Calculator:
    """A calculator GPT with what it was trained on: the format, the longest operands, the operations."""

    model: GPT
    fmt: ArithmeticFormat
    digits: int
    ops: tuple[str, ...] = OPS

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu") -> Calculator:
        """The calculator in a checkpoint written by `buildgpt train calculator`; CheckpointError for any other."""
        if not Path(path).is_file():
            raise CheckpointError(f"no checkpoint at {path}; train a calculator with `buildgpt train calculator`, "
                                  "then pass its best.safetensors")
        model, ckpt = load_model(path, device)
        meta = ckpt.meta
        if meta.get("task") != TASK:
            was = meta.get("preset") or meta.get("task")
            raise CheckpointError(f"{path} is not a calculator checkpoint ({f'it was trained as {was!r}' if was else 'its meta names no task'}); "
                                  "train one with `buildgpt train calculator`")
        try:
            fmt = ArithmeticFormat(**{f.name: meta["format"][f.name] for f in fields(ArithmeticFormat)})
            digits, ops = int(meta["digits"]), tuple(meta["ops"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path} is a calculator checkpoint with damaged meta ({type(e).__name__}: {e})") from None
        if model.config.vocab_size != len(VOCAB) or not set(ops) <= set(OPS):
            raise CheckpointError(f"{path} does not fit the calculator's vocabulary of {len(VOCAB)} characters")
        return cls(model, fmt, digits, ops)

    def parse(self, text: str) -> tuple[Problem, list[str]]:
        """The problem in `text` and the warnings about it (operands longer than trained). Raises CalculatorInputError."""
        problem = parse_expression(text)
        if problem.op not in self.ops:
            raise CalculatorInputError(f"this model was trained on {' '.join(self.ops)} only, not {problem.op!r}")
        warnings = []
        if problem.digits > self.digits:
            warnings.append(f"the model was trained up to {self.digits} digits and this operand has {problem.digits}: "
                            "it answers anyway, but outside its training the answer is likely wrong")
        try:
            needed = len(self.fmt.text(problem))  # the prompt, the working and the answer, written right
        except ValueError as e:
            raise CalculatorInputError(f"the model's format cannot write this problem: {e}") from None
        if needed > self.model.config.block_size + 1:  # the last character never needs a position
            raise CalculatorInputError(f"{text.strip()!r} is too long: its working and answer take {needed} characters "
                                       f"and the model's window holds {self.model.config.block_size + 1}; use shorter "
                                       "numbers")
        return problem, warnings

    @torch.no_grad()
    def stream(self, problem: Problem) -> Iterator[str]:
        """The model's completion of `problem`, one character at a time as it is generated (greedy, with a KV cache).

        Stops after the answer line, or when the context window is full.
        """
        prompt = encode(self.fmt.prompt(problem))
        budget = self.model.config.block_size - len(prompt) + 1  # the last token never needs a position
        device = next(self.model.parameters()).device
        answering = not self.fmt.trace
        for token in generate_stream(self.model, torch.tensor([prompt], device=device), budget, temperature=0.0):
            c = decode(token[0].tolist())
            yield c
            answering |= c == MARKER
            if answering and c == NEWLINE:
                return

    def solve(self, text: str, out: TextIO, err: TextIO | None = None) -> Verdict:
        """Parse `text`, print the prompt and the model's working as it comes, then the answer and the verdict.

        Warnings go to `err` (default `out`); CalculatorInputError before any model call if the input is bad.
        """
        problem, warnings = self.parse(text)
        for warning in warnings:
            print(f"warning: {warning}", file=err or out, flush=True)
        out.write(self.fmt.prompt(problem))
        out.flush()
        completion = ""
        for c in self.stream(problem):
            completion += c
            out.write(c)
            out.flush()
        if not completion.endswith(NEWLINE):
            out.write(NEWLINE)
        verdict = check(problem, completion, self.fmt)
        flag = f"  (outside training: operands of up to {self.digits} digits)" if warnings else ""
        answer = "none (no well-formed answer line)" if verdict.value is None else show(problem.op, verdict.value)
        print(f"answer: {answer}{flag}", file=out)
        print(verdict.message, file=out, flush=True)
        return verdict

    def interactive(self, lines: Iterable[str], out: TextIO, err: TextIO, prompt: str = "") -> tuple[int, int]:
        """`solve` each line until the end of input (or "quit"/"exit"); blank lines are skipped, and a bad
        line gets its error and the loop goes on. Returns how many lines were answered and how many refused."""
        answered = refused = 0
        if prompt:
            err.write(prompt)
            err.flush()
        for line in lines:
            text = line.strip()
            if text.lower() in ("quit", "exit"):
                break
            if text:
                try:
                    self.solve(text, out, err)
                    answered += 1
                except CalculatorInputError as e:
                    print(f"error: {e}", file=err, flush=True)
                    refused += 1
            if prompt:
                err.write(prompt)
                err.flush()
        return answered, refused


def per_operation(result: ArithmeticEval) -> dict[str, tuple[float, int]]:
    """Exact-match accuracy per operation of an evaluation, with how many problems each had.

    Example: `per_operation(evaluate_problems(model, problems, fmt))["*"]` gives (0.97, 51).
    """
    out = {}
    for op in OPS:
        marks = [ok for p, ok in zip(result.problems, result.correct) if p.op == op]
        if marks:
            out[op] = (sum(marks) / len(marks), len(marks))
    return out


def accuracy_by_operation(model: GPT, problems: list[Problem], fmt: ArithmeticFormat) -> dict[str, tuple[float, int]]:
    """Greedy-decode `problems` and score them per operation. Example: `accuracy_by_operation(model, test, fmt)`."""
    return per_operation(evaluate_problems(model, problems, fmt))
