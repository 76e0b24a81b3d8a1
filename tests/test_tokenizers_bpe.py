"""The BPE tokenizers: training (reference == fast == rustbpe), encoding (GPT-4 == tiktoken),
round trips, saving and loading, and clear errors on bad input."""

from __future__ import annotations

import re
import warnings

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildgpt.tokenizers.base import Tokenizer
from buildgpt.tokenizers.basic import BasicTokenizer
from buildgpt.tokenizers.fast import train_fast
from buildgpt.tokenizers.gpt4 import TIKTOKEN_CACHE_VAR, GPT4Tokenizer, tiktoken_encoding
from buildgpt.tokenizers.regex import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, RegexTokenizer
from buildgpt.tokenizers.textbook import encode_reference, merge, most_frequent, pair_counts, train_reference

# tiktoken reads its encodings from the cache the conftest fixture names: never the network.
pytestmark = pytest.mark.usefixtures("tiktoken_cache")

SPECIALS = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>"]
TEXTS = {
    "empty": "",
    "one char": "a",
    "one space": " ",
    "mixed scripts": "Hello, мир! 안녕하세요 你好 مرحبا שלום Ελληνικά हिन्दी",
    "emoji": "I 💙 emoji 👋🏽👨‍👩‍👧‍👦 🇯🇵 and ZWJ sequences",
    "code": "def f(x):\n\tif x >= 10:\n        return x ** 2  # square\n    return -1\n\n\n",
    "numbers": "1 12 123 1234 12345 3.14159 1,000,000 2025-11-24 0x1F",
    "whitespace": "  leading, trailing   \n\n\n  \r\n\t \u00a0 nbsp\u3000ideographic  ",
    "whitespace at the end": "The end\n  \n\t ",  # tiktoken's pattern keeps it in one chunk
    "contractions": "I'm you'll they've it's WE'LL DON'T 'quoted'",
}
# Any Unicode that Python's own (older) Unicode tables know: every regex engine agrees on it.
unicode_text = st.text(st.characters(exclude_categories=["Cs", "Cn"]), max_size=60)
slow_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def cl100k() -> tiktoken.Encoding:
    return tiktoken_encoding("cl100k_base")


@pytest.fixture(scope="module")
def gpt4() -> GPT4Tokenizer:
    return GPT4Tokenizer()


@pytest.fixture(scope="module")
def training_text(shakespeare_text) -> str:
    """Some Shakespeare and every test passage, so trained merges cover more than English."""
    return shakespeare_text[:30_000] + "".join(TEXTS.values()) * 3


@pytest.fixture(scope="module")
def trained(training_text) -> dict[str, Tokenizer]:
    basic, regex_gpt2, regex_gpt4 = BasicTokenizer(), RegexTokenizer(GPT2_SPLIT_PATTERN), \
        RegexTokenizer(special_tokens={"<|endoftext|>": 1000})
    basic.train(training_text, 300)
    regex_gpt2.train(training_text, 600)
    regex_gpt4.train(training_text, 600)
    return {"basic": basic, "regex-gpt2": regex_gpt2, "regex-gpt4": regex_gpt4}


@pytest.fixture(scope="module", params=["basic", "regex-gpt2", "regex-gpt4", "gpt4"])
def tokenizer(request, trained, gpt4) -> Tokenizer:
    return gpt4 if request.param == "gpt4" else trained[request.param]


# ---------------------------------------------------------------- the algorithm, small


def test_wikipedia_example():
    """https://en.wikipedia.org/wiki/Byte_pair_encoding: aaabdaaabac -> ZabdZabac -> ZYdZYac -> XdXac."""
    tokenizer = BasicTokenizer()
    tokenizer.train("aaabdaaabac", 256 + 3)
    assert tokenizer.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}  # Z=aa, Y=ab, X=ZY
    assert tokenizer.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tokenizer.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"


