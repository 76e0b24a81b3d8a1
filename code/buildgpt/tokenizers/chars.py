"""The character-level tokenizer: one token per distinct character of the training text."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..utils.files import write_text_atomically


class CharTokenizer:
    """Maps each character of a fixed vocabulary to an integer id and back."""

    def __init__(self, chars: list[str]):
        if not chars:
            raise ValueError("a character vocabulary needs at least one character")
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("the vocabulary must be distinct single characters")
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The vocabulary is every character that occurs in `text`, sorted."""
        if not text:
            raise ValueError("cannot build a vocabulary from empty text; load the dataset first")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            position = next(i for i, c in enumerate(text) if c not in self.stoi)
            c = text[position]
            raise ValueError(
                f"character {c!r} (U+{ord(c):04X}) at position {position} is not in the "
                f"vocabulary of {self.vocab_size} characters; remove it, or build the "
                "tokenizer from text that contains it"
            ) from None

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is not in the vocabulary (valid ids are 0..{self.vocab_size - 1})")
        return "".join(self.chars[i] for i in ids)

    def save(self, file: str | os.PathLike) -> None:
        """Write the vocabulary as JSON, atomically (a crash never leaves half a file)."""
        write_text_atomically(file, json.dumps({"type": "char", "chars": self.chars}, ensure_ascii=False))

    @classmethod
    def load(cls, file: str | os.PathLike) -> CharTokenizer:
        try:
            payload = json.loads(Path(file).read_text(encoding="utf-8"))
            if payload.get("type") != "char":
                raise ValueError(f"type is {payload.get('type')!r}, not 'char'")
            return cls(payload["chars"])
        except (ValueError, KeyError, AttributeError, TypeError) as e:
            raise ValueError(f"{file} is not a character-tokenizer file: {e}") from None
