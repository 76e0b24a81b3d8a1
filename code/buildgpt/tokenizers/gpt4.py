"""GPT-4's tokenizer, rebuilt from tiktoken's `cl100k_base`: the same ids as tiktoken.

tiktoken stores each token's rank, not the merges: `recover_merges` finds them. The split
pattern and the special tokens are tiktoken's own.

One known difference, in the split and not in the merges. Our split runs on the `regex`
package, tiktoken's on Rust's `fancy-regex`, and each brings its own tables of which characters
are letters (`\\p{L}`) and numbers (`\\p{N}`). tiktoken 0.14.0 classifies by Unicode 16.0 (it
knows the Garay digits of Unicode 16.0, not the Tolong Siki digits of 17.0); `regex` 2026.11.19
by Unicode 18.0. Characters assigned after Unicode 16.0 that `regex` calls letters or numbers
(17,480 code points with these versions, e.g. U+A7CE, CJK Extension J, U+11DE0..U+11DE9) are
neither to tiktoken: it splits them like punctuation. Where that changes a chunk boundary that
a merge would cross, the ids differ: `"\\ua7ce's"` is `["\\ua7ce", "'s"]` to us and
`["\\ua7ce'", "s"]` to tiktoken. Often the ids agree all the same: in `"a\\ua7ceb"` the chunks
differ but no merge joins a letter to the rare character's bytes. On characters of Unicode 16.0
and older, the two agree (tests/test_tokenizers_gpt4.py checks every assigned character that
Python's own `unicodedata` knows, in several contexts).
"""

from __future__ import annotations

import os

import tiktoken

from .fast import merge_by_rank
from .regex import RegexTokenizer
from .textbook import Merges

TIKTOKEN_CACHE_VAR = "TIKTOKEN_CACHE_DIR"
TIKTOKEN_UNICODE_VERSION = (16, 0)  # the Unicode version of tiktoken's letters and numbers (see above)


def tiktoken_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken's encoding `name` (gpt2, cl100k_base, o200k_base, ...), read from tiktoken's
    own cache folder, `$TIKTOKEN_CACHE_DIR`, or downloaded by tiktoken.

    Example: `tiktoken_encoding("cl100k_base").n_vocab` gives `100277`.
    """
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
    Example: `recover_merges({**{bytes([b]): b for b in range(256)}, b"ab": 256, b"abab": 257})`
    gives `{(97, 98): 256, (256, 256): 257}`.
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


class GPT4Tokenizer(RegexTokenizer):
    """GPT-4's tokenizer, rebuilt from tiktoken's `cl100k_base`, with the same ids as tiktoken.

    tiktoken stores each token's rank, not the merges: `recover_merges` finds them. Its first
    256 tokens are the byte values in a shuffled order, which `byte_ids` records.
    Example: `GPT4Tokenizer().encode("hello world")` gives `[15339, 1917]`.
    """

    def __init__(self):
        encoding = tiktoken_encoding("cl100k_base")
        ranks = encoding._mergeable_ranks  # tiktoken keeps these private; minbpe reads them too
        super().__init__(encoding._pat_str, recover_merges(ranks), encoding._special_tokens,
                         byte_ids=[ranks[bytes([b])] for b in range(256)])

    def train(self, text: str, vocab_size: int) -> None:
        raise NotImplementedError("GPT-4's merges are fixed; to learn merges with GPT-4's split "
                                  "pattern, train a RegexTokenizer(GPT4_SPLIT_PATTERN)")

