"""What every BPE tokenizer shares, as in minbpe's `base.py`: merges, special tokens and a
vocabulary; train, encode, decode, save and load. A subclass says only how text is split into
chunks that no merge may cross (`basic.py`: not at all; `regex.py`: with a regex).

A tokenizer is saved as two text files: `<prefix>.model`, which `Tokenizer.load` reads, and
`<prefix>.vocab`, every token written out for people to read.
"""

from __future__ import annotations

import functools
import json
import os
import unicodedata
import warnings
from collections.abc import Collection, Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Literal

import regex

from ..utils.files import write_text_atomically
from .fast import merge_by_rank, train_fast
from .textbook import Merges

MODEL_HEADER = "buildgpt-bpe v1"
_SURROGATE = regex.compile("[\ud800-\udfff]")
_CHUNK_CACHE_SIZE = 1 << 18  # distinct chunks remembered by an encoder before it starts afresh


def repair_surrogates(text: str) -> str:
    """`text` as tiktoken reads it before splitting: a surrogate pair as its character, a lone surrogate as U+FFFD
    (a str can hold them, from JSON's "\\ud800" or a command line, but UTF-8 cannot).

    Example: `repair_surrogates("a\\ud800")` gives `"a\\ufffd"`.
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def render_token(token: bytes) -> str:
    """A token's text for people: control characters and bytes that are not whole UTF-8
    characters escaped (`\\u000a` for a newline, `\\xe2` for a lone byte).

    Example: `render_token(b"hi\\n\\xe2")` gives `"hi\\\\u000a\\\\xe2"`.
    """
    text = token.decode("utf-8", errors="backslashreplace")
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c).startswith("C") else c for c in text)


@functools.lru_cache(maxsize=64)
def _any_of(tokens: frozenset[str]) -> regex.Pattern:
    """A regex matching any of `tokens`, longest first, as one capturing group."""
    return regex.compile("(" + "|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True)) + ")")


class Tokenizer:
    """What every BPE tokenizer shares: merges, special tokens and a vocabulary; train, encode,
    decode, save and load. A subclass says only how text is split into chunks (`split`)."""

    pattern: str | None = None

    def __init__(self, merges: Merges | None = None, special_tokens: dict[str, int] | None = None,
                 byte_ids: Sequence[int] | None = None):
        self.merges: Merges = dict(sorted((merges or {}).items(), key=lambda item: item[1]))
        if list(self.merges.values()) != list(range(256, 256 + len(self.merges))):  # what save and load assume
            raise ValueError("merge ids must run 256, 257, ... with no gap or repeat: the i-th merge makes token 256 + i")
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        # The id of each byte value. Ours are the bytes in order; GPT-4's are shuffled.
        self.byte_ids: list[int] = list(range(256) if byte_ids is None else byte_ids)
        self._build_vocab()

    def _build_vocab(self) -> None:
        self.vocab: dict[int, bytes] = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        for (left, right), new_id in self.merges.items():
            self.vocab[new_id] = self.vocab[left] + self.vocab[right]
        self._token_ids = {token: i for i, token in self.vocab.items()}
        self.vocab.update((i, token.encode("utf-8")) for token, i in self.special_tokens.items())
        self._chunk_cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """One more than the largest id: the rows an embedding table for these ids needs."""
        return max(self.vocab) + 1

    def split(self, text: str) -> list[str]:
        """The chunks of `text` that no merge may cross."""
        raise NotImplementedError

    def train(self, text: str, vocab_size: int) -> None:
        """Learn `vocab_size - 256` merges from `text`, replacing any merges this tokenizer had."""
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256, one token per byte value; got {vocab_size}")
        if clashes := {token: i for token, i in self.special_tokens.items() if i < vocab_size}:
            raise ValueError(f"special tokens {clashes} have ids below vocab_size={vocab_size}, where the "
                             "learned tokens go; give special tokens ids >= vocab_size")
        learned = train_fast(self.split(text), vocab_size - 256)
        if len(learned) < vocab_size - 256:
            warnings.warn(f"the text allows only {len(learned)} merges, not the {vocab_size - 256} that "
                          f"vocab_size={vocab_size} needs: every chunk is already a single token. The "
                          f"vocabulary has {256 + len(learned)} tokens.", stacklevel=2)
        self.merges = {pair: 256 + i for i, (pair, _) in enumerate(learned)}
        self.byte_ids = list(range(256))
        self._build_vocab()

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of `text`, special tokens' text encoded as ordinary text.

        Text repeats its chunks (words, mostly), so each distinct chunk is encoded once and
        remembered; the ids are then one lookup per chunk.
        """
        chunks = self.split(repair_surrogates(text))
        cache = self._chunk_cache
        if len(cache) > _CHUNK_CACHE_SIZE:
            cache.clear()
        for chunk in set(chunks).difference(cache):
            cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        if (token := self._token_ids.get(chunk)) is not None:  # a whole token, as tiktoken checks first
            return [token]
        return merge_by_rank([self.byte_ids[b] for b in chunk], self.merges)

    def encode(self, text: str, *, allowed_special: Literal["all"] | Collection[str] = frozenset(),
               disallowed_special: Literal["all"] | Collection[str] = "all") -> list[int]:
        """The ids of `text`, with tiktoken's rules for special tokens.

        Text that spells a special token becomes that token only if `allowed_special` names it
        ("all": every one). Text that spells a `disallowed_special` token (by default every
        special token not allowed) raises ValueError, so text from outside cannot smuggle control
        tokens in; `disallowed_special=()` encodes it as ordinary text instead.
        """
        specials = set(self.special_tokens)
        allowed = specials if allowed_special == "all" else specials & set(allowed_special)
        disallowed = specials - allowed if disallowed_special == "all" else set(disallowed_special)
        if disallowed and (found := _any_of(frozenset(disallowed)).search(text)):
            token = found.group()
            raise ValueError(
                f"Encountered text corresponding to disallowed special token {token!r}.\n"
                f"If you want this text to be encoded as a special token, pass it to `allowed_special`, "
                f"e.g. `allowed_special={{{token!r}, ...}}`.\n"
                f"If you want this text to be encoded as normal text, disable the check for this token "
                f"by passing `disallowed_special=(set(tokenizer.special_tokens) - {{{token!r}}})`.\n"
                "To disable this check for all special tokens, pass `disallowed_special=()`.\n")
        if not allowed:
            return self.encode_ordinary(text)
        ids = []
        # Splitting on a capturing group puts the special tokens at the odd positions.
        for i, part in enumerate(_any_of(frozenset(allowed)).split(text)):
            if i % 2:
                ids.append(self.special_tokens[part])
            else:
                ids.extend(self.encode_ordinary(part))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of `ids`, joined: what `decode` turns into text."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)  # also tensors and arrays
        try:
            return b"".join(map(self.vocab.__getitem__, ids))
        except (KeyError, TypeError):
            unknown = next(i for i in ids if not isinstance(i, int) or i not in self.vocab)
            raise ValueError(f"token id {unknown!r} is not in the vocabulary: its ids are 0.."
                             f"{256 + len(self.merges) - 1}" + "".join(
                                 f", {i} ({token})" for token, i in self.special_tokens.items())) from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`. Ids that end inside a multi-byte UTF-8 character, or otherwise make
        invalid UTF-8, give the replacement character U+FFFD there, as tiktoken and minbpe do."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -------------------------------------------------------------- saving and loading

    def save(self, file_prefix: str | os.PathLike) -> tuple[Path, Path]:
        """Write `<prefix>.model` (what `load` reads) and `<prefix>.vocab` (for people).

        The model file is text, one item per line: the header, the split pattern (JSON), the id
        of each byte, the special tokens, then the merges in order (the i-th makes id 256 + i).
        """
        # ASCII JSON: a line break of Unicode's own (U+0085, U+2028) in a token would end its line when read
        model = [MODEL_HEADER, f"pattern {json.dumps(self.pattern)}", "bytes " + " ".join(map(str, self.byte_ids))]
        model += [f"special {json.dumps(token)} {i}" for token, i in self.special_tokens.items()]
        model += [f"merge {left} {right}" for left, right in self.merges]
        parts = {new_id: pair for pair, new_id in self.merges.items()}
        specials = set(self.special_tokens.values())
        vocab = ["# Every token: id, [its text], and for merged tokens the two tokens it joins.",
                 "# Control characters and bytes that are not whole UTF-8 characters are escaped."]
        for i, token in sorted(self.vocab.items()):
            line = f"{i} [{render_token(token)}]"
            if i in parts:
                left, right = parts[i]
                line += f" = [{render_token(self.vocab[left])}] + [{render_token(self.vocab[right])}]"
            elif i in specials:
                line += " special"
            vocab.append(line)
        prefix = Path(file_prefix)
        paths = prefix.with_name(prefix.name + ".model"), prefix.with_name(prefix.name + ".vocab")
        for path, lines in zip(paths, (model, vocab)):
            write_text_atomically(path, "\n".join(lines) + "\n")
        return paths

    @classmethod
    def load(cls, model_file: str | os.PathLike) -> Tokenizer:
        """The tokenizer saved in `model_file`: a `RegexTokenizer` if it has a pattern, else a
        `BasicTokenizer`. Anything else raises ValueError naming the file and line."""
        from .basic import BasicTokenizer  # the subclasses import this module
        from .regex import RegexTokenizer

        pattern, byte_ids, special_tokens, merges = _read_model(Path(model_file))
        tokenizer = (BasicTokenizer(merges, special_tokens, byte_ids) if pattern is None
                     else RegexTokenizer(pattern, merges, special_tokens, byte_ids))
        if not isinstance(tokenizer, cls):
            raise ValueError(f"{model_file} holds a {type(tokenizer).__name__}, not a {cls.__name__}")
        return tokenizer



def _read_model(path: Path) -> tuple[str | None, list[int], dict[str, int], Merges]:
    """Parse a `.model` file; every problem is a ValueError naming the file and the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a tokenizer model file: it is not UTF-8 text") from None
    if not lines or lines[0] != MODEL_HEADER:
        found = lines[0][:60] if lines else "an empty file"
        raise ValueError(f"{path}:1: not a tokenizer model file: expected {MODEL_HEADER!r}, found {found!r}")
    pattern, byte_ids, special_tokens, merges = None, None, {}, {}
    seen: dict[str, int] = {}  # "pattern" and "bytes" -> the line that gave it
    for number, line in enumerate(lines[1:], start=2):
        key, _, value = line.partition(" ")
        try:
            if key in seen:
                raise ValueError(f"a second {key!r} line (the first is line {seen[key]})")
            if key == "pattern":
                pattern = json.loads(value)
                if pattern is not None:
                    regex.compile(pattern)
                seen[key] = number
            elif key == "bytes":
                byte_ids = [int(i) for i in value.split()]
                if sorted(byte_ids) != list(range(256)):
                    raise ValueError("the byte ids must be 0..255, each once")
                seen[key] = number
            elif key == "special":
                token, _, i = value.rpartition(" ")
                if int(i) in special_tokens.values():
                    raise ValueError(f"id {i} is already another special token's")
                special_tokens[json.loads(token)] = int(i)
            elif key == "merge":
                left, right = (int(i) for i in value.split())
                new_id = 256 + len(merges)
                if not (0 <= left < new_id and 0 <= right < new_id) or (left, right) in merges:
                    raise ValueError(f"merge {new_id - 256} (token {new_id}) must join two earlier tokens, "
                                     "and no pair twice")
                merges[left, right] = new_id
            else:
                raise ValueError(f"unknown entry {key!r}")
        except (ValueError, regex.error) as e:  # json's errors are ValueErrors too
            raise ValueError(f"{path}:{number}: {e}: {line[:80]!r}") from None
    for key in ("pattern", "bytes"):
        if key not in seen:
            raise ValueError(f"{path}: the {key!r} line is missing")
    if taken := {token: i for token, i in special_tokens.items() if i < 256 + len(merges)}:
        raise ValueError(f"{path}: special tokens {taken} have the ids of ordinary tokens (0..{255 + len(merges)})")
    return pattern, byte_ids, special_tokens, merges