def test_pair_counts_and_merge():
    assert pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert pair_counts([7, 7, 7]) == {(7, 7): 2}  # overlapping pairs both count
    assert merge([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge([7, 7, 7], (7, 7), 8) == [8, 7]  # left to right, no overlaps
    assert merge([], (1, 2), 3) == []


def test_ties_go_to_the_smallest_pair():
    assert most_frequent({(98, 99): 2, (97, 120): 2, (97, 98): 2, (1, 2): 1}) == (97, 98)
    assert [pair for pair, _ in train_fast(["dcba"], 3)] == [(98, 97), (99, 256), (100, 257)]


@pytest.mark.parametrize("text, num_merges", [
    ("aaabdaaabac", 3),
    ("aaaaaaaaaa", 5),  # runs of one byte: overlapping pairs
    (TEXTS["mixed scripts"] * 3 + TEXTS["emoji"], 60),
    (TEXTS["code"] * 5 + TEXTS["whitespace"], 40),
])
@pytest.mark.parametrize("pattern", [None, GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN])
def test_fast_trainer_equals_reference(text, num_merges, pattern):
    chunks = [text] if pattern is None else RegexTokenizer(pattern).split(text)
    assert train_fast(chunks, num_merges) == train_reference(chunks, num_merges)


@pytest.mark.parametrize("num_chars, num_merges", [(20_000, 100), (60_000, 20)])
def test_fast_trainer_equals_reference_on_shakespeare(shakespeare_text, num_chars, num_merges):
    chunks = RegexTokenizer().split(shakespeare_text[:num_chars])
    fast = train_fast(chunks, num_merges)
    assert fast == train_reference(chunks, num_merges)
    assert len(fast) == num_merges
    counts = [count for _, count in fast]
    assert counts == sorted(counts, reverse=True)  # greedy: each merge is as frequent as the next


@slow_settings
@given(text=st.text(st.sampled_from("ab c\n"), max_size=80) | unicode_text, num_merges=st.integers(0, 40))
def test_fast_trainer_equals_reference_on_random_text(text, num_merges):
    chunks = RegexTokenizer().split(text)
    assert train_fast(chunks, num_merges) == train_reference(chunks, num_merges)


def test_merges_equal_rustbpe(shakespeare_text):
    """An independent implementation (Rust, PyPI) learns exactly our merges (GPT-4 pattern, 512)."""
    rustbpe = pytest.importorskip("rustbpe")
    reference = rustbpe.Tokenizer()
    reference.train_from_iterator(iter([shakespeare_text]), 512)
    assert reference.get_pattern() == GPT4_SPLIT_PATTERN
    ours = RegexTokenizer()
    ours.train(shakespeare_text, 512)
    assert {token: i for i, token in ours.vocab.items()} == dict(reference.get_mergeable_ranks())
    text = shakespeare_text[:5000]
    assert ours.encode(text) == reference.encode(text)


# ---------------------------------------------------------------- round trips and encoding


@pytest.mark.parametrize("name", TEXTS)
def test_round_trip(tokenizer, name):
    text = TEXTS[name]
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert (tokenizer.encode(text) == []) == (text == "")


def test_round_trip_long_file(tokenizer, shakespeare_text):
    text = shakespeare_text[-50_000:]  # not the part the tokenizers trained on
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8")) * 0.75  # the merges compress


@settings(max_examples=150, deadline=None)
@given(text=unicode_text)
def test_round_trip_random_unicode(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(text=unicode_text | st.text(st.sampled_from("ab \n1'"), max_size=40))
def test_fast_encoder_equals_reference(trained, text):
    for tokenizer in trained.values():
        reference = []
        for chunk in tokenizer.split(text):
            reference += encode_reference(list(chunk.encode("utf-8")), tokenizer.merges)
        assert tokenizer.encode_ordinary(text) == reference


def test_encoding_is_cached_per_chunk(trained):
    tokenizer = trained["regex-gpt4"]
    first = tokenizer.encode("the cat and the hat")
    assert {" cat", " hat", " the", "the"} <= set(tokenizer._chunk_cache)
    assert tokenizer.encode("the cat and the hat") == first


def test_decode_accepts_tensors_and_arrays(trained):
    torch = pytest.importorskip("torch")
    tokenizer = trained["regex-gpt4"]
    ids = tokenizer.encode("hello world")
    assert tokenizer.decode(torch.tensor(ids)) == tokenizer.decode(ids) == "hello world"


# ---------------------------------------------------------------- GPT-4 == tiktoken


@pytest.mark.parametrize("name", TEXTS)
def test_gpt4_equals_tiktoken(gpt4, cl100k, name):
    assert gpt4.encode(TEXTS[name]) == cl100k.encode(TEXTS[name])


def test_gpt4_equals_tiktoken_on_a_long_file(gpt4, cl100k, shakespeare_text):
    assert gpt4.encode(shakespeare_text) == cl100k.encode(shakespeare_text)


@settings(max_examples=1000, deadline=None)
@given(text=unicode_text | st.text(st.sampled_from(" \n\r\t\u00a0a1.'"), max_size=30))
def test_gpt4_equals_tiktoken_on_random_text(gpt4, cl100k, text):
    assert gpt4.encode(text) == cl100k.encode(text)


def test_gpt4_facts(gpt4, cl100k):
    assert gpt4.vocab_size == cl100k.n_vocab == 100277
    assert len(gpt4.merges) == 100256 - 256
    assert sorted(gpt4.byte_ids) == list(range(256)) and gpt4.byte_ids != list(range(256))
    assert gpt4.special_tokens == cl100k._special_tokens
    for i in (0, 256, 1000, 100255, 100257):
        assert gpt4.decode_bytes([i]) == cl100k.decode_single_token_bytes(i)


SPECIAL_TEXT = "doc one<|endoftext|>doc two <|fim_prefix|>x<|fim_suffix|>y<|fim_middle|> end<|endofprompt|>"


@pytest.mark.parametrize("allowed, disallowed", [
    ("all", "all"),
    ({"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>"}, "all"),
    ({"<|endoftext|>"}, ()),
    (set(), ()),
    ({"<|endoftext|>", "<|not a special token|>"}, ()),
])
def test_gpt4_special_tokens_equal_tiktoken(gpt4, cl100k, allowed, disallowed):
    ours = gpt4.encode(SPECIAL_TEXT, allowed_special=allowed, disallowed_special=disallowed)
    assert ours == cl100k.encode(SPECIAL_TEXT, allowed_special=allowed, disallowed_special=disallowed)
    assert gpt4.decode(ours) == SPECIAL_TEXT


@pytest.mark.parametrize("allowed, disallowed", [
    (set(), "all"),
    ({"<|endoftext|>"}, "all"),
    ({"<|endoftext|>"}, {"<|fim_middle|>"}),
    ("all", {"<|endofprompt|>"}),
])
def test_disallowed_special_raises_like_tiktoken(gpt4, cl100k, allowed, disallowed):
    with pytest.raises(ValueError) as theirs:
        cl100k.encode(SPECIAL_TEXT, allowed_special=allowed, disallowed_special=disallowed)
    with pytest.raises(ValueError) as ours:
        gpt4.encode(SPECIAL_TEXT, allowed_special=allowed, disallowed_special=disallowed)
    token = str(theirs.value).split("special token ")[1].split(".")[0]  # the token tiktoken names
    assert f"disallowed special token {token}" in str(ours.value)
    assert "allowed_special" in str(ours.value) and "disallowed_special=()" in str(ours.value)


def test_special_tokens_of_a_trained_tokenizer(trained):
    tokenizer = trained["regex-gpt4"]
    ids = tokenizer.encode("hi<|endoftext|>there", allowed_special="all")
    assert 1000 in ids and tokenizer.decode(ids) == "hi<|endoftext|>there"
    assert 1000 not in tokenizer.encode("hi<|endoftext|>there", disallowed_special=())
    with pytest.raises(ValueError, match="disallowed special token '<|endoftext|>'"):
        tokenizer.encode("hi<|endoftext|>there")
    assert tokenizer.vocab_size == 1001


# ---------------------------------------------------------------- save and load


def test_save_load_round_trip(tokenizer, tmp_path):
    model, vocab = tokenizer.save(tmp_path / "tok")
    assert (model.name, vocab.name) == ("tok.model", "tok.vocab")
    loaded = Tokenizer.load(model)
    assert type(loaded) is (BasicTokenizer if tokenizer.pattern is None else RegexTokenizer)
    assert (loaded.merges, loaded.special_tokens, loaded.byte_ids, loaded.pattern) == \
        (tokenizer.merges, tokenizer.special_tokens, tokenizer.byte_ids, tokenizer.pattern)
    for text in (TEXTS["mixed scripts"], TEXTS["code"], SPECIAL_TEXT):
        assert loaded.encode(text, allowed_special="all") == tokenizer.encode(text, allowed_special="all")


@pytest.mark.parametrize("odd", ["\x85", "\u2028", "\u2029"])
def test_save_load_round_trip_with_unicodes_own_line_breaks(tmp_path, odd):
    """U+0085, U+2028 and U+2029 end a line for str.splitlines: in a token or the pattern they must stay escaped."""
    tokenizer = RegexTokenizer(f"[a{odd}]+|.", {(97, 97): 256}, {f"<|x{odd}y|>": 257})
    loaded = Tokenizer.load(tokenizer.save(tmp_path / "odd")[0])
    assert (loaded.pattern, loaded.special_tokens, loaded.merges) == \
        (tokenizer.pattern, tokenizer.special_tokens, tokenizer.merges)


def test_vocab_file_is_readable(trained, tmp_path):
    _, vocab = trained["regex-gpt4"].save(tmp_path / "tok")
    lines = vocab.read_text(encoding="utf-8").splitlines()
    assert "10 [\\u000a]" in lines and "32 [ ]" in lines and "1000 [<|endoftext|>] special" in lines
    assert "256 [ t] = [ ] + [t]" in lines  # Shakespeare's most frequent pair: " t"
    assert "200 [\\xc8]" in lines  # a lone byte of a multi-byte character


def test_load_checks_the_class(trained, tmp_path):
    model, _ = trained["basic"].save(tmp_path / "basic")
    assert isinstance(BasicTokenizer.load(model), BasicTokenizer)
    with pytest.raises(ValueError, match="holds a BasicTokenizer, not a RegexTokenizer"):
        RegexTokenizer.load(model)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("merges", [{(97, 98): 300}, {(97, 98): 256, (98, 99): 256}, {(97, 98): 257}])
def test_merge_ids_with_a_gap_or_a_repeat_are_refused(merges):
    """A saved tokenizer lists its merges in order, the i-th making 256 + i: other ids would change on loading."""
    with pytest.raises(ValueError, match="merge ids must run 256, 257, ... with no gap or repeat"):
        RegexTokenizer(merges=merges)


def test_vocab_size_below_256():
    with pytest.raises(ValueError, match="at least 256.*got 100"):
        RegexTokenizer().train("hello", 100)


def test_vocab_size_larger_than_the_text_supports():
    tokenizer = RegexTokenizer()
    with pytest.warns(UserWarning, match="allows only 3 merges, not the 744"):
        tokenizer.train("abab ab", 1000)  # chunks "abab" and " ab": ab, then " ab", then abab
    assert len(tokenizer.merges) == 3
    assert tokenizer.encode("abab ab") == [258, 257]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenizer.train("abab ab", 256 + 3)  # exactly possible: no warning


def test_special_token_ids_must_be_above_the_vocab():
    with pytest.raises(ValueError, match="ids below vocab_size=600"):
        RegexTokenizer(special_tokens={"<|endoftext|>": 500}).train("hello", 600)


def test_decode_unknown_id(gpt4, trained):
    with pytest.raises(ValueError, match="token id 100261 is not in the vocabulary.*<|endoftext|>"):
        gpt4.decode([9906, 100261])
    with pytest.raises(ValueError, match="token id 600 is not in the vocabulary: its ids are 0..599"):
        trained["regex-gpt4"].decode([1, 600])
    with pytest.raises(ValueError, match="token id -1"):
        trained["basic"].decode([-1])
    with pytest.raises(ValueError, match="token id 'a'"):
        trained["basic"].decode(["a"])


def test_decode_mid_character_gives_the_replacement_character(gpt4, cl100k):
    ids = gpt4.encode("👋")  # one character, four bytes, more than one token
    assert len(ids) > 1
    assert gpt4.decode(ids[:-1]) == cl100k.decode(ids[:-1]) and "\ufffd" in gpt4.decode(ids[:-1])
    assert gpt4.decode([gpt4.byte_ids[0xE2]]) == "\ufffd"


def test_gpt4_cannot_be_trained(gpt4):
    with pytest.raises(NotImplementedError, match="RegexTokenizer"):
        gpt4.train("hello", 300)


def _model_lines(tokenizer, tmp_path) -> list[str]:
    model, _ = tokenizer.save(tmp_path / "good")
    return model.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("corrupt, message", [
    pytest.param(lambda lines: ["minbpe v1"] + lines[1:],
                 ":1: not a tokenizer model file: expected 'buildgpt-bpe v1', found 'minbpe v1'", id="foreign"),
    pytest.param(lambda lines: [], ":1: not a tokenizer model file: .*found 'an empty file'", id="empty"),
    pytest.param(lambda lines: lines[:5] + ["merge 1 two"] + lines[5:], ":6: invalid literal.*'merge 1 two'",
                 id="not-a-number"),
    pytest.param(lambda lines: lines[:5] + ["merge 1 9999"] + lines[5:],
                 r":6: merge 1 \(token 257\) must join two earlier tokens", id="future-token"),
    pytest.param(lambda lines: lines + [lines[-1]], r":\d+: merge .*no pair twice", id="merge-twice"),
    pytest.param(lambda lines: lines[:2] + ["bytes 1 2 3"] + lines[3:], ":3: the byte ids must be 0..255",
                 id="bytes"),
    pytest.param(lambda lines: lines[:1] + ['pattern "(unclosed"'] + lines[2:], r":2: missing \)", id="bad-regex"),
    pytest.param(lambda lines: lines[:1] + lines[2:], ": the 'pattern' line is missing", id="no-pattern"),
    pytest.param(lambda lines: lines + [lines[1]], r":\d+: a second 'pattern' line \(the first is line 2\)",
                 id="two-patterns"),
    pytest.param(lambda lines: lines + ["vocab 12"], r":\d+: unknown entry 'vocab'", id="unknown-entry"),
    pytest.param(lambda lines: lines + ['special "<|x|>" 300'],
                 r": special tokens \{'<\|x\|>': 300\} have the ids of ordinary tokens", id="special-clash"),
    pytest.param(lambda lines: lines + ['special "<|x|>" 1000'],
                 r":\d+: id 1000 is already another special token's", id="special-twice"),
])
def test_corrupt_model_file(trained, tmp_path, corrupt, message):
    bad = tmp_path / "bad.model"
    bad.write_text("".join(line + "\n" for line in corrupt(_model_lines(trained["regex-gpt4"], tmp_path))),
                   encoding="utf-8")
    with pytest.raises(ValueError, match="^" + re.escape(str(bad)) + message):
        Tokenizer.load(bad)


def test_binary_model_file(tmp_path):
    bad = tmp_path / "weights.model"
    bad.write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match="weights.model is not a tokenizer model file: it is not UTF-8 text"):
        Tokenizer.load(bad)


def test_tiktoken_without_cache_or_network(tmp_path, monkeypatch):
    """No cached files and no network: the error says which variable to set."""
    import requests
    import tiktoken.registry

    def offline(*args, **kwargs):
        raise requests.ConnectionError("network is unreachable (test)")

    monkeypatch.setattr(requests, "get", offline)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # tiktoken's in-memory cache
    monkeypatch.setenv(TIKTOKEN_CACHE_VAR, str(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match=f"TIKTOKEN_CACHE_DIR={tmp_path / 'empty'}.*network is unreachable"):
        GPT4Tokenizer()
    with pytest.raises(ValueError, match="no encoding 'cl50k'"):
        tiktoken_encoding("cl50k")
