"""The tokenizer chapter's figures: coloured tokens (HTML), bytes per token, compression, merge order."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import pytest

from buildgpt.tokenizers.fast import train_fast
from buildgpt.tokenizers.gpt4 import tiktoken_encoding
from buildgpt.tokenizers.regex import RegexTokenizer
from buildgpt.viz import tokens as token_figures

# tiktoken reads its encodings from the cache the conftest fixture names: never the network.
pytestmark = pytest.mark.usefixtures("tiktoken_cache")
TEXT = "the cat sat on the mat; the dog ate the log\n" * 20


@pytest.fixture(scope="module")
def tokenizer() -> RegexTokenizer:
    tokenizer = RegexTokenizer(special_tokens={"<|endoftext|>": 300})
    tokenizer.train(TEXT, 266)
    return tokenizer


def test_token_pieces_ours_and_tiktoken(tokenizer):
    text = "the cat<|endoftext|>👋"
    pieces = token_figures.token_pieces(tokenizer, text)
    assert b"".join(token for _, token in pieces) == text.encode("utf-8")
    assert (300, b"<|endoftext|>") in pieces
    encoding = tiktoken_encoding("cl100k_base")
    theirs = token_figures.token_pieces(encoding, text)
    assert [i for i, _ in theirs] == encoding.encode(text, allowed_special="all")
    assert b"".join(token for _, token in theirs) == text.encode("utf-8")


def test_tokens_html_is_self_contained(tokenizer):
    rows = {"ours": token_figures.token_pieces(tokenizer, "the cat\n<b>👋</b>")}
    page = token_figures.tokens_html(rows, title="A & B")
    assert "A &amp; B" in page and f"ours · {len(rows['ours'])} tokens" in page
    assert "<b>" not in page and "&lt;" in page and "&gt;" in page  # text is escaped, never markup
    assert "↵" in page and "\ufffd" in page  # visible newline; part of the emoji alone
    assert page.count("<span") == len(rows["ours"])
    assert not re.search(r"https?://|<script|<link|<img", page)  # nothing loaded from anywhere
    assert 'title="id ' in page  # hover shows the id


def test_tokens_html_neighbours_differ():
    pieces = [(i, b"x") for i in range(10)]
    colours = re.findall(r"background:(#[0-9a-f]{6})", token_figures.tokens_html({"t": pieces}))
    assert len(colours) == 10 and all(a != b for a, b in zip(colours, colours[1:]))


def test_bytes_per_token_bars():
    table = {"A": {"English": 4.0, "Korean": 1.5}, "B": {"English": 4.2, "Korean": 3.0}}
    fig = token_figures.bytes_per_token_bars(table)
    assert isinstance(fig, go.Figure) and fig.layout.barmode == "group"
    assert [bar.name for bar in fig.data] == ["A", "B"]
    assert list(fig.data[1].x) == ["English", "Korean"] and list(fig.data[1].y) == [4.2, 3.0]


def test_compression_curve():
    fig = token_figures.compression_curve([256, 512], {"novels": [1.0, 2.0]}, {"GPT-4": (100277, 4.0)})
    assert [trace.name for trace in fig.data] == ["novels", "GPT-4"]
    assert list(fig.data[0].x) == [256, 512] and list(fig.data[1].x) == [100277]
    assert fig.layout.xaxis.type == "log"


def test_merge_order(tokenizer):
    learned = train_fast(tokenizer.split(TEXT), 10)
    vocab = RegexTokenizer(merges={pair: 256 + i for i, (pair, _) in enumerate(learned)}).vocab
    fig = token_figures.merge_order(learned, vocab)
    scatter = fig.data[0]
    assert list(scatter.x) == list(range(1, 11))
    assert list(scatter.y) == [count for _, count in learned]
    assert list(scatter.marker.color) == [len(vocab[i]) for i in range(256, 266)]
    assert fig.layout.xaxis.type == fig.layout.yaxis.type == "log"
    token_id, token, left, right = scatter.customdata[0]
    assert token_id == 256 and token == left + right


def test_merge_order_samples_many_merges():
    learned = [((0, 0), 10_000 - i) for i in range(10_000)]
    vocab = {i: b"x" for i in range(256 + 10_000)}
    scatter = token_figures.merge_order(learned, vocab, max_points=200).data[0]
    merges = list(scatter.x)
    assert merges[:10] == list(range(1, 11)) and merges[-1] == 10_000  # every early one, and the last
    assert len(merges) <= 201 and merges == sorted(set(merges))


def test_compression_curve_ticks_read_as_numbers():
    fig = token_figures.compression_curve([256, 1024], {"a": [1.0, 2.0]}, {"GPT-2": (50257, 3.0)})
    assert list(fig.layout.xaxis.ticktext) == ["256", "1,024", "50,257"]
