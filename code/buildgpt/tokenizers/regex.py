"""Split first, then merge: BPE within the chunks that a regex cuts the text into.

GPT-2 and GPT-4 cut text into contractions, letters (with one leading space or symbol), numbers
(GPT-4: at most three digits), punctuation and whitespace, so no merge crosses a boundary
between them. `\\p{L}` and `\\p{N}` are Unicode's letters and numbers: the `regex` package knows
them, Python's `re` does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from .base import Tokenizer
from .textbook import Merges

# How GPT-2 and GPT-4 cut text into chunks before BPE: contractions, letters (with one leading
# space or symbol), numbers (GPT-4: at most three digits), punctuation, whitespace.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)


class RegexTokenizer(Tokenizer):
    """BPE within the chunks that a regex cuts the text into (by default GPT-4's pattern)."""

    def __init__(self, pattern: str = GPT4_SPLIT_PATTERN, merges: Merges | None = None,
                 special_tokens: dict[str, int] | None = None, byte_ids: Sequence[int] | None = None):
        super().__init__(merges, special_tokens, byte_ids)
        self.pattern = pattern
        self.compiled_pattern = regex.compile(pattern)

    def split(self, text: str) -> list[str]:
        return self.compiled_pattern.findall(text)

