"""GPT-4's tokenizer and Unicode versions: where our split and tiktoken's agree, and the one place
they do not (characters newer than tiktoken's Unicode tables); and every docstring example of the
tokenizers package, run."""

from __future__ import annotations

import importlib
import re
import sys
import unicodedata
from collections import defaultdict

import pytest
import regex

from buildgpt.tokenizers.gpt4 import TIKTOKEN_UNICODE_VERSION, GPT4Tokenizer, tiktoken_encoding

# tiktoken reads its encodings from the cache the conftest fixture names: never the network.
pytestmark = pytest.mark.usefixtures("tiktoken_cache")

LETTER, NUMBER, UNASSIGNED = regex.compile(r"\p{L}"), regex.compile(r"\p{N}"), regex.compile(r"\p{Cn}")
# Each context puts the character where its class decides a chunk boundary that a merge crosses:
# "'s" after a letter is a contraction, after punctuation it joins it; three digits after a number
# make "c12" + "3", after anything else "123"; a space before a number stays apart.
CONTEXTS = ("{c}'s", "{c}123", " {c}", "a{c}b", "{c}\n\n")


@pytest.fixture(scope="module")
def cl100k():
    return tiktoken_encoding("cl100k_base")


@pytest.fixture(scope="module")
def gpt4() -> GPT4Tokenizer:
    return GPT4Tokenizer()


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_characters_newer_than_tiktokens_unicode_split_differently(gpt4, cl100k):
    """U+A7CE (Unicode 17.0) is a letter to `regex`, punctuation to tiktoken 0.14's tables."""
    assert LETTER.match("\ua7ce") and not UNASSIGNED.match("\ua7ce")
    text = "\ua7ce's"
    assert gpt4.split(text) == ["\ua7ce", "'s"]  # ours: a word, then a contraction
    assert cl100k.encode(text) == cl100k.encode("\ua7ce'") + cl100k.encode("s")  # theirs: "\ua7ce'", "s"
    assert gpt4.encode(text) != cl100k.encode(text)
    # A number of Unicode 17.0 (Tolong Siki digit zero): ours "c12" + "3", theirs "c" + "123".
    digit = "\U00011de0"
    assert NUMBER.match(digit)
    assert gpt4.split(digit + "123") == [digit + "12", "3"]
    assert cl100k.encode(digit + "123") == cl100k.encode(digit) + cl100k.encode("123") != gpt4.encode(digit + "123")
    # The chunks differ here too ("a\ua7ceb" against "a", "\ua7ceb"), but no merge crosses: same ids.
    assert gpt4.encode("a\ua7ceb") == cl100k.encode("a\ua7ceb")


def test_tiktoken_knows_unicode_16_numbers(gpt4, cl100k):
    """Garay digit zero (U+10D40, Unicode 16.0) is a number to both: the documented version is tiktoken's."""
    assert TIKTOKEN_UNICODE_VERSION == (16, 0)
    text = "\U00010d40123"
    assert gpt4.split(text) == ["\U00010d4012", "3"]
    assert gpt4.encode(text) == cl100k.encode(text)


@pytest.mark.skipif(version(unicodedata.unidata_version)[:2] > TIKTOKEN_UNICODE_VERSION,
                    reason="Python's Unicode tables are newer than tiktoken's")
def test_gpt4_equals_tiktoken_on_every_character_python_knows(gpt4, cl100k):
    """Every assigned character of Python's `unicodedata` (no newer than tiktoken's tables), but
    private use and surrogates, in each context where its class decides a boundary."""
    chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) not in ("Cn", "Co", "Cs")]
    assert len(chars) > 140_000
    for context in CONTEXTS:
        text = "\n".join(context.format(c=c) for c in chars)
        assert gpt4.encode(text) == cl100k.encode(text), context


# "\ud800\udc00" is U+10000, a letter: joined before the split, it takes the "'s" with it, as in tiktoken
@pytest.mark.parametrize("text", ["\ud800", "a\udc00b", "x \udfff!", "\ud83d\ude00", "\ud83d", "\ud800\udc00's"])
def test_lone_surrogates_become_what_tiktoken_makes_of_them(gpt4, cl100k, text):
    """A str can hold a lone surrogate (from surrogateescape, or JSON's "\\ud800"), which no UTF-8 can."""
    assert gpt4.encode(text) == cl100k.encode(text)


def test_docstring_examples():
    """Each "Example: `expression` gives `value`" in the package's tokenizer modules holds."""
    checked = 0
    for name in ("textbook", "fast", "base", "basic", "regex", "gpt4"):
        module = importlib.import_module(f"buildgpt.tokenizers.{name}")
        namespace = {**vars(module), "defaultdict": defaultdict}
        for obj in vars(module).values():
            if getattr(obj, "__module__", None) == module.__name__ and obj.__doc__:
                for expression, value in re.findall(r"Example: `(.+?)`\s+gives `(.+?)`", obj.__doc__, re.S):
                    assert eval(expression, namespace) == eval(value, namespace), expression
                    checked += 1
    assert checked >= 12
