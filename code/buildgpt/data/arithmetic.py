"""Arithmetic as text (exercise 2): problems, their formats, masks, a held-out split, and batches.

A problem is `a op b` for integers a, b >= 0 and op one of `+ - * /`. Its text is a prompt (the
problem and "="), then a completion that ends with a newline; one character is one token.

    ArithmeticFormat(width=3).text(Problem(12, "+", 345))                  "012+345=7530\\n"
    ArithmeticFormat(reverse=False).text(Problem(12, "+", 345))            "12+345=357\\n"
    ArithmeticFormat(reverse=False).text(Problem(52, "-", 187))            "52-187=-135\\n"
    ArithmeticFormat(reverse=False).text(Problem(1234, "/", 56))           "1234/56=22,2\\n"

`reverse` writes every number after the "=" least significant digit first (a sign stays in
front): the model then produces the digits in the order a carry travels. `width` zero-pads the
operands (and the sum, to width + 1 digits), so every prompt and every sum has one length and
a whole test set decodes as one batch.

With `trace=True` the completion shows its working, one step per line, and the answer line,
always the last, starts with ">". Digit strings in a trace follow `reverse` like numbers do.
Plain examples (reverse=False):

    +  the carry out of each column:                       "57+68=11\\n>125\\n"
    -  the borrow of each column of larger - smaller,
       after a "-" when a < b:                             "52-18=01\\n>34\\n", "18-52=-01\\n>-34\\n"
    *  per digit of b, least significant first: the
       product of that digit with each digit of a (two
       digits each), the shifted partial product, the
       running sum:                  "12*56=0612,72,72\\n0510,600,672\\n>672\\n"
    /  per digit of a (long division): the number brought
       down, the quotient digit, its product with b, the
       remainder; the answer is quotient,remainder:        "123/5=1,0,0,1\\n12,2,10,2\\n23,4,20,3\\n>24,3\\n"

With `width`, every number of the working and of the answer (but a difference) is zero-padded to
a fixed number of digits too (a product's to 2 * width, a number brought down to width + 1), so
each digit sits at the same position in every problem and the model finds it by position alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .arithmetic_steps import borrows, carries, division_steps, multiplication_steps

VOCAB = "_0123456789+-*/=,>\n"  # "_" pads a batch; "\n" ends the answer; ">" starts a traced answer line
PAD, NEWLINE, MARKER = "_", "\n", ">"
STOI = {c: i for i, c in enumerate(VOCAB)}
IGNORE_INDEX = -100  # equal to buildgpt.nn.loss.IGNORE_INDEX (tested): data may not import nn
OPS = ("+", "-", "*", "/")


def encode(text: str) -> list[int]:
    """Token ids of arithmetic text (the ids of `CharTokenizer(list(VOCAB))`). Example: `encode("1+2=")`."""
    return [STOI[c] for c in text]


def decode(ids) -> str:
    """Text of token ids. Example: `decode(encode("1+2=30\\n"))` gives "1+2=30\\n"."""
    return "".join(VOCAB[int(i)] for i in ids)


class Problem(NamedTuple):
    a: int
    op: str
    b: int

    @property
    def answer(self) -> int | tuple[int, int]:
        """Python's exact answer. Example: `Problem(1234, "/", 56).answer` gives (22, 2), quotient and remainder."""
        a, b = self.a, self.b
        if self.op == "/" and b == 0:
            raise ValueError("division by zero has no answer")
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: divmod(a, b)}[self.op]()

    @property
    def digits(self) -> int:
        """The longer operand's digits. Example: `Problem(1234, "/", 56).digits` is 4."""
        return max(len(str(self.a)), len(str(self.b)))


def number(n: int, reverse: bool, pad: int = 0) -> str:
    """`n` zero-padded to `pad` digits, digits reversed if asked. Example: `number(-120, True)` gives "-021"."""
    digits = str(abs(n)).zfill(pad)
    return "-" * (n < 0) + (digits[::-1] if reverse else digits)


