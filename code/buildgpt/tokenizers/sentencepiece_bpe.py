"""sentencepiece, the tokenizer library of Llama 2 and many other models: BPE over code points,
with byte fallback for the characters it has no token for.

Where our tokenizers merge bytes, sentencepiece merges characters (code points). A character
rarer than `character_coverage` allows gets no token of its own; with `byte_fallback` its UTF-8
bytes are spelled with the 256 byte tokens `<0x00>` .. `<0xFF>`, without it the character
becomes the unknown token. A space is written `▁` (U+2581) inside tokens, and
`add_dummy_prefix` puts one in front of the text, so a word at the start of a text gets the
same token as a word after a space.

sentencepiece is imported only when a function needs it, so the rest of the package works
without it.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from typing import Any

SPACE = "\u2581"  # sentencepiece's visible space, ▁

# The trainer options of the tokenizer lecture's notebook, which gives them as a best-effort copy
# of Llama 2's (the trainer_spec and normalizer_spec stored in Llama 2's tokenizer.model). Left out:
# the input and output files, the thread count and the vocabulary size (LLAMA2_VOCAB_SIZE).
LLAMA2_OPTIONS: dict[str, Any] = dict(
    model_type="bpe",
    normalization_rule_name="identity",  # no Unicode normalization: the text is kept as it is
    remove_extra_whitespaces=False,
    input_sentence_size=200_000_000,  # at most this many training sentences
    max_sentence_length=4192,  # bytes per sentence
    seed_sentencepiece_size=1_000_000,
    shuffle_input_sentence=True,
    character_coverage=0.99995,  # the rarest characters get no token of their own
    byte_fallback=True,  # ... and are spelled in bytes instead of <unk>
    split_digits=True,  # every digit its own token
    split_by_unicode_script=True,
    split_by_whitespace=True,
    split_by_number=True,
    max_sentencepiece_length=16,
    add_dummy_prefix=True,  # "hello" is encoded as " hello"
    allow_whitespace_only_pieces=True,
    unk_id=0,
    bos_id=1,
    eos_id=2,
    pad_id=-1,  # no padding token
)
LLAMA2_VOCAB_SIZE = 32_000  # "The total vocabulary size is 32k tokens" (the Llama 2 paper, section 2.2)


def train_sentencepiece(lines: Iterable[str], vocab_size: int, **options: Any):
    """A sentencepiece model trained in memory on `lines` with Llama 2's options (`LLAMA2_OPTIONS`),
    overridden by `options`; a `sentencepiece.SentencePieceProcessor`.

    Each line is one sentence: sentencepiece never merges across lines, and has no newline token.
    Example: `sp = train_sentencepiece(text.splitlines(), 512)`, then `sp.encode("hi", out_type=str)`.
    """
    spm = _sentencepiece()
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size,
                                   num_threads=1, minloglevel=2, **{**LLAMA2_OPTIONS, **options})
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def decode_pieces(pieces: list[str], dummy_prefix: bool = True) -> str:
    """The text behind sentencepiece pieces, decoded by hand: `▁` is a space, `<0xNN>` a byte.

    The space that `add_dummy_prefix` put in front of the text is taken off again, as
    sentencepiece's own `decode` does. Bytes that are not valid UTF-8 become `�`: one per broken
    sequence here, where sentencepiece writes one per byte (text it encoded never has any).
    Example: `decode_pieces(["▁hi", "▁", "<0xC3>", "<0xA9>"])` gives `"hi é"`.
    """
    data = b"".join(bytes([int(piece[3:5], 16)]) if _is_byte_piece(piece) else piece.replace(SPACE, " ").encode()
                    for piece in pieces)
    text = data.decode("utf-8", errors="replace")
    return text[1:] if dummy_prefix and text.startswith(" ") else text


def vocabulary_kinds(sp) -> Counter[str]:
    """How a sentencepiece vocabulary spends its ids: special, byte, character or merged tokens.

    Example: with byte fallback, `vocabulary_kinds(sp)["byte"]` is 256.
    """
    kinds: Counter[str] = Counter()
    for i in range(sp.get_piece_size()):
        if sp.is_byte(i):
            kinds["byte"] += 1
        elif sp.is_control(i) or sp.is_unknown(i):
            kinds["special"] += 1
        else:
            kinds["character" if len(sp.id_to_piece(i)) == 1 else "merged"] += 1
    return kinds


def _is_byte_piece(piece: str) -> bool:
    return len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")


def _sentencepiece():
    try:
        import sentencepiece
    except ImportError as e:
        raise ImportError("this needs the sentencepiece package: pip install 'buildgpt[book]' "
                          "(or pip install sentencepiece)") from e
    return sentencepiece
