"""Asking a chat-tuned GPT many requests at once, and scoring its answers with the task's checker.

Requests of one prompt length run as one batch (`batched.decode_until`) until every answer has
written `<|end|>`: hundreds of answers take seconds on a CPU.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from ..data.instructions import Request, Verdict, check
from ..nn.model import GPT
from ..tokenizers.chat import END, ChatTokenizer
from .batched import decode_until


def answer_batch(model: GPT, prompts: torch.Tensor, end_id: int, max_new_tokens: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None) -> list[list[int]]:
    """Each prompt's answer (B rows of one length), up to but not including its `end_id`.

    Greedy when `temperature` is 0. An answer that has not ended when the window is full stops there.
    Example: `answer_batch(model, torch.tensor([prompt_ids]), tokenizer.special_tokens[END], 200)`.
    """
    room = model.config.block_size - prompts.size(1) + 1
    if room < 1:
        raise ValueError(f"prompts of {prompts.size(1)} tokens leave no room in a window of {model.config.block_size}")
    rows = decode_until(model, prompts, min(max_new_tokens, room), lambda t: t == end_id, temperature, generator)
    return [row[:-1] if row and row[-1] == end_id else row for row in rows]


def answer_requests(model: GPT, tokenizer: ChatTokenizer, prompts: list[str], max_new_tokens: int = 256,
                    temperature: float = 0.0, seed: int = 0) -> list[str]:
    """The model's answer to each user prompt, as text, in the prompts' order.

    An answer ends at `<|end|>`, or at any other chat marker it writes: that would begin another turn.
    Example: `answer_requests(model, tokenizer, ["Write one line for ROMEO with the word 'love'."])`.
    """
    encoded = [tokenizer.encode_chat([{"role": "user", "content": p}], add_generation_prompt=True)[0] for p in prompts]
    by_length = defaultdict(list)
    for i, ids in enumerate(encoded):
        by_length[len(ids)].append(i)
    answers: list[str] = [""] * len(prompts)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for indices in by_length.values():
        rows = answer_batch(model, torch.tensor([encoded[i] for i in indices]), tokenizer.special_tokens[END],
                            max_new_tokens, temperature, generator)
        for i, row in zip(indices, rows):
            turn_end = next((k for k, t in enumerate(row) if t in tokenizer.special_by_id), len(row))
            answers[i] = tokenizer.decode(row[:turn_end])
    return answers


@dataclass
class InstructionEval:
    """The answers to some requests and what the checker said of each."""

    requests: list[Request]
    answers: list[str]
    verdicts: list[Verdict]

    @property
    def accuracy(self) -> float:
        """The fraction of requests fully met."""
        return sum(v.met for v in self.verdicts) / len(self.verdicts)

    def rate(self, part: str) -> float:
        """The fraction that met one part: "speaker", "length" or "word"."""
        return sum(getattr(v, part) for v in self.verdicts) / len(self.verdicts)


def evaluate_requests(model: GPT, tokenizer: ChatTokenizer, requests: list[Request], **kwargs) -> InstructionEval:
    """Answer every request (greedy unless `temperature` is given) and check each answer.

    Example: `evaluate_requests(model, tokenizer, task.requests(200, seed=0)).accuracy`.
    """
    answers = answer_requests(model, tokenizer, [r.text() for r in requests], **kwargs)
    return InstructionEval(requests, answers, [check(r, a) for r, a in zip(requests, answers)])