_NUMBER = re.compile(r"-?[0-9]+")
_PROMPT = re.compile(r"([0-9]+)([-+*/])([0-9]+)=")


@dataclass(frozen=True)
class ArithmeticFormat:
    """How a problem is written: reversed answers or plain, zero-padded operands or not, a trace or not.

    Example: `ArithmeticFormat(width=3).text(Problem(12, "+", 345))` gives "012+345=7530\\n".
    """

    reverse: bool = True  # numbers after the "=" least significant digit first
    # zero-pad operands to this many digits (a sum to width + 1); longer ones stay whole, and their working and answer
    # are written as if the width were theirs
    width: int | None = None
    trace: bool = False  # write the working before the answer line
    reverse_operands: bool = False  # the operands too, units first: digit i of every number is the 10^i column

    def prompt(self, p: Problem) -> str:
        """Everything up to and including "=", what the model is given. Example: "012+345=" (width 3)."""
        if p.a < 0 or p.b < 0 or p.op not in OPS:
            raise ValueError(f"a problem is a op b with a, b >= 0 and op in {OPS}, got {p}")
        a, b = (number(n, self.reverse_operands, self.width or 0) for n in (p.a, p.b))
        return f"{a}{p.op}{b}="

    def answer(self, p: Problem) -> str:
        """The answer as written, without the newline. Example: "-531" for 52-187 reversed."""
        value, pads = p.answer, self.answer_widths(p.op, p.digits)
        if p.op == "/":
            return f"{number(value[0], self.reverse, pads[0])},{number(value[1], self.reverse, pads[1])}"
        return number(value, self.reverse, pads[0])

    def answer_widths(self, op: str, digits: int = 0) -> tuple[int, ...]:
        """The digits each part of an `op` answer is padded to (0: not padded), for operands of up to `digits` digits.

        Example: (4,) for "+" with width 3, and (6,) with width 3 for 5-digit operands."""
        w = self._width_for(digits)
        if w is None or op == "-":
            return (0, 0) if op == "/" else (0,)
        return {"+": (w + 1,), "*": (2 * w,), "/": (w, w)}[op]

    def _width_for(self, digits: int) -> int | None:
        """The width numbers are written at for operands of `digits` digits: the format's, or theirs if longer."""
        return self.width and max(self.width, digits)

    def trace_lines(self, p: Problem) -> list[str]:
        """The working, one string per line (no newlines). Example: ["0612,72,72", "0510,600,672"] for 12*56 (reverse=False)."""
        r, w = self.reverse, self._width_for(p.digits) or 0
        columns = w or p.digits

        def digits(values: list[int]) -> str:  # computed least significant first
            return "".join(map(str, values if r else values[::-1]))

        if p.op == "+":
            return [digits(carries(p.a, p.b, columns))]
        if p.op == "-":
            return ["-" * (p.a < p.b) + digits(borrows(max(p.a, p.b), min(p.a, p.b), columns))]  # larger - smaller
        if p.op == "*":  # each digit product is a multiplication table entry, two digits
            steps = multiplication_steps(p.a, p.b, w or len(str(p.b)), max(w, len(str(p.a))))
            return [f"{digits([number(n, r, 2) for n in products])},{number(partial, r, 2 * w)},{number(total, r, 2 * w)}"
                    for products, partial, total in steps]
        if p.b == 0:
            raise ValueError("division by zero has no answer")
        pads = (w + 1, 0, w + 1, w)  # brought down, quotient digit, its product, remainder (w 0: unpadded)
        return [",".join(number(n, r, pad) for n, pad in zip(step, pads))
                for step in division_steps(p.a, p.b, w or len(str(p.a)))]

    def completion(self, p: Problem) -> str:
        """What the model should write after the prompt, up to and including the final newline."""
        if not self.trace:
            return self.answer(p) + NEWLINE
        return "".join(line + NEWLINE for line in self.trace_lines(p)) + MARKER + self.answer(p) + NEWLINE

    def text(self, p: Problem) -> str:  # the whole training example
        return self.prompt(p) + self.completion(p)

    def max_length(self, ops: tuple[str, ...], digits: int) -> int:
        """The most characters a text with operands of up to `digits` digits can have. Example: 13 for "012+345=7530\\n"."""
        d = max(digits, self.width or 0)
        answer = {"+": d + 1, "-": d + 1, "*": 2 * d, "/": 2 * d + 1}
        trace = {"+": d + 1, "-": d + 2, "*": d * (6 * d + 3), "/": d * (3 * d + 7)}  # lines with their newlines
        return max(2 * d + 2 + answer[op] + 1 + (trace[op] + 1 if self.trace else 0) for op in ops)

    def parse(self, completion: str, op: str, digits: int = 0) -> int | tuple[int, int] | None:
        """The answer in a model's completion for an `op` problem (operands of up to `digits` digits, which matter
        only when longer than the width), or None if it is malformed.

        Only the answer line counts (with a trace, the first line that starts with ">"), and it must
        end with a newline; what follows that newline is ignored. Never raises.
        Example: `ArithmeticFormat().parse("7530\\n", "+")` gives 357; `parse("75", "+")` gives None.
        """
        lines = completion.split(NEWLINE)[:-1]  # the last piece never ended with a newline
        if self.trace:
            line = next((s[1:] for s in lines if s.startswith(MARKER)), None)
        else:
            line = lines[0] if lines else None
        if line is None:
            return None
        parts = line.split(",")
        if len(parts) != (2 if op == "/" else 1) or not all(_NUMBER.fullmatch(s) for s in parts):
            return None
        if any(pad and len(s) != pad for s, pad in zip(parts, self.answer_widths(op, digits))):
            return None  # a fixed-width answer has exactly its width of digits: more is run-on
        values = [int(s[0] + s[1:][::-1] if s[0] == "-" else s[::-1]) if self.reverse else int(s) for s in parts]
        return tuple(values) if op == "/" else values[0]


