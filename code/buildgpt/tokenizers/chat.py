"""The chat format: a character vocabulary plus three special tokens that mark who speaks.

A conversation is a list of messages, each a role ("user" or "assistant") and its text. It is
rendered as `<|user|>` text `<|end|>` `<|assistant|>` text `<|end|>` ..., where each marker is
one token with an id after the characters' ids (as GPT-4's `<|endoftext|>` comes after its merges).
Text from outside can never produce a marker: a message that spells one is refused, with
tiktoken's rule for disallowed special tokens. Only the assistant's turns are scored in training.
"""

from __future__ import annotations

import re

from .chars import CharTokenizer

USER, ASSISTANT, END = "<|user|>", "<|assistant|>", "<|end|>"
ROLE_MARKERS = {"user": USER, "assistant": ASSISTANT}
SPECIAL_TOKENS = (USER, ASSISTANT, END)
_ANY_SPECIAL = re.compile("|".join(map(re.escape, SPECIAL_TOKENS)))


def first_marker(text: str) -> int:
    """Where the first chat marker spelled out in characters starts in `text`, or len(text) if none.

    Example: `first_marker("Farewell.<|end|>")` is 9."""
    found = _ANY_SPECIAL.search(text)
    return found.start() if found else len(text)


def partial_marker(text: str) -> int:
    """Where `text` ends with the beginning of a chat marker (a proper prefix of one), or len(text) if it does not.

    Example: `partial_marker("Farewell.<|en")` is 9."""
    for start in range(max(0, len(text) - max(map(len, SPECIAL_TOKENS)) + 1), len(text)):
        if any(marker.startswith(text[start:]) for marker in SPECIAL_TOKENS):
            return start
    return len(text)


class ChatTokenizer:
    """Characters, then the three chat markers. Example: `ChatTokenizer(chars).encode_chat(messages)`."""

    def __init__(self, chars: list[str]):
        self.base = CharTokenizer(chars)
        self.special_tokens = {token: self.base.vocab_size + i for i, token in enumerate(SPECIAL_TOKENS)}
        self.special_by_id = {i: token for token, i in self.special_tokens.items()}

    @property
    def vocab_size(self) -> int:
        return self.base.vocab_size + len(self.special_tokens)

    def encode(self, text: str) -> list[int]:
        """The ids of plain text. Text that spells a chat marker is refused: it would forge a turn."""
        if found := _ANY_SPECIAL.search(text):
            raise ValueError(f"the text contains {found.group()!r} at position {found.start()}, which is a chat "
                             "marker; a message may not spell one (remove it, or write it differently, e.g. '< |end| >')")
        return self.base.encode(text)

    def decode(self, ids) -> str:
        """Text with each marker written out. Example: `tokenizer.decode([tokenizer.special_tokens[END]]) == END`."""
        return "".join(self.special_by_id[i] if i in self.special_by_id else self.base.decode([i])
                       for i in map(int, ids))

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = False) -> tuple[list[int], list[bool]]:
        """The ids of a conversation, and for each id whether training scores it (an assistant's text and its `<|end|>`).

        With `add_generation_prompt`, it ends with `<|assistant|>`: the prompt for the model's answer.
        Example: `ids, scored = tokenizer.encode_chat([{"role": "user", "content": "Hi"}], add_generation_prompt=True)`.
        """
        ids: list[int] = []
        scored: list[bool] = []
        for n, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if role not in ROLE_MARKERS:
                raise ValueError(f"message {n} has role {role!r}; the chat format knows {sorted(ROLE_MARKERS)}")
            if not isinstance(content, str):
                raise ValueError(f"message {n} ({role}) has no text content: {content!r}")
            text = self.encode(content)
            is_answer = role == "assistant"
            ids += [self.special_tokens[ROLE_MARKERS[role]], *text, self.special_tokens[END]]
            scored += [False] + [is_answer] * (len(text) + 1)
        if add_generation_prompt:
            ids.append(self.special_tokens[ASSISTANT])
            scored.append(False)
        return ids, scored

    def to_meta(self) -> dict:
        """What a checkpoint stores to rebuild this tokenizer (`from_meta`)."""
        return {"type": "char", "chars": self.base.chars, "special_tokens": self.special_tokens}

    @classmethod
    def from_meta(cls, meta: dict) -> ChatTokenizer:
        tokenizer = cls(meta["chars"])
        if meta.get("special_tokens") != tokenizer.special_tokens:
            raise ValueError(f"special tokens {meta.get('special_tokens')} are not this chat format's "
                             f"{tokenizer.special_tokens}")
        return tokenizer
