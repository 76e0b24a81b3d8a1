"""Byte-pair encoding (BPE), the tokenizer of GPT-2 and GPT-4, built from scratch.

BPE starts from the 256 byte values and repeatedly merges the most frequent adjacent pair of
tokens into a new token. Three tokenizers share one small base class, as in minbpe:

- `BasicTokenizer` runs BPE on the raw UTF-8 bytes of the whole text.
- `RegexTokenizer` first splits text into chunks with a regex (GPT-2's or GPT-4's pattern), so
  no merge crosses a boundary between letters, digits, punctuation and spaces. It knows
  special tokens, with tiktoken's `allowed_special` / `disallowed_special` rules.
- `GPT4Tokenizer` is a `RegexTokenizer` filled with GPT-4's merges, recovered from tiktoken's
  `cl100k_base`: its ids are tiktoken's.

Training comes twice, with identical merges: `train_reference` is the textbook algorithm,
short and slow; `train_fast` counts each distinct chunk once and updates the pair counts
incrementally. When several pairs are equally frequent, the smallest pair is merged, as in
rustbpe. Encoding, too: `encode_reference` is the textbook loop, `merge_by_rank` tiktoken's.

A tokenizer is saved as two text files: `<prefix>.model`, which `Tokenizer.load` reads, and
`<prefix>.vocab`, every token written out for people to read.
"""

from __future__ import annotations

import functools
import heapq
import json
import os
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Literal

import regex
import tiktoken

from ..utils.files import write_text_atomically

Pair = tuple[int, int]
Merges = dict[Pair, int]  # (left id, right id) -> id of the merged token, in the order learned

# How GPT-2 and GPT-4 cut text into chunks before BPE: contractions, letters (with one leading
# space or symbol), numbers (GPT-4: at most three digits), punctuation, whitespace.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
    r"""|\s*[\r\n]|\s+(?!\S)|\s+"""
)

MODEL_HEADER = "buildgpt-bpe v1"
TIKTOKEN_CACHE_VAR = "TIKTOKEN_CACHE_DIR"
_NO_MERGE = float("inf")  # the rank of a pair that is not a merge
_CHUNK_CACHE_SIZE = 1 << 18  # distinct chunks remembered by an encoder before it starts afresh


# ------------------------------------------------------------------ the textbook algorithm


def pair_counts(ids: Sequence[int], counts: dict[Pair, int] | None = None) -> dict[Pair, int]:
    """How often each adjacent pair occurs in `ids`, added into `counts` when given."""
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """`ids` with each occurrence of `pair`, scanning left to right, replaced by `new_id`."""
    merged = []
    i = 0
    while i < len(ids):
        if ids[i] == pair[0] and i + 1 < len(ids) and ids[i + 1] == pair[1]:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def most_frequent(counts: dict[Pair, int]) -> Pair:
    """The pair with the highest count; among equals the smallest pair, as rustbpe decides."""
    return min(counts, key=lambda pair: (-counts[pair], pair))


def train_reference(chunks: Iterable[str], num_merges: int) -> list[tuple[Pair, int]]:
    """The textbook BPE: count every pair, merge the most frequent one everywhere, repeat.

    Returns the merges in the order learned, each with its count; the i-th makes token 256 + i.
    Stops early once no chunk has a pair left.
    """
    chunk_ids = [list(chunk.encode("utf-8")) for chunk in chunks]
    merges = []
    for new_id in range(256, 256 + num_merges):
        counts: dict[Pair, int] = {}
        for ids in chunk_ids:
            pair_counts(ids, counts)
        if not counts:
            break
        pair = most_frequent(counts)
        chunk_ids = [merge(ids, pair, new_id) for ids in chunk_ids]
        merges.append((pair, counts[pair]))
    return merges


def encode_reference(ids: list[int], merges: Merges) -> list[int]:
    """The textbook encoder: apply the earliest-learned merge that occurs, until none does."""
    while len(ids) >= 2:
        counts = pair_counts(ids)
        pair = min(counts, key=lambda p: merges.get(p, _NO_MERGE))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


# ------------------------------------------------------------------ the same, fast