def parse_prompt(text: str) -> Problem | None:
    """The problem at the start of `text`, or None. Example: `parse_prompt("012+345=7530")` gives Problem(12, "+", 345)."""
    match = _PROMPT.match(text)
    return Problem(int(match[1]), match[2], int(match[3])) if match else None


def sample_problems(n: int, digits: int, ops: tuple[str, ...] = ("+",), generator: torch.Generator | None = None,
                    min_digits: int = 1, exclude: set[Problem] | frozenset = frozenset()) -> list[Problem]:
    """`n` random problems, none in `exclude`, none dividing by zero.

    Each operand first draws its length uniformly from min_digits..digits, then a number of that
    length, so short numbers are not drowned out by long ones (uniform numbers would be 90% full length).
    Example: `sample_problems(4, 3, generator=torch.Generator().manual_seed(0))`.
    """
    if not 1 <= min_digits <= digits <= 15:  # float64 draws are exact up to 15 digits
        raise ValueError(f"need 1 <= min_digits <= digits <= 15, got {min_digits}, {digits}")
    out: list[Problem] = []
    for _ in range(1000):
        m = 2 * (n - len(out)) + 8
        a, b = (_operands(m, digits, min_digits, generator) for _ in range(2))
        op = torch.randint(len(ops), (m,), generator=generator).tolist()
        out += [p for p in map(Problem, a, (ops[i] for i in op), b) if p not in exclude and not (p.op == "/" and p.b == 0)]
        if len(out) >= n:
            return out[:n]
    raise ValueError(f"could not draw {n} problems outside the {len(exclude)} excluded ones")


def _operands(n: int, digits: int, min_digits: int, generator: torch.Generator | None) -> list[int]:
    length = torch.randint(min_digits, digits + 1, (n,), generator=generator)
    low = torch.where(length == 1, 0, 10 ** (length - 1))
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (low + (u * (10**length - low)).long()).tolist()


