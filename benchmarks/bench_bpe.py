"""BPE side by side: our reference trainer, our fast trainer and rustbpe; our GPT-4 encoder and tiktoken.

    .venv/bin/python benchmarks/bench_bpe.py           # the full run (about 90 s on 2 cores, mostly the reference trainer)
    .venv/bin/python benchmarks/bench_bpe.py --quick   # smaller texts, seconds

Every comparison first checks that the results are identical (the same merges, the same ids),
then prints a table of times and of ratios to our fast implementation. rustbpe is optional
(`pip install rustbpe`, part of the `test` extra); its rows are skipped without it. The data
and tiktoken's files are found as everywhere else: set BUILDGPT_DATA_MIRROR and
TIKTOKEN_CACHE_DIR as the Makefile does.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

from buildgpt.data import registry as data
from buildgpt.tokenizers import textbook
from buildgpt.tokenizers.gpt4 import GPT4Tokenizer, tiktoken_encoding
from buildgpt.tokenizers.regex import GPT4_SPLIT_PATTERN, RegexTokenizer


@dataclass
class Row:
    task: str
    who: str
    seconds: float
    megabytes: float | None = None  # for throughput

    def rate(self) -> str:
        return f"{self.megabytes / self.seconds:6.2f} MB/s" if self.megabytes else ""


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def gutenberg(num_chars: int) -> str:
    """The first `num_chars` characters of the Gutenberg novels, streamed."""
    pieces, total = [], 0
    for piece in data.iter_text("gutenberg-novels"):
        pieces.append(piece)
        total += len(piece)
        if total >= num_chars:
            break
    return "".join(pieces)[:num_chars]


def rustbpe_vocab(text: str, vocab_size: int):
    """rustbpe's tokens (bytes -> id) and its training time, or None without rustbpe."""
    try:
        import rustbpe
    except ImportError:
        return None
    tokenizer = rustbpe.Tokenizer()
    _, seconds = timed(tokenizer.train_from_iterator, iter([text]), vocab_size)
    assert tokenizer.get_pattern() == GPT4_SPLIT_PATTERN
    return dict(tokenizer.get_mergeable_ranks()), seconds


def bench_training(task: str, text: str, vocab_size: int, with_reference: bool) -> list[Row]:
    rows = []
    fast = RegexTokenizer()
    _, seconds = timed(fast.train, text, vocab_size)
    rows.append(Row(task, "ours, fast", seconds))
    if with_reference:
        def reference():
            return textbook.train_reference(RegexTokenizer().split(text), vocab_size - 256)
        merges, seconds = timed(reference)
        assert {pair: 256 + i for i, (pair, _) in enumerate(merges)} == fast.merges, "reference merges differ"
        rows.append(Row(task, "ours, reference", seconds))
    if (rust := rustbpe_vocab(text, vocab_size)) is not None:
        vocab, seconds = rust
        assert vocab == {token: i for i, token in fast.vocab.items()}, "rustbpe's merges differ"
        rows.append(Row(task, "rustbpe", seconds))
    return rows


def bench_encoding(task: str, text: str) -> list[Row]:
    megabytes = len(text.encode("utf-8")) / 1e6
    encoding = tiktoken_encoding("cl100k_base")
    ours, seconds = timed(GPT4Tokenizer)
    rows = [Row("load cl100k_base (recover merges)", "ours", seconds)]
    ids, seconds = timed(ours.encode_ordinary, text)
    rows.append(Row(task, "ours, fast", seconds, megabytes))
    _, seconds = timed(ours.encode_ordinary, text)
    rows.append(Row(task, "ours, chunks cached", seconds, megabytes))
    reference, seconds = timed(encoding.encode_ordinary, text)
    assert ids == reference, "our ids differ from tiktoken's"
    rows.append(Row(task, "tiktoken", seconds, megabytes))
    return rows


def print_table(rows: list[Row]) -> None:
    print(f"{'task':42} {'implementation':20} {'time':>9} {'throughput':>12}   vs ours, fast")
    fast = {row.task: row.seconds for row in rows if row.who == "ours, fast"}
    for row in rows:
        ratio = ""
        if row.task in fast and row.who != "ours, fast":
            factor = row.seconds / fast[row.task]
            ratio = f"{factor:.1f}x slower" if factor >= 1 else f"{1 / factor:.1f}x faster"
        print(f"{row.task:42} {row.who:20} {row.seconds:8.2f}s {row.rate():>12}   {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small texts: seconds, not minutes")
    args = parser.parse_args()

    shakespeare = data.load_text("tinyshakespeare")
    if args.quick:
        shakespeare = shakespeare[:100_000]
    big = gutenberg(1_000_000 if args.quick else 10_000_000)
    big_vocab = 4096 if args.quick else 32768
    mb = len(big.encode("utf-8")) / 1e6

    print(f"{os.cpu_count()} CPU cores; tinyshakespeare {len(shakespeare):,} chars; gutenberg {mb:.1f} MB\n")
    rows = bench_training("train 512, tinyshakespeare", shakespeare, 512, with_reference=True)
    rows += bench_training(f"train {big_vocab:,}, gutenberg {mb:.0f} MB", big, big_vocab, with_reference=False)
    rows += bench_encoding(f"encode gutenberg {mb:.0f} MB, cl100k_base", big)
    print_table(rows)
    print("\nidentical results: reference == fast == rustbpe merges; our ids == tiktoken's")


if __name__ == "__main__":
    main()
