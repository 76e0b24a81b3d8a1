"""GPT-2's `encoder.py`: every byte as a printable character, which is why GPT-2's and GPT-4's
first 256 token ids are the bytes in a shuffled order.

GPT-2 stores its vocabulary as text: `encoder.json` maps each token to its id and `vocab.bpe`
lists the merges, one pair per line. A token is bytes, and many bytes (the space, the newline,
control codes, half of a UTF-8 character) would be invisible or invalid in such text files. So
`bytes_to_unicode` gives each of the 256 bytes a visible stand-in: the printable bytes stand for
themselves, the others are moved to the characters from U+0100 on (the space becomes `Ġ`, the
newline `Ċ`). The byte tokens got their ids in that table's order, printable bytes first, and
tiktoken's `gpt2` and `cl100k_base` kept those ids: the shuffle that `GPT4Tokenizer.byte_ids`
records.
"""

from __future__ import annotations

# The bytes that stand for themselves: printable ASCII, then the printable Latin-1 characters
# but the soft hyphen (U+00AD, invisible).
PRINTABLE_BYTES = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from every byte (0..255) to one printable character, in GPT-2's order.

    The printable bytes map to themselves and come first; the other bytes map, in byte order,
    to the characters from U+0100 on.
    Example: `bytes_to_unicode()[ord(" ")]` gives `"Ġ"`.
    """
    others = [b for b in range(256) if b not in PRINTABLE_BYTES]
    stand_ins = [*PRINTABLE_BYTES, *range(256, 256 + len(others))]
    return dict(zip([*PRINTABLE_BYTES, *others], map(chr, stand_ins)))


def printable(token: bytes) -> str:
    """A token's bytes as `encoder.json` and `vocab.bpe` write them.

    Example: `printable(b" strawberry")` gives `"Ġstrawberry"`.
    """
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)