def held_out_problems(n: int, digits: int, ops: tuple[str, ...] = ("+",), seed: int = 0, min_digits: int = 1,
                      max_share: float = 0.2) -> list[Problem]:
    """`n` distinct problems drawn with `seed`, the test set. Example: `held_out_problems(2000, 3)`, always the same.

    At most `max_share` of any cell (one operation, one length of each operand) is held out, so
    small cells such as one-digit additions (a hundred problems) stay mostly in training.
    """
    generator, seen, per_cell = torch.Generator().manual_seed(seed), {}, {}
    for _ in range(1000):
        for p in sample_problems(n, digits, ops, generator, min_digits):
            cell = (p.op, len(str(p.a)), len(str(p.b)))
            if p not in seen and per_cell.get(cell, 0) < max(1, max_share * _cell_size(*cell)):
                seen[p] = None  # a dict keeps the order they were drawn in
                per_cell[cell] = per_cell.get(cell, 0) + 1
        if len(seen) >= n:
            return list(seen)[:n]
    raise ValueError(f"only {len(seen)} problems of up to {digits} digits can be held out "
                     f"(at most {max_share:.0%} of each cell); ask for fewer than {n}")


def _cell_size(op: str, len_a: int, len_b: int) -> int:
    def count(length: int) -> int:  # numbers with exactly this many digits
        return 10 if length == 1 else 9 * 10 ** (length - 1)
    return count(len_a) * (count(len_b) - (op == "/" and len_b == 1))  # no division by zero


def shared_problems(problems, held_out) -> set[Problem]:
    """The problems in both collections: empty when training and test are disjoint. Example: `shared_problems(a, b) == set()`."""
    return set(map(Problem._make, problems)) & set(map(Problem._make, held_out))


class ArithmeticBatches:
    """The batch source of exercise 2: (x, y) of formatted problems, x padded with "_" and y with -100.

    "train" draws fresh problems each call, rejecting held-out ones; "val" draws from the held-out
    set. With `mask`, targets that are prompt characters are -100 too, so only the completion
    (predicted from the "=" on) is scored. Every batch has one length: `fmt.max_length(...) - 1`.
    Training problems draw their operation uniformly from `ops`: list one twice to draw it twice as often.
    Example: `ArithmeticBatches(ArithmeticFormat(width=3), 3, held_out_problems(2000, 3)).batch("train", 64)`.
    """

    def __init__(self, fmt: ArithmeticFormat, digits: int, held_out: list[Problem], ops: tuple[str, ...] = ("+",),
                 mask: bool = True):
        self.fmt, self.digits, self.ops, self.mask = fmt, digits, ops, mask
        if not held_out:
            raise ValueError("the held-out problems are the validation split; pass at least one "
                             "(e.g. held_out_problems(1000, digits, ops))")
        self.held_out, self.excluded = list(held_out), frozenset(held_out)
        self.length = fmt.max_length(ops, digits) - 1  # x is the text without its last character

    def problems(self, split: str, n: int, generator: torch.Generator | None = None) -> list[Problem]:
        if split == "train":
            return sample_problems(n, self.digits, self.ops, generator, exclude=self.excluded)
        if split == "val":
            return [self.held_out[i] for i in torch.randint(len(self.held_out), (n,), generator=generator).tolist()]
        raise ValueError(f"split is 'train' or 'val', got {split!r}")

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None):
        x, y = zip(*(self.encode(p) for p in self.problems(split, batch_size, generator)))
        return torch.tensor(x), torch.tensor(y)

    def encode(self, p: Problem) -> tuple[list[int], list[int]]:
        """x and y of one problem: y[i] is the token after x[i], or -100 where it is not scored."""
        prompt, ids = self.fmt.prompt(p), encode(self.fmt.text(p))
        pad = self.length + 1 - len(ids)
        x = ids[:-1] + [STOI[PAD]] * pad
        y = ids[1:] + [IGNORE_INDEX] * pad
        if self.mask:  # targets 0 .. len(prompt) - 2 are prompt characters; the "=" predicts the answer
            y[:len(prompt) - 1] = [IGNORE_INDEX] * (len(prompt) - 1)
        return x, y
