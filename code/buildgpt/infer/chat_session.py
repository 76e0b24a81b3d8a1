"""Talking to a chat-tuned GPT: a conversation kept as messages, re-rendered in the chat format each turn.

The model has no memory between calls: each answer is generated from the whole conversation so
far, written out as `<|user|>` text `<|end|>` `<|assistant|>` text `<|end|>` ... and ending with
`<|assistant|>`, the prompt that asks for the next answer. The answer is streamed token by token
and ends when the model writes `<|end|>`. When the conversation outgrows the model's context
window, the oldest turns are dropped: the model could not see them anyway.

A model that was never chat-tuned has no markers in its vocabulary; it can only continue text.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import TextIO

import torch

from ..nn.model import GPT
from ..tokenizers.chars import CharTokenizer
from ..tokenizers.chat import ChatTokenizer, first_marker, partial_marker
from .generate import generate_stream
from .load import char_tokenizer, load_model
from .sampling import check_sampling_args

NOT_CHAT_TUNED = "this model was not chat-tuned: it will only continue your text"
WINDOW_FULL = "(the context window is full: the oldest turns were dropped)"
HELP = "commands: /reset (forget the conversation), /temperature X, /quit (or Ctrl-D)"


class ChatSession:
    """A conversation with a GPT: its history, and how answers are sampled.

    Example: `for piece in ChatSession(model, tokenizer).reply_stream("Hello"): print(piece, end="")`.
    """

    def __init__(self, model: GPT, tokenizer: ChatTokenizer | CharTokenizer, temperature: float = 0.8,
                 top_k: int | None = None, max_new_tokens: int = 256, generator: torch.Generator | None = None):
        check_sampling_args(max_new_tokens, temperature, top_k, None)
        self.model, self.tokenizer = model, tokenizer
        self.temperature = temperature  # checked by the setter
        self.top_k, self.max_new_tokens, self.generator = top_k, max_new_tokens, generator
        self.history: list[dict] = []
        self.is_chat = isinstance(tokenizer, ChatTokenizer)
        self.warning = None if self.is_chat else NOT_CHAT_TUNED
        self.note: str | None = None  # what the last `reply_stream` had to do to fit the window
        # every marker ends the answer: a <|user|> in it would forge the next turn
        self.stop_ids = set(tokenizer.special_by_id) if self.is_chat else set()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", **kwargs) -> ChatSession:
        """A session with the model and vocabulary of a checkpoint.

        Example: `session = ChatSession.from_checkpoint("checkpoints/chat/best.safetensors", top_k=40)`.
        """
        model, ckpt = load_model(path, device)
        return cls(model, char_tokenizer(ckpt, path), **kwargs)

    @property
    def temperature(self) -> float:
        """How random the answers are; set it to change them. Example: `session.temperature = 0` (greedy)."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        check_sampling_args(0, value, None, None)
        self._temperature = float(value)

    @property
    def answer_room(self) -> int:
        """Tokens kept free in the window for the answer: the window slides on for a longer one.

        Example: `session.answer_room` is 64 for a 256-token window and the default max_new_tokens.
        """
        return max(1, min(self.max_new_tokens, self.model.config.block_size // 4))

    def reset(self) -> None:
        """Forget the conversation. Example: `session.reset(); assert session.history == []`."""
        self.history.clear()
        self.note = None

    def prompt_ids(self, user_text: str) -> list[int]:
        """The tokens the model continues to answer `user_text`; drops the oldest turns if they do not fit.

        Raises ValueError for text the vocabulary cannot encode, or that alone leaves no room for an answer.
        Example: `len(session.prompt_ids("Hi")) <= session.model.config.block_size`.
        """
        self.note = None
        new = {"role": "user", "content": user_text}
        limit = self.model.config.block_size - self.answer_room
        if not self.is_chat:  # a plain model continues the text it is given, nothing else
            ids = self.tokenizer.encode(user_text)
        else:
            ids = self.tokenizer.encode_chat([new], add_generation_prompt=True)[0]
        if len(ids) > limit:
            raise ValueError(f"the message has {len(ids)} tokens, but the context window is "
                             f"{self.model.config.block_size} tokens and {self.answer_room} are kept for the answer: "
                             f"shorten it to fit in {limit}")
        if not self.is_chat:
            return ids
        while True:
            ids = self.tokenizer.encode_chat([*self.history, new], add_generation_prompt=True)[0]
            if len(ids) <= limit:
                return ids
            del self.history[:2]  # the oldest whole turn: a user message and its answer
            self.note = WINDOW_FULL

    def reply_stream(self, user_text: str) -> Iterator[str]:
        """The answer to `user_text`, piece by piece; both join the history when it ends or is closed.

        The prompt is checked now (ValueError before any token); the answer stops at `<|end|>` (or
        any marker) or after `max_new_tokens`. Closing the stream early keeps the partial answer, up to
        the last piece the reader was done with (it asked for the next one). A stream closed before its
        first read leaves the history as it was.
        Example: `print("".join(session.reply_stream("What is a token?")))`.
        """
        ids = self.prompt_ids(user_text)
        device = self.model.token_embedding.weight.device
        return self._stream(user_text, torch.tensor([ids], dtype=torch.long, device=device))

    def _stream(self, user_text: str, idx: torch.Tensor) -> Iterator[str]:
        text, shown = "", 0  # the answer so far, and how much of it the reader was done with
        try:
            for token in generate_stream(self.model, idx, self.max_new_tokens, temperature=self.temperature,
                                         top_k=self.top_k, generator=self.generator):
                if int(token) in self.stop_ids:
                    break
                text += self.tokenizer.decode([int(token)])
                if (end := first_marker(text)) < len(text):  # a marker spelled in characters ends it too
                    text = text[:end]  # never shown: held back below while it was being spelled
                    break
                if (ready := partial_marker(text)) > shown:  # hold back what may be a marker being spelled
                    yield text[shown:ready]
                    shown = ready  # once the reader asked for more: the history keeps what was shown
            if len(text) > shown:  # a held-back beginning that no marker followed
                yield text[shown:]
                shown = len(text)
        finally:  # runs at the end, on close() and on Ctrl-C: the history stays user, assistant, user, ...
            self.history += [{"role": "user", "content": user_text}, {"role": "assistant", "content": text[:shown]}]


def command(session: ChatSession, text: str, output: TextIO) -> bool:
    """Run a REPL command (`/reset`, `/temperature X`); False for `/quit`.

    Example: `command(session, "/temperature 0.5", sys.stdout)`.
    """
    name, _, arg = text.partition(" ")
    if name in ("/quit", "/exit"):
        return False
    if name == "/reset":
        session.reset()
        print("(the conversation was forgotten)", file=output)
    elif name == "/temperature":
        try:
            value = float(arg)
        except ValueError:
            print(f"error: /temperature needs a number >= 0 (0 means greedy), got {arg.strip()!r}", file=output)
            return True
        try:
            session.temperature = value
            print(f"(temperature is now {session.temperature:g})", file=output)
        except ValueError as e:  # a number, but not one to sample with: the reason says which
            print(f"error: /temperature: {e}", file=output)
    else:
        print(f"error: unknown command {name}; {HELP}", file=output)
    return True


def run_repl(session: ChatSession, input_fn: Callable[[str], str] = input, output: TextIO | None = None,
             prompt: str = "you> ") -> int:
    """Read a message, stream the answer, repeat, until `/quit`, end of input or Ctrl-C at the prompt.

    Ctrl-C during an answer stops that answer only; the partial answer stays in the history, so the
    model sees what it said. Bad input (an unknown character, a chat marker, too long) is reported
    and the loop goes on. Returns how many answers were given. Example: `run_repl(session)`.
    """
    output = output or sys.stdout  # looked up now, not at import: tests and notebooks replace it
    print(f"warning: {session.warning}" if session.warning else HELP, file=output)
    answers = 0
    while True:
        try:
            text = input_fn(prompt).strip()
        except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C at the prompt: the session ends
            print(file=output)
            return answers
        if re.fullmatch(r"/\w+( .*)?", text):
            if not command(session, text, output):
                return answers
            continue
        if not text:
            continue
        try:
            stream = session.reply_stream(text)
        except ValueError as e:
            print(f"error: {e}", file=output)
            continue
        if session.note:
            print(session.note, file=output)
        try:
            with closing(stream):  # closing it on Ctrl-C writes the partial answer to the history
                for piece in stream:
                    output.write(piece)
                    output.flush()
            print(file=output)
        except KeyboardInterrupt:
            print("\n(interrupted: the partial answer is kept)", file=output)
        answers += 1
