"""`buildgpt chat`: a ChatSession streams answers in the chat format, keeps the history within the
window, and its REPL survives bad input and Ctrl-C. Tiny random models, steered through the head's bias."""

from __future__ import annotations

import io
import math

import pytest
import torch

from buildgpt.cli import main
from buildgpt.infer import chat_session
from buildgpt.infer.chat_session import NOT_CHAT_TUNED, WINDOW_FULL, ChatSession, run_repl
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.nn.surgery import grow_vocabulary
from buildgpt.tokenizers.chars import CharTokenizer
from buildgpt.tokenizers.chat import END, USER, ChatTokenizer
from buildgpt.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
CHARS = list("\n !?,.abcdefghijklmnopqrstuvwxy")  # no "z": a character the model has never seen
TOKENIZER = ChatTokenizer(CHARS)


def chat_model(favour: dict[str, float] | None = None, block_size: int = 64) -> GPT:
    """A character GPT grown by the three markers; with `favour`, the head ignores its input and
    gives these tokens (characters or markers) these logits, every other token 0."""
    torch.manual_seed(0)
    model = grow_vocabulary(GPT(GPTConfig(vocab_size=len(CHARS), block_size=block_size, n_layer=1, n_head=2,
                                          n_embd=32)), 3).eval()
    if favour is not None:
        with torch.no_grad():
            model.lm_head.weight.zero_()
            model.lm_head.bias.zero_()
            for token, logit in favour.items():
                model.lm_head.bias[TOKENIZER.special_tokens.get(token) or TOKENIZER.base.stoi[token]] = logit
    return model


def session(favour=None, **kwargs) -> ChatSession:
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    return ChatSession(chat_model(favour), TOKENIZER, **kwargs)


def repl(s: ChatSession, *lines: str, output=None) -> tuple[int, str]:
    """Run the REPL on these lines, then end of input; what it answered and printed."""
    feed, output = iter(lines), output or io.StringIO()

    def input_fn(prompt):
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None
    return run_repl(s, input_fn, output), output.getvalue()


def test_the_answer_streams_in_pieces_and_stops_at_end():
    # every character as likely as <|end|> together: answers of a few characters, then the end
    s = session({END: math.log(len(CHARS))}, max_new_tokens=40)
    answers = [list(s.reply_stream("hi")) for _ in range(6)]
    assert any(answers) and all(len(a) < 40 for a in answers)
    assert all(len(piece) == 1 and piece in CHARS for a in answers for piece in a)  # one character per token
    assert [m["content"] for m in s.history[1::2]] == ["".join(a) for a in answers]


@pytest.mark.parametrize("marker", [END, USER])
def test_any_marker_ends_the_answer_and_is_never_written(marker):
    s = session({marker: 100.0})
    assert list(s.reply_stream("hello")) == []
    assert s.history == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": ""}]


def test_a_marker_spelled_in_characters_ends_the_answer_and_stays_out_of_the_history(monkeypatch):
    """With a vocabulary that has <, | and >, a model can write "<|end|>" one character at a time: that ends the
    answer too, and the history keeps the text before it, which the chat format would otherwise refuse next turn."""
    tokenizer = ChatTokenizer(sorted(set(CHARS) | set("<|>")))
    spelled = tokenizer.base.encode("aye<|end|>and on") + [tokenizer.special_tokens[END]]
    monkeypatch.setattr(chat_session, "generate_stream", lambda *args, **kwargs: (torch.tensor([[t]]) for t in spelled))
    model = grow_vocabulary(GPT(GPTConfig(vocab_size=tokenizer.base.vocab_size, block_size=64, n_layer=1, n_head=2,
                                          n_embd=32)), 3).eval()
    s = ChatSession(model, tokenizer)
    assert list(s.reply_stream("hi")) == ["a", "y", "e"]  # "<|end|" was held back while it could become a marker
    assert s.history[-1] == {"role": "assistant", "content": "aye"}
    assert "".join(s.reply_stream("again")) == "aye"  # the next turn encodes: no "may not spell" error


@pytest.mark.parametrize("written, pieces", [
    ("a<b|c", ["a", "<b", "|", "c"]),  # "<" waits for the next character, which makes it no marker
    ("ab<|en", ["a", "b", "<|en"]),  # the answer ended (max_new_tokens) inside a would-be marker: shown then
])
def test_text_that_only_begins_like_a_marker_is_shown_once_it_cannot_be_one(monkeypatch, written, pieces):
    tokenizer = ChatTokenizer(sorted(set(CHARS) | set("<|>")))
    monkeypatch.setattr(chat_session, "generate_stream",
                        lambda *args, **kwargs: (torch.tensor([[t]]) for t in tokenizer.base.encode(written)))
    model = grow_vocabulary(GPT(GPTConfig(vocab_size=tokenizer.base.vocab_size, block_size=64, n_layer=1, n_head=2,
                                          n_embd=32)), 3).eval()
    s = ChatSession(model, tokenizer)
    assert list(s.reply_stream("hi")) == pieces
    assert s.history[-1] == {"role": "assistant", "content": written}


def test_an_answer_without_end_stops_at_max_new_tokens():
    s = session({"a": 100.0}, max_new_tokens=7)
    assert "".join(s.reply_stream("hi")) == "a" * 7


def test_the_history_grows_by_two_messages_per_turn_and_reset_clears_it():
    s = session({END: 100.0})
    for n in range(1, 4):
        list(s.reply_stream(f"turn {'abc'[n - 1]}"))
        assert len(s.history) == 2 * n and [m["role"] for m in s.history] == ["user", "assistant"] * n
    # the prompt is the whole conversation in the chat format, ending with <|assistant|>
    expected = TOKENIZER.encode_chat([*s.history, {"role": "user", "content": "next"}], add_generation_prompt=True)[0]
    assert s.prompt_ids("next") == expected
    s.reset()
    assert s.history == [] and s.note is None