def train_fast(chunks: Iterable[str], num_merges: int) -> list[tuple[Pair, int]]:
    """`train_reference`'s merges, fast. Three ideas:

    1. Text repeats its words: count each distinct chunk once and weigh its pairs by that count.
    2. A merge changes only the chunks that hold its pair, and in them only the pairs beside
       each place it merges: remember where each pair occurs, and update just those counts.
    3. Keep the pairs in a heap ordered like `most_frequent`. A merge only lowers the counts of
       the pairs that already existed (the pairs it creates are new), so a heap entry is never
       too low: when one surfaces with a count that has since fallen, push it back corrected.
    """
    chunk_counts = Counter(chunks)
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    weights = list(chunk_counts.values())
    counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)  # pair -> the words that hold it (or once did)
    for i, (word, weight) in enumerate(zip(words, weights)):
        for pair in zip(word, word[1:]):
            counts[pair] += weight
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in counts.items()]  # smallest first: top count, then pair
    heapq.heapify(heap)

    merges = []
    while len(merges) < num_merges and heap:
        negative_count, pair = heapq.heappop(heap)
        count = counts[pair]
        if count != -negative_count:  # stale entry
            if count:
                heapq.heappush(heap, (-count, pair))
            continue
        new_id = 256 + len(merges)
        merges.append((pair, count))
        created = set()
        for i in where.pop(pair):
            merged, new_pairs = merge_and_count(words[i], pair, new_id, weights[i], counts)
            words[i] = merged
            for new in new_pairs:
                where[new].add(i)
            created.update(new_pairs)
        for new in created:
            if counts[new]:  # zero when created and undone again: `a b a b` makes `new a`, then `new new`
                heapq.heappush(heap, (-counts[new], new))
    return merges


def merge_and_count(word: list[int], pair: Pair, new_id: int, weight: int,
                    counts: dict[Pair, int]) -> tuple[list[int], list[Pair]]:
    """`merge`, and the pair counts it changes: at each place `a b` becomes `new` between
    neighbours `x` and `y`, the pairs `x a`, `a b`, `b y` lose `weight` and `x new`, `new y` gain
    it. Returns the merged word and the pairs it created."""
    a, b = pair
    merged, created = [], []
    i = 0
    while i < len(word):
        if word[i] == a and i + 1 < len(word) and word[i + 1] == b:
            counts[pair] -= weight
            if merged:
                x = merged[-1]  # the new token itself when two places touch: `a b a b`
                counts[x, a] -= weight
                counts[x, new_id] += weight
                created.append((x, new_id))
            if i + 2 < len(word):
                y = word[i + 2]
                counts[b, y] -= weight
                counts[new_id, y] += weight
                created.append((new_id, y))
            merged.append(new_id)
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return merged, created


def merge_by_rank(ids: list[int], merges: Merges) -> list[int]:
    """`encode_reference`, fast: merge the leftmost pair of lowest rank until none is left.

    A merge's new id is its rank (earlier merges have smaller ids, and a token is always newer
    than its parts), and a merge changes only the ranks of the pairs beside it: keep the list
    of ranks and update just those two. This is tiktoken's loop.
    """
    ranks = [merges.get(pair, _NO_MERGE) for pair in zip(ids, ids[1:])]
    while ranks:
        best = min(ranks)
        if best == _NO_MERGE:
            break
        i = ranks.index(best)
        ids[i : i + 2] = [best]
        del ranks[i]
        if i > 0:
            ranks[i - 1] = merges.get((ids[i - 1], best), _NO_MERGE)
        if i < len(ranks):
            ranks[i] = merges.get((best, ids[i + 1]), _NO_MERGE)
    return ids


# ------------------------------------------------------------------ tiktoken's encodings


