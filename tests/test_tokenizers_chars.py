"""The character tokenizer: vocabulary, encode/decode, errors, save/load."""

from __future__ import annotations

import json

import pytest

from buildgpt.tokenizers.chars import CharTokenizer


def test_vocabulary_sorted_and_distinct(tiny_text):
    tok = CharTokenizer.from_text(tiny_text)
    assert tok.chars == sorted(set(tiny_text))
    assert len(set(tok.chars)) == len(tok.chars) == tok.vocab_size
    assert tok.chars[0] == "\n"  # the smallest code point present
    assert tok.encode(tok.chars) == list(range(tok.vocab_size))


def test_shakespeare_vocabulary_and_round_trip(shakespeare_text):
    tok = CharTokenizer.from_text(shakespeare_text)
    assert tok.vocab_size == 65
    assert tok.chars == sorted(tok.chars)
    ids = tok.encode(shakespeare_text)
    assert len(ids) == len(shakespeare_text)
    assert min(ids) == 0 and max(ids) == tok.vocab_size - 1
    assert tok.decode(ids) == shakespeare_text


def test_encode_known_ids():
    tok = CharTokenizer.from_text("cab")
    assert tok.encode("abcab") == [0, 1, 2, 0, 1]
    assert tok.decode([2, 1, 0]) == "cba"
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_decode_accepts_a_tensor(tiny_text):
    torch = pytest.importorskip("torch")
    tok = CharTokenizer.from_text(tiny_text)
    ids = torch.tensor(tok.encode("hello"), dtype=torch.long)
    assert tok.decode(ids) == "hello"


def test_unknown_character_named_with_position(tiny_text):
    tok = CharTokenizer.from_text(tiny_text)
    with pytest.raises(ValueError) as e:
        tok.encode("hello wörld")
    message = str(e.value)
    assert "'ö'" in message
    assert "U+00F6" in message
    assert "position 7" in message


@pytest.mark.parametrize("bad", [-1, 3, 100])
def test_decode_out_of_range_names_the_id(bad):
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError) as e:
        tok.decode([0, bad, 1])
    assert f"id {bad} " in str(e.value)
    assert "0..2" in str(e.value)


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="empty text"):
        CharTokenizer.from_text("")
    with pytest.raises(ValueError, match="needs at least one character"):
        CharTokenizer([])


@pytest.mark.parametrize("chars", [["a", "a"], ["ab"], ["a", ""]])
def test_vocabulary_must_be_distinct_single_characters(chars):
    with pytest.raises(ValueError, match="distinct single characters"):
        CharTokenizer(chars)


def test_save_load_round_trip(tmp_path, tiny_text):
    tok = CharTokenizer.from_text(tiny_text + "é日🙂\t")
    file = tmp_path / "vocab.json"
    tok.save(file)
    loaded = CharTokenizer.load(file)
    assert loaded.chars == tok.chars
    assert loaded.encode(tiny_text) == tok.encode(tiny_text)
    assert json.loads(file.read_text(encoding="utf-8"))["type"] == "char"
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temporary file left behind
    tok2 = CharTokenizer.from_text("xyz")
    tok2.save(str(file))  # overwrites, and takes a str too
    assert CharTokenizer.load(str(file)).chars == ["x", "y", "z"]


@pytest.mark.parametrize("content", [
    b"{not json",
    b"",
    b"\xff\xfe\x00garbage",
    b'["a", "b"]',
    b'{"type": "bpe", "merges": []}',
    b'{"type": "char"}',
    b'{"type": "char", "chars": ["a", "a"]}',
    b'{"type": "char", "chars": [1, 2]}',
    b'{"type": "char", "chars": []}',
])
def test_load_of_foreign_or_corrupt_file_names_the_file(tmp_path, content):
    file = tmp_path / "broken.json"
    file.write_bytes(content)
    with pytest.raises(ValueError) as e:
        CharTokenizer.load(file)
    assert str(file) in str(e.value)
    assert "not a character-tokenizer file" in str(e.value)