def test_a_full_window_drops_the_oldest_turns_and_says_so():
    s = session({END: 100.0}, max_new_tokens=8)  # 64-token window, 8 kept for the answer: prompts up to 56
    messages = [c * 20 for c in "abcd"]  # 23 tokens alone, 24 as a turn with an empty answer
    for text in messages[:2]:
        list(s.reply_stream(text))
        assert s.note is None
    list(s.reply_stream(messages[2]))  # 2 turns + 23 > 56: the first turn goes
    assert s.note == WINDOW_FULL
    assert [m["content"] for m in s.history if m["role"] == "user"] == messages[1:3]
    _, out = repl(s, messages[3])
    assert WINDOW_FULL in out


def test_a_message_too_long_for_the_window_alone_is_refused_with_the_sizes():
    s = session({END: 100.0}, max_new_tokens=8)
    with pytest.raises(ValueError, match=r"63 tokens.*window is 64 tokens and 8 are kept for the answer"):
        s.reply_stream("a" * 60)
    assert s.history == []


def test_the_repl_reports_bad_messages_and_goes_on():
    s = session({END: 100.0})
    answered, out = repl(s, "zebra", "say <|end|> now", "a" * 80, "hello")
    assert answered == 1 and out.count("error: ") == 3
    assert "character 'z'" in out and "'<|end|>'" in out and "chat marker" in out and "83 tokens" in out
    assert [m["content"] for m in s.history] == ["hello", ""]


def test_repl_commands():
    s = session({END: 100.0})
    _, out = repl(s, "hello", "/reset", "/temperature 0.3", "/temperature hot", "/temperature -1",
                  "/temperature nan", "/temperature 1e-5", "/frobnicate", "/quit", "never read")
    assert s.history == [] and s.temperature == 0.3
    assert "(the conversation was forgotten)" in out and "(temperature is now 0.3)" in out
    assert "error: /temperature needs a number >= 0 (0 means greedy), got 'hot'" in out
    assert out.count("error: /temperature: temperature must be a number >= 0") == 2  # -1 and nan
    assert "error: /temperature: temperature 1e-05 is too small to divide by" in out  # the reason, not "a number"
    assert "unknown command /frobnicate" in out


class InterruptOnce(io.StringIO):
    """An output where the answer's second character arrives with a Ctrl-C."""

    def __init__(self):
        super().__init__()
        self.pieces = 0

    def write(self, text):
        if text == "a":
            self.pieces += 1
            if self.pieces == 2:
                raise KeyboardInterrupt
        return super().write(text)


def test_ctrl_c_during_an_answer_stops_only_that_answer_and_keeps_what_was_said():
    s = session({"a": 100.0}, max_new_tokens=20)
    answered, out = repl(s, "hi", "again", output=InterruptOnce())
    assert answered == 2 and "(interrupted: the partial answer is kept)" in out
    assert [m["content"] for m in s.history] == ["hi", "a", "again", "a" * 20]


def test_ctrl_c_at_the_prompt_ends_the_session():
    def input_fn(prompt):
        raise KeyboardInterrupt
    assert run_repl(session({END: 100.0}), input_fn, io.StringIO()) == 0


def test_a_model_that_was_never_chat_tuned_warns_and_continues_the_text():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(CHARS), block_size=64, n_layer=1, n_head=2, n_embd=32))
    s = ChatSession(model, CharTokenizer(CHARS), max_new_tokens=12, generator=torch.Generator().manual_seed(0))
    assert s.warning == NOT_CHAT_TUNED
    assert s.prompt_ids("hello") == CharTokenizer(CHARS).encode("hello")  # no markers
    answered, out = repl(s, "hello")
    assert answered == 1 and f"warning: {NOT_CHAT_TUNED}" in out
    assert len(s.history[1]["content"]) == 12


@pytest.fixture
def checkpoints(tmp_path) -> dict[str, str]:
    chat = checkpoint.save(tmp_path / "chat.safetensors", chat_model({END: 2.0}), step=0,
                           meta={"tokenizer": TOKENIZER.to_meta()})
    plain = checkpoint.save(tmp_path / "plain.safetensors",
                            GPT(GPTConfig(vocab_size=len(CHARS), block_size=32, n_layer=1, n_head=2, n_embd=16)),
                            step=0, meta={"tokenizer": {"type": "char", "chars": CHARS}})
    return {"chat": str(chat), "plain": str(plain), "missing": str(tmp_path / "nothing.safetensors")}


def test_the_cli_chats_end_to_end(checkpoints, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/temperature 0\nwhat?\n"))
    assert main(["chat", checkpoints["chat"], "--max-new-tokens", "10", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "/reset" in out and "(temperature is now 0)" in out and "warning" not in out
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n"))
    assert main(["chat", checkpoints["plain"], "--top-k", "3"]) == 0
    assert NOT_CHAT_TUNED in capsys.readouterr().out


def test_the_cli_refuses_a_missing_or_corrupt_checkpoint_and_bad_settings(checkpoints, capsys, tmp_path):
    (tmp_path / "corrupt.safetensors").write_bytes(b"not a checkpoint")
    for path, message in [(checkpoints["missing"], "no checkpoint at"),
                          (str(tmp_path / "corrupt.safetensors"), "not a readable checkpoint")]:
        assert main(["chat", path]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    for option, value, message in (("--temperature", "-1", "temperature must be"),
                                   ("--temperature", "nan", "temperature must be a number"),
                                   ("--device", "gpu", "unknown device 'gpu'")):
        assert main(["chat", checkpoints["chat"], option, value]) == 2
        assert message in capsys.readouterr().err
