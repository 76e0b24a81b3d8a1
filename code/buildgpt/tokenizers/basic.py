"""The simplest tokenizer: BPE on the raw UTF-8 bytes of the whole text, as one chunk."""

from __future__ import annotations

from .base import Tokenizer, repair_surrogates
from .textbook import encode_reference


class BasicTokenizer(Tokenizer):
    """BPE on the raw bytes of the whole text: merges may join across words and punctuation."""

    def split(self, text: str) -> list[str]:
        return [text]

    def encode_ordinary(self, text: str) -> list[int]:
        # One long chunk, nothing to remember. tiktoken's loop, one merge at a time, would take
        # time quadratic in its length; the textbook loop merges all of a pair's places at once.
        return encode_reference([self.byte_ids[b] for b in repair_surrogates(text).encode("utf-8")], self.merges)

