"""Exercise 2's check: the learner's encoding of one addition problem against the package's batch source.

The learner writes `encode_addition(a, b, width)`: the text of `a+b=` with both operands
zero-padded to `width` digits, then the sum zero-padded to `width + 1` digits and reversed, then
a newline; as token ids, the inputs x (the text without its last character) and the targets y
(the text without its first), with every target inside the prompt set to -100 except the last,
the "=", whose target is the answer's first digit.
"""

from __future__ import annotations

import torch

from ..data.arithmetic import IGNORE_INDEX, VOCAB, ArithmeticBatches, ArithmeticFormat, Problem, encode


def reference_encoding(a: int, b: int, width: int) -> tuple[list[int], list[int]]:
    """x and y of `a+b` as the package's batch source makes them, reversed and masked.

    Example: `reference_encoding(57, 968, 3)` encodes "057+968=5201\\n".
    """
    problem = Problem(a, "+", b)
    return ArithmeticBatches(ArithmeticFormat(reverse=True, width=width), width, [problem], mask=True).encode(problem)


def _mistake(a: int, b: int, width: int, *, reverse: bool = True, answer_digits: int | None = None,
             pad_after_reversing: bool = False, masked: int = -1, newline: bool = True):
    """The encoding with one thing changed; `masked` counts masked targets relative to the right number."""
    digits = str(a + b).zfill(width + 1 if answer_digits is None else answer_digits)
    answer = (str(a + b)[::-1].zfill(width + 1) if pad_after_reversing else digits[::-1]) if reverse else digits
    prompt = f"{a:0{width}d}+{b:0{width}d}="
    ids = encode(prompt + answer + ("\n" if newline else ""))
    y = ids[1:]
    n_masked = len(prompt) + masked
    y[:n_masked] = [IGNORE_INDEX] * n_masked
    return ids[:-1], y


MISTAKES = {  # diagnosis -> the keywords of `_mistake` that reproduce it; the first match is reported
    "the sum is padded after reversing, so its zeros land on the wrong end: pad to width + 1 digits, then reverse":
        {"pad_after_reversing": True},
    "the answer is not reversed: write the sum's digits units first": {"reverse": False},
    "the sum is not zero-padded to width + 1 digits (room for a carry out of the top column)": {"answer_digits": 0},
    "the prompt's targets are scored: set them to -100 (IGNORE_INDEX), as the operands' digits cannot be predicted":
        {"masked": -len("0+0=")},
    "the target of '=' is masked too, but it is the answer's first digit, which must be scored": {"masked": 0},
    "the last operand digit's target (the '=' after it) is scored; mask every prompt target but the last":
        {"masked": -2},
    "the text has no final newline, the token that tells the model the answer is over": {"newline": False},
}


def _show(ids: list[int]) -> str:
    """The ids as text, "·" for a masked target; the raw ids if some are not in the vocabulary."""
    if not all(t == IGNORE_INDEX or 0 <= t < len(VOCAB) for t in ids):
        return str(ids)
    return "".join("·" if t == IGNORE_INDEX else VOCAB[t] for t in ids)


def check_encode_addition(fn) -> None:
    """Raise an AssertionError naming the mistake unless `fn` encodes random additions as the package does.

    Example: `check_encode_addition(encode_addition)` prints one line when all is well.
    """
    name = getattr(fn, "__name__", "your function")
    generator = torch.Generator().manual_seed(0)
    cases = [(0, 0, 1), (5, 5, 1), (999, 999, 3), (57, 968, 3)]  # the smallest, carries out of the top
    for width in (1, 2, 3, 4, 5):
        cases += [(*torch.randint(10**width, (2,), generator=generator).tolist(), width) for _ in range(4)]
    for a, b, width in cases:
        got = fn(a, b, width)
        assert isinstance(got, tuple) and len(got) == 2, f"{name} must return (x, y), two lists of token ids"
        x, y = ([int(t) for t in ids] for ids in got)
        want_x, want_y = reference_encoding(a, b, width)
        if (x, y) == (want_x, want_y):
            continue
        diagnosis = next((d for d, change in MISTAKES.items() if (x, y) == _mistake(a, b, width, **change)), None)
        if diagnosis is None:
            diagnosis = (f"x is {_show(x)!r} and y is {_show(y)!r} (· a masked target); expected "
                         f"x {_show(want_x)!r} and y {_show(want_y)!r}")
        raise AssertionError(f"{name}({a}, {b}, {width}) is wrong: {diagnosis}")
    print(f"✓ {name} encodes {len(cases)} additions as the package's batch source does "
          f"(reversed, zero-padded, prompt masked).")
