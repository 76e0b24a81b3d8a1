"""Arithmetic as done on paper, column by column: carries, borrows, partial products, long division.

The traces of exercise 2 are written from these steps, and its error analysis counts carries.
"""

from __future__ import annotations


def count_carries(a: int, b: int) -> int:
    """How many columns of a + b carry into the next one. Example: `count_carries(57, 68)` gives 2."""
    return sum(carries(a, b, columns=max(len(str(a)), len(str(b)))))


def carries(a: int, b: int, columns: int) -> list[int]:
    """The carry out of each column of a + b, least significant first. Example: `carries(57, 68, 2)` gives [1, 1]."""
    out, carry = [], 0
    for i in range(columns):
        carry = (a // 10**i % 10 + b // 10**i % 10 + carry) // 10
        out.append(carry)
    return out


def borrows(a: int, b: int, columns: int) -> list[int]:
    """The borrow of each column of a - b (a >= b), least significant first. Example: `borrows(52, 18, 2)` gives [1, 0]."""
    out, borrow = [], 0
    for i in range(columns):
        borrow = int(a // 10**i % 10 - borrow < b // 10**i % 10)
        out.append(borrow)
    return out


def multiplication_steps(a: int, b: int, columns: int, a_columns: int) -> list[tuple[list[int], int, int]]:
    """Per digit of b (`columns` of them): its product with each of a's `a_columns` digits (least significant
    first), the shifted partial product, the running sum. Example: `multiplication_steps(12, 5, 1, 2)` gives
    [([10, 5], 60, 60)]."""
    steps, total = [], 0
    for i in range(columns):
        digit = b // 10**i % 10
        partial = a * digit * 10**i
        total += partial
        steps.append(([a // 10**j % 10 * digit for j in range(a_columns)], partial, total))
    return steps


def division_steps(a: int, b: int, columns: int) -> list[tuple[int, int, int, int]]:
    """Long division, one step per digit of a (most significant first): (brought down, quotient digit,
    its product with b, remainder). Example: `division_steps(123, 5, 3)[1]` gives (12, 2, 10, 2)."""
    steps, remainder = [], 0
    for i in reversed(range(columns)):
        current = remainder * 10 + a // 10**i % 10
        q, remainder = divmod(current, b)
        steps.append((current, q, q * b, remainder))
    return steps


def digit_correct(predicted: int | None, expected: int, n_digits: int) -> list[bool]:
    """Per digit position (units first): is the predicted digit right? Example: `digit_correct(367, 357, 3)`
    gives [True, False, True]; None gives all False."""
    if predicted is None:
        return [False] * n_digits
    return [abs(predicted) // 10**i % 10 == abs(expected) // 10**i % 10 for i in range(n_digits)]
