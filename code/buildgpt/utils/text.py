"""Numbers and names written into the book's sentences."""

from __future__ import annotations


def spoken(values, sep: str = ", ", last: str = " and ") -> str:
    """A list as a sentence says it. Example: `spoken((1, 7, 50))` is "1, 7 and 50"; one value is itself."""
    values = [str(v) for v in values]
    return sep.join(values[:-1]) + last + values[-1] if len(values) > 1 else "".join(values)
