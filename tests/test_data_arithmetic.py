"""Arithmetic as text: answers against Python's integers, formats that round-trip, masks, disjoint splits, traces."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from buildgpt.data.arithmetic import (
    IGNORE_INDEX,
    OPS,
    VOCAB,
    ArithmeticBatches,
    ArithmeticFormat,
    Problem,
    decode,
    encode,
    held_out_problems,
    parse_prompt,
    sample_problems,
    shared_problems,
)
from buildgpt.data.arithmetic_steps import count_carries, digit_correct
from buildgpt.nn.loss import IGNORE_INDEX as NN_IGNORE_INDEX

operand = st.integers(0, 10**6 - 1)
# width 3: operands of up to 6 digits are often longer than it
formats = st.builds(ArithmeticFormat, reverse=st.booleans(), width=st.sampled_from([None, 3, 6, 8]), trace=st.booleans())


def problems_with():
    return st.builds(Problem, operand, st.sampled_from(OPS), operand).filter(lambda p: not (p.op == "/" and p.b == 0))


def test_ignore_index_is_the_losses():
    assert IGNORE_INDEX == NN_IGNORE_INDEX


def test_answers_are_pythons():
    assert Problem(52, "-", 187).answer == -135 and Problem(1234, "/", 56).answer == (22, 2)
    assert Problem(1234, "*", 56).answer == 69104 and Problem(12, "+", 345).answer == 357
    with pytest.raises(ValueError, match="division by zero"):
        _ = Problem(1, "/", 0).answer


def test_documented_examples():
    assert ArithmeticFormat(width=3).text(Problem(12, "+", 345)) == "012+345=7530\n"
    assert ArithmeticFormat(reverse=False).text(Problem(12, "+", 345)) == "12+345=357\n"
    assert ArithmeticFormat().text(Problem(12, "+", 345)) == "12+345=753\n"
    assert ArithmeticFormat().text(Problem(52, "-", 187)) == "52-187=-531\n"  # the sign stays in front
    plain = ArithmeticFormat(reverse=False, trace=True)
    assert plain.text(Problem(57, "+", 68)) == "57+68=11\n>125\n"
    assert plain.text(Problem(52, "-", 18)) == "52-18=01\n>34\n"
    assert plain.text(Problem(18, "-", 52)) == "18-52=-01\n>-34\n"
    assert plain.text(Problem(12, "*", 56)) == "12*56=0612,72,72\n0510,600,672\n>672\n"
    assert plain.text(Problem(1234, "*", 56)) == "1234*56=06121824,7404,7404\n05101520,61700,69104\n>69104\n"
    padded = ArithmeticFormat(reverse=False, width=2, trace=True)  # every number of the working at a fixed width
    assert padded.text(Problem(12, "*", 56)) == "12*56=0612,0072,0072\n0510,0600,0672\n>0672\n"
    assert padded.text(Problem(97, "/", 7)) == "97/07=009,1,007,02\n027,3,021,06\n>13,06\n"
    assert plain.text(Problem(123, "/", 5)) == "123/5=1,0,0,1\n12,2,10,2\n23,4,20,3\n>24,3\n"


@settings(max_examples=300, deadline=None)
@given(problems_with(), formats)
def test_every_format_round_trips(p, fmt):
    text = fmt.text(p)
    prompt, completion = text[:len(fmt.prompt(p))], text[len(fmt.prompt(p)):]
    assert prompt.endswith("=") and prompt.count("=") == 1 and parse_prompt(text) == p
    assert fmt.parse(completion, p.op, p.digits) == p.answer  # reversal undone, padding read
    assert completion.endswith("\n") and decode(encode(text)) == text
    assert len(text) <= fmt.max_length((p.op,), 6)


@given(st.integers(0, 10**8 - 1), st.integers(0, 10**8 - 1))
def test_reversed_sum_reads_backwards(a, b):
    completion = ArithmeticFormat(width=8).completion(Problem(a, "+", b))
    assert len(completion) == 10 and int(completion[:-1][::-1]) == a + b


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("trace", [False, True])
def test_max_length_is_reached_but_never_passed(op, trace):
    fmt, digits = ArithmeticFormat(reverse=False, trace=trace), 3
    problems = sample_problems(3000, digits, (op,), torch.Generator().manual_seed(1)) + [Problem(999, op, 999)]
    assert max(len(fmt.text(p)) for p in problems) <= fmt.max_length((op,), digits)


# Traces, checked step by step from the text alone.

def _read(s: str, reverse: bool) -> int:
    sign, digits = (-1, s[1:]) if s.startswith("-") else (1, s)
    return sign * int(digits[::-1] if reverse else digits)


def _digits_lsb_first(s: str, reverse: bool) -> list[int]:
    return [int(c) for c in (s if reverse else s[::-1])]


def check_trace(p: Problem, fmt: ArithmeticFormat) -> None:
    *steps, answer = fmt.completion(p).split("\n")[:-1]
    assert answer.startswith(">") and fmt.parse(fmt.completion(p), p.op, p.digits) == p.answer
    r, a, b = fmt.reverse, p.a, p.b
    if p.op == "+":
        (line,) = steps
        carry = 0
        for i, c in enumerate(_digits_lsb_first(line, r)):  # the carry out of column i is right
            carry = (a // 10**i % 10 + b // 10**i % 10 + carry) // 10
            assert c == carry
        assert len(line) >= len(str(a + b)) - 1 and carry == (a + b) // 10 ** len(line)
    elif p.op == "-":
        (line,) = steps
        assert line.startswith("-") == (a < b)
        big, small = max(a, b), min(a, b)
        borrow, result = 0, 0
        for i, c in enumerate(_digits_lsb_first(line.lstrip("-"), r)):  # each column's digit, with its borrow
            assert c in (0, 1)
            column = big // 10**i % 10 - borrow - small // 10**i % 10 + 10 * c
            assert 0 <= column <= 9
            result, borrow = result + column * 10**i, c
        assert borrow == 0 and result == big - small
    elif p.op == "*":
        total = 0
        for i, step in enumerate(steps):
            pairs, *numbers = step.split(",")
            chunks = [pairs[k:k + 2] for k in range(0, len(pairs), 2)]
            products = [int(c[::-1] if r else c) for c in (chunks if r else chunks[::-1])]  # digit j of a first
            assert products == [a // 10**j % 10 * (b // 10**i % 10) for j in range(len(products))]
            assert a < 10 ** len(products)  # every digit of a has its product
            partial, running = (_read(s, r) for s in numbers)
            assert partial == a * (b // 10**i % 10) * 10**i and running == total + partial
            total = running
        assert total == a * b and len(steps) >= len(str(b))
    else:
        remainder, quotient = 0, 0
        digits = f"{a:0{len(steps)}d}"
        for d, step in zip(digits, steps):
            current, q, product, new = (_read(s, r) for s in step.split(","))
            assert current == remainder * 10 + int(d) and 0 <= q <= 9 and product == q * b
            assert new == current - product and 0 <= new < b
            remainder, quotient = new, quotient * 10 + q
        assert (quotient, remainder) == divmod(a, b)


@settings(max_examples=400, deadline=None)
@given(problems_with(), st.booleans(), st.sampled_from([None, 3, 6]))
def test_traces_are_right_step_by_step(p, reverse, width):
    check_trace(p, ArithmeticFormat(reverse=reverse, width=width, trace=True))


# Carries and digit positions, for error analysis.

@given(operand, operand)
def test_carries_counted_right(a, b):
    # column i-1 carries exactly when the last i digits of a and b sum to 10**i or more
    expected = sum((a % 10**i + b % 10**i) >= 10**i for i in range(1, 8))
    assert count_carries(a, b) == expected


def test_carries_examples():
    assert count_carries(57, 68) == 2 and count_carries(12, 345) == 0 and count_carries(999, 1) == 3


def test_digit_correct():
    assert digit_correct(367, 357, 4) == [True, False, True, True]
    assert digit_correct(357, 357, 3) == [True] * 3 and digit_correct(None, 357, 3) == [False] * 3


# The parser never raises, and malformed output is None (wrong).

@pytest.mark.parametrize("completion", [
    "", "7530", "\n", "75a0\n", "--753\n", "7-53\n", "75 3\n", "75301\n", "753\n", "+753\n", "7530,1\n", "-\n", "__\n",
])
def test_malformed_addition_is_none(completion):
    assert ArithmeticFormat(width=3).parse(completion, "+") is None


def test_only_the_answer_line_counts():
    fmt = ArithmeticFormat(reverse=False, trace=True)
    assert fmt.parse("7404,7404\n61700,69104\n>69104\n", "*") == 69104
    assert fmt.parse("7404,7404\n61700,69104\n>69105\n", "*") == 69105  # a right trace does not rescue a wrong answer
    assert fmt.parse("7404,7404\n61700,69104\n", "*") is None  # no answer line: the trace is not an answer
    assert fmt.parse("7404,7404\n>69104", "*") is None  # the answer line never ended
    assert fmt.parse(">69104\n>1\n", "*") == 69104  # decoding stops at the first answer line
    assert fmt.parse(">22,2\n", "/") == (22, 2) and fmt.parse(">22\n", "/") is None and fmt.parse(">22,2\n", "+") is None
    assert ArithmeticFormat().parse("753\n999", "+") == 357  # after the newline is padding, not the answer
    assert ArithmeticFormat().parse("-531\n", "-") == -135 and ArithmeticFormat().parse("-5-31\n", "-") is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=VOCAB + "xé ", max_size=30), formats, st.sampled_from(OPS))
def test_parser_never_raises(text, fmt, op):
    value = fmt.parse(text, op)
    assert value is None or isinstance(value, (int, tuple))


# Splits: held-out problems never reach training.

def test_held_out_is_deterministic_and_distinct():
    a, b = held_out_problems(500, 3, OPS, seed=3), held_out_problems(500, 3, OPS, seed=3)
    assert a == b and len(set(a)) == 500 and a != held_out_problems(500, 3, OPS, seed=4)
    assert all(p.b != 0 for p in a if p.op == "/")
    with pytest.raises(ValueError, match="at most 20% of each cell"):
        held_out_problems(21, 1)  # 1-digit addition has only 100 problems: a fifth is 20
    with pytest.raises(ValueError, match="ask for fewer than 101"):
        held_out_problems(101, 1, max_share=1.0)


def test_sampled_operands_follow_the_digits():
    problems = sample_problems(2000, 4, OPS, torch.Generator().manual_seed(0), min_digits=2)
    lengths = {len(str(n)) for p in problems for n in (p.a, p.b)}
    assert lengths == {2, 3, 4} and {p.op for p in problems} == set(OPS)


def test_an_operation_listed_twice_is_drawn_twice_as_often():
    problems = ArithmeticBatches(ArithmeticFormat(width=2), 2, [Problem(1, "+", 1)], ("+", "/", "/")).problems(
        "train", 6000, torch.Generator().manual_seed(0))
    share = sum(p.op == "/" for p in problems) / len(problems)
    assert abs(share - 2 / 3) < 0.02 and {p.op for p in problems} == {"+", "/"}


def test_train_and_test_disjoint_on_the_batch_source():
    """1-digit addition has 100 problems; 30 are held out, so a leak would show within a few batches."""
    held_out = held_out_problems(30, 1, max_share=0.3)
    batches = ArithmeticBatches(ArithmeticFormat(width=1), 1, held_out)
    g = torch.Generator().manual_seed(0)
    seen_train, seen_val = set(), set()
    for _ in range(50):
        seen_train |= {parse_prompt(decode(row)) for row in batches.batch("train", 64, g)[0]}
        seen_val |= {parse_prompt(decode(row)) for row in batches.batch("val", 64, g)[0]}
    assert not shared_problems(seen_train, held_out) and len(seen_train) == 70  # every other problem is trained on
    assert seen_val == set(held_out)


def test_shared_problems():
    assert shared_problems([(1, "+", 2), Problem(3, "+", 4)], [Problem(1, "+", 2)]) == {Problem(1, "+", 2)}


# Masks: exactly the prompt; padding never scored.

@pytest.mark.parametrize("fmt", [ArithmeticFormat(width=3), ArithmeticFormat(), ArithmeticFormat(trace=True)])
@pytest.mark.parametrize("mask", [True, False])
def test_masks_cover_exactly_the_prompt(fmt, mask):
    batches = ArithmeticBatches(fmt, 3, held_out_problems(50, 3, OPS), OPS, mask=mask)
    x, y = batches.batch("train", 200, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (200, batches.length) and x.dtype == y.dtype == torch.long
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        p = parse_prompt(decode(row_x))
        text, prompt = fmt.text(p), fmt.prompt(p)
        first = len(prompt) - 1 if mask else 0  # the "=" predicts the first answer character
        scored = [i for i, t in enumerate(row_y) if t != IGNORE_INDEX]
        assert scored == list(range(first, len(text) - 1))
        assert decode(row_x[:len(text) - 1]) == text[:-1] and decode(row_y[i] for i in scored) == text[first + 1:]
        assert set(row_x[len(text) - 1:]) <= {VOCAB.index("_")}


def test_unknown_split_and_bad_problems():
    batches = ArithmeticBatches(ArithmeticFormat(width=2), 2, held_out_problems(10, 2))
    with pytest.raises(ValueError, match="split"):
        batches.batch("test", 4)
    assert ArithmeticFormat(width=2).prompt(Problem(123, "+", 4)) == "123+04="  # longer operands stay whole
    with pytest.raises(ValueError, match="a problem is a op b with a, b >= 0"):
        ArithmeticFormat().prompt(Problem(-1, "+", 4))


def test_reversed_operands_put_the_units_first():
    fmt = ArithmeticFormat(reverse=True, reverse_operands=True)
    assert fmt.text(Problem(57, "+", 968)) == "75+869=5201\n"
    assert ArithmeticFormat(width=4, reverse_operands=True).prompt(Problem(12, "+", 345)) == "2100+5430="


def test_batches_without_held_out_problems_say_what_to_pass():
    with pytest.raises(ValueError, match="held-out problems"):
        ArithmeticBatches(ArithmeticFormat(), 3, [])


def test_held_out_problems_leave_most_of_every_small_cell_to_training():
    held_out = held_out_problems(2000, 2, OPS, seed=0)
    one_digit = [p for p in held_out if p.a < 10 and p.b < 10]
    for op in OPS:  # a hundred one-digit problems per operation (ninety for division): a fifth at most
        assert sum(p.op == op for p in one_digit) <= 20
    assert len(set(held_out)) == 2000