def tiktoken_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken's encoding `name` (gpt2, cl100k_base, o200k_base, ...), read from tiktoken's
    own cache folder, `$TIKTOKEN_CACHE_DIR`, or downloaded by tiktoken."""
    if name not in tiktoken.list_encoding_names():
        raise ValueError(f"tiktoken has no encoding {name!r}; it has {', '.join(tiktoken.list_encoding_names())}")
    try:
        return tiktoken.get_encoding(name)
    except (OSError, ValueError) as e:  # requests' network errors are OSErrors; a bad hash, ValueError
        cache = os.environ.get(TIKTOKEN_CACHE_VAR)
        where = f"{TIKTOKEN_CACHE_VAR}={cache}" if cache else f"{TIKTOKEN_CACHE_VAR} is not set"
        raise RuntimeError(
            f"tiktoken could not load the encoding {name!r} ({where}): its files are not in that cache "
            f"folder and downloading them failed ({type(e).__name__}: {e}). Set {TIKTOKEN_CACHE_VAR} "
            "to a folder that holds tiktoken's cached files (this project's CI uses "
            "../shared/data/tiktoken-cache), or connect to the network once."
        ) from e


def recover_merges(mergeable_ranks: dict[bytes, int]) -> Merges:
    """The merges behind tiktoken's `mergeable_ranks` (token bytes -> rank, which is also its id).

    tiktoken keeps no merges, only ranks. Running BPE on a token's bytes with the merges of
    lower rank stops at exactly two tokens: the pair that this token was merged from.
    """
    byte_ids = [mergeable_ranks[bytes([b])] for b in range(256)]
    merges: Merges = {}
    for token, rank in sorted(mergeable_ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = merge_by_rank([byte_ids[b] for b in token], merges)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not a merge of two tokens of lower rank")
        merges[parts[0], parts[1]] = rank
    return merges


# ------------------------------------------------------------------ the tokenizers


def render_token(token: bytes) -> str:
    """A token's text for people: control characters and bytes that are not whole UTF-8
    characters escaped (`\\u000a` for a newline, `\\xe2` for a lone byte)."""
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
        chunks = self.split(text)
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
        model = [MODEL_HEADER, f"pattern {json.dumps(self.pattern, ensure_ascii=False)}",
                 "bytes " + " ".join(map(str, self.byte_ids))]
        model += [f"special {json.dumps(token, ensure_ascii=False)} {i}" for token, i in self.special_tokens.items()]
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
    def load(cls, model_file: str | os.PathLike) -> "Tokenizer":
        """The tokenizer saved in `model_file`: a `RegexTokenizer` if it has a pattern, else a
        `BasicTokenizer`. Anything else raises ValueError naming the file and line."""
        pattern, byte_ids, special_tokens, merges = _read_model(Path(model_file))
        tokenizer = (BasicTokenizer(merges, special_tokens, byte_ids) if pattern is None
                     else RegexTokenizer(pattern, merges, special_tokens, byte_ids))
        if not isinstance(tokenizer, cls):
            raise ValueError(f"{model_file} holds a {type(tokenizer).__name__}, not a {cls.__name__}")
        return tokenizer


class BasicTokenizer(Tokenizer):
    """BPE on the raw bytes of the whole text: merges may join across words and punctuation."""

    def split(self, text: str) -> list[str]:
        return [text]

    def encode_ordinary(self, text: str) -> list[int]:
        # One long chunk, nothing to remember. tiktoken's loop, one merge at a time, would take
        # time quadratic in its length; the textbook loop merges all of a pair's places at once.
        return encode_reference([self.byte_ids[b] for b in text.encode("utf-8")], self.merges)


class RegexTokenizer(Tokenizer):
    """BPE within the chunks that a regex cuts the text into (by default GPT-4's pattern)."""

    def __init__(self, pattern: str = GPT4_SPLIT_PATTERN, merges: Merges | None = None,
                 special_tokens: dict[str, int] | None = None, byte_ids: Sequence[int] | None = None):
        super().__init__(merges, special_tokens, byte_ids)
        self.pattern = pattern
        self.compiled_pattern = regex.compile(pattern)

    def split(self, text: str) -> list[str]:
        return self.compiled_pattern.findall(text)


class GPT4Tokenizer(RegexTokenizer):
    """GPT-4's tokenizer, rebuilt from tiktoken's `cl100k_base`, with the same ids as tiktoken.

    tiktoken stores each token's rank, not the merges: `recover_merges` finds them. Its first
    256 tokens are the byte values in a shuffled order, which `byte_ids` records.
    """

    def __init__(self):
        encoding = tiktoken_encoding("cl100k_base")
        ranks = encoding._mergeable_ranks  # tiktoken keeps these private; minbpe reads them too
        super().__init__(encoding._pat_str, recover_merges(ranks), encoding._special_tokens,
                         byte_ids=[ranks[bytes([b])] for b in range(256)])

    def train(self, text: str, vocab_size: int) -> None:
        raise NotImplementedError("GPT-4's merges are fixed; to learn merges with GPT-4's split "
                                  "pattern, train a RegexTokenizer(GPT4_SPLIT_PATTERN)")


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
