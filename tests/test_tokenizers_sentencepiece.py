"""sentencepiece trained with Llama 2's options: round trips, byte fallback for unseen characters,
and our hand decoder and vocabulary count against sentencepiece's own."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buildgpt.tokenizers.sentencepiece_bpe import LLAMA2_OPTIONS, decode_pieces, train_sentencepiece, vocabulary_kinds

pytest.importorskip("sentencepiece")

TEXT = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?
""" * 40


@pytest.fixture(scope="module")
def sp():
    return train_sentencepiece(TEXT.splitlines(), 320)


@pytest.fixture(scope="module")
def sp_no_fallback():
    return train_sentencepiece(TEXT.splitlines(), 80, byte_fallback=False)


def test_round_trip_and_our_decoder(sp):
    for line in [*TEXT.splitlines()[:8], "Wherefore art thou, Romeo? 🌹", "  two leading spaces", "é"]:
        ids = sp.encode(line)
        assert sp.decode(ids) == line
        assert decode_pieces(sp.encode(line, out_type=str)) == line


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp", "Zs")) | st.just(" ")))
def test_our_decoder_matches_sentencepiece_on_any_text(sp, text):
    ids = sp.encode(text)
    assert decode_pieces([sp.id_to_piece(i) for i in ids]) == sp.decode(ids)


def test_byte_fallback_spells_an_unseen_character_in_bytes(sp, sp_no_fallback):
    assert sp.encode("🌹", out_type=str) == ["▁", "<0xF0>", "<0x9F>", "<0x8C>", "<0xB9>"]
    assert all(sp.is_byte(i) for i in sp.encode("🌹")[1:])
    assert sp_no_fallback.encode("🌹")[-1] == sp_no_fallback.unk_id() == 0
    assert sp_no_fallback.decode(sp_no_fallback.encode("a🌹")) == "a ⁇ "  # the character is lost


def test_vocabulary_kinds_against_sentencepiece(sp):
    kinds = vocabulary_kinds(sp)
    assert sum(kinds.values()) == sp.get_piece_size() == 320
    assert kinds["byte"] == 256 and kinds["special"] == 3  # <unk>, <s>, </s>: Llama 2's ids 0, 1, 2
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert kinds["character"] == sum(len(p) == 1 for p in pieces) >= len(set(TEXT) - {"\n", " "})
    assert sp.unk_id() == LLAMA2_OPTIONS["unk_id"] and sp.bos_id() == 1 and sp.eos_id() == 2


def test_unknown_option_is_named(sp):
    with pytest.raises(RuntimeError, match="no_such_option"):
        train_sentencepiece(["hello"], 300, no_such_option=1)
