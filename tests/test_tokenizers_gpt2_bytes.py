"""GPT-2's printable bytes against transformers' `bytes_to_unicode` and tiktoken's byte ids; the
merge trees behind tokens and the picture of one; the docstring examples of the new modules."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
from transformers.convert_slow_tokenizer import bytes_to_unicode as transformers_bytes_to_unicode

from buildgpt.tokenizers.gpt2_bytes import bytes_to_unicode, printable
from buildgpt.tokenizers.gpt4 import GPT4Tokenizer, tiktoken_encoding
from buildgpt.tokenizers.merge_tree import merge_tree, tree_depth
from buildgpt.tokenizers.regex import RegexTokenizer

ROOT = Path(__file__).resolve().parents[1]


def test_bytes_to_unicode_is_transformers_table_in_its_order():
    ours, theirs = bytes_to_unicode(), transformers_bytes_to_unicode()
    assert ours == theirs and list(ours.items()) == list(theirs.items())
    assert len(set(ours.values())) == 256 and all(c.isprintable() and not c.isspace() for c in ours.values())


@pytest.mark.usefixtures("tiktoken_cache")
@pytest.mark.parametrize("name", ["gpt2", "cl100k_base", "o200k_base"])
def test_tiktoken_byte_ids_follow_gpt2s_table(name):
    ranks = tiktoken_encoding(name)._mergeable_ranks
    assert sorted(range(256), key=lambda b: ranks[bytes([b])]) == list(bytes_to_unicode())


@pytest.mark.usefixtures("tiktoken_cache")
def test_printable_is_reversible_on_gpt2_tokens():
    gpt2 = tiktoken_encoding("gpt2")
    back = {c: b for b, c in bytes_to_unicode().items()}
    for token in list(gpt2._mergeable_ranks)[::97]:
        assert bytes(back[c] for c in printable(token)) == token
    assert printable(b"\n\tx") == "\u010a\u0109x"


def test_merge_tree_rebuilds_every_token():
    tokenizer = RegexTokenizer()
    tokenizer.train("the cat sat on the mat; the cats sat on the mats. " * 20, 271)

    def leaves(tree):
        return [tree] if isinstance(tree, int) else leaves(tree[0]) + leaves(tree[1])

    for token_id, token in tokenizer.vocab.items():
        tree = merge_tree(token_id, tokenizer.merges)
        assert b"".join(tokenizer.vocab[leaf] for leaf in leaves(tree)) == token
        assert all(leaf < 256 for leaf in leaves(tree)) and tree_depth(tree) <= len(token) - 1
    with pytest.raises(ValueError, match="never negative"):
        merge_tree(-1, tokenizer.merges)
    for unknown in (271, 10**9):  # one past the vocabulary, and far past it: not a byte, made by no merge
        with pytest.raises(ValueError, match=f"token {unknown} is neither a byte token"):
            merge_tree(unknown, tokenizer.merges)


def test_docstring_examples():
    checked = 0
    for name in ("gpt2_bytes", "merge_tree", "sentencepiece_bpe"):
        module = importlib.import_module(f"buildgpt.tokenizers.{name}")
        for obj in vars(module).values():
            if getattr(obj, "__module__", None) == module.__name__ and obj.__doc__:
                for expression, value in re.findall(r"Example: `(.+?)`\s+gives `(.+?)`", obj.__doc__, re.S):
                    assert eval(expression, vars(module)) == eval(value, vars(module)), expression
                    checked += 1
    assert checked >= 5


@pytest.mark.usefixtures("tiktoken_cache")
def test_the_merge_tree_picture_is_drawn_from_gpt4s_merges():
    """book/images/tokenizer-merge-tree.svg is exactly what scripts/tokenizer_merge_tree.py draws."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import tokenizer_merge_tree
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    drawn = tokenizer_merge_tree.svg(GPT4Tokenizer(), tokenizer_merge_tree.WORD)
    assert tokenizer_merge_tree.OUT.read_text(encoding="utf-8") == drawn, "rerun scripts/tokenizer_merge_tree.py"
