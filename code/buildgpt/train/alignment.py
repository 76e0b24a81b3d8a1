"""From a text completer to an assistant: supervised finetuning on chats, then DPO on preference pairs.

Both train in the book's one loop (`loop.train`) with their own batch source and loss.

- **SFT** is next-token prediction on rendered chats, with every target that is not the
  assistant's own text masked out (-100): the model learns to answer, not to write requests.
- **DPO** (Rafailov et al. 2023) needs no reward model. For a request with a preferred answer
  (chosen) and a worse one (rejected), it raises the policy's log-probability of the chosen
  answer relative to a frozen reference model (the SFT model) and lowers the rejected one's:

      loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))

  Each bracket is an "implicit reward"; their difference is the **margin**. At the start the
  policy is the reference, every reward is 0 and the loss is log 2 exactly.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from ..nn.loss import IGNORE_INDEX
from ..tokenizers.chat import END, ChatTokenizer

Chat = list[dict]  # messages: {"role": "user" | "assistant", "content": str}


def encode_example(tokenizer: ChatTokenizer, chat: Chat) -> tuple[list[int], list[int]]:
    """x and y of one chat: y[i] is the token after x[i] if the assistant wrote it, else -100.

    Example: `x, y = encode_example(tokenizer, [user_turn, assistant_turn])`.
    """
    if not any(m.get("role") == "assistant" for m in chat):
        raise ValueError(f"a training chat needs an assistant turn to learn from; this one has roles "
                         f"{[m.get('role') for m in chat]}")
    ids, scored = tokenizer.encode_chat(chat)
    return ids[:-1], [t if s else IGNORE_INDEX for t, s in zip(ids[1:], scored[1:])]


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(map(len, rows))
    return torch.tensor([row + [value] * (width - len(row)) for row in rows])


class _Examples:
    """Encoded examples per split that fit the window, drawn at random into padded batches (or all, in order).

    A batch is drawn from one *length bucket* (examples within `bucket_width` tokens of each other),
    chosen with probability in proportion to its size, so every example is as likely as with plain
    uniform draws, but a batch is padded only to its own examples' lengths, not to the longest
    example of the whole set (Hugging Face's "group by length").
    """

    def __init__(self, tokenizer: ChatTokenizer, splits: dict[str, list], block_size: int, encode,
                 bucket_width: int = 16):
        self.pad_id = tokenizer.special_tokens[END]
        self.examples, self.buckets = {}, {}
        for split, items in splits.items():
            encoded = [encode(item) for item in items]
            self.examples[split] = [e for e in encoded if max(map(len, e)) <= block_size]
            if not self.examples[split]:
                raise ValueError(f"no {split} example fits the window of {block_size} tokens "
                                 f"(of {len(items)}); use a model with a longer block_size")
            by_length: dict[int, list[int]] = {}
            for i, example in enumerate(self.examples[split]):
                by_length.setdefault(max(map(len, example)) // bucket_width, []).append(i)
            self.buckets[split] = list(by_length.values())

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None):
        """`batch_size` examples of `split` drawn at random from one length bucket, padded into (x, y).

        Example: `x, y = batches.batch("train", 32, torch.Generator().manual_seed(0))`.
        """
        examples, buckets = self._split(split), self.buckets[split]
        sizes = torch.tensor([len(b) for b in buckets], dtype=torch.float)
        bucket = buckets[torch.multinomial(sizes, 1, generator=generator).item()]
        return self.collate([examples[bucket[i]] for i in torch.randint(len(bucket), (batch_size,), generator=generator).tolist()])

    def in_order(self, split: str, batch_size: int):
        """Every example of `split` once, in order, as padded batches of up to `batch_size`: for exact means.

        Example: `sum(len(x) for x, _ in batches.in_order("val", 64))` counts the val rows.
        """
        examples = self._split(split)
        for start in range(0, len(examples), batch_size):
            yield self.collate(examples[start:start + batch_size])

    def _split(self, split: str) -> list:
        if split not in self.examples:
            raise ValueError(f"split is one of {sorted(self.examples)}, got {split!r}")
        return self.examples[split]

    def collate(self, examples: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded examples as one padded (x, y), laid out as the subclass trains on them."""
        raise NotImplementedError


class ChatBatches(_Examples):
    """SFT's batch source: (x, y) of random chats, padded with `<|end|>` in x and -100 in y.

    Example: `ChatBatches(tokenizer, {"train": chats, "val": val_chats}, 256).batch("train", 32)`.
    """

    def __init__(self, tokenizer: ChatTokenizer, splits: dict[str, list[Chat]], block_size: int):
        super().__init__(tokenizer, splits, block_size, lambda chat: encode_example(tokenizer, chat))

    def collate(self, examples: list) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*examples)
        return _pad(list(xs), self.pad_id), _pad(list(ys), IGNORE_INDEX)


class PreferenceBatches(_Examples):
    """DPO's batch source: (x, y) of chosen chats stacked over (x, y) of rejected ones, so row i pairs with
    row B + i. Items are (prompt, chosen answer, rejected answer).

    Example: `PreferenceBatches(tokenizer, {"train": [(prompt, good, bad)], "val": ...}, 256).batch("train", 16)`.
    """

    def __init__(self, tokenizer: ChatTokenizer, splits: dict[str, list[tuple[str, str, str]]], block_size: int):
        def encode(item):
            prompt, chosen, rejected = item
            if chosen == rejected:
                raise ValueError(f"the pair for {prompt!r} has two identical answers ({chosen!r})")
            return (*encode_example(tokenizer, chat_of(prompt, chosen)), *encode_example(tokenizer, chat_of(prompt, rejected)))

        super().__init__(tokenizer, splits, block_size, encode)

    def collate(self, examples: list) -> tuple[torch.Tensor, torch.Tensor]:
        xc, yc, xr, yr = zip(*examples)
        return _pad(list(xc + xr), self.pad_id), _pad(list(yc + yr), IGNORE_INDEX)


def chat_of(prompt: str, answer: str) -> Chat:
    """A one-turn chat. Example: `chat_of("Hi", "Ay")` is a user message then an assistant message."""
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def answer_logprobs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The log-probability (B,) the model gives each row's scored targets: the sum over its answer's tokens.

    Example: `answer_logprobs(model, *ChatBatches(...).batch("val", 8))`.
    """
    logits, _ = model(x)
    scored = y != IGNORE_INDEX
    token_logprobs = torch.gather(F.log_softmax(logits.float(), dim=-1), 2, y.clamp(min=0)[..., None])[..., 0]
    return (token_logprobs * scored).sum(dim=1)


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's mean loss over the pairs, and each pair's margin (the chosen reward minus the rejected one).

    Arguments are answer log-probabilities (B,) under the policy and the frozen reference.
    Example: `dpo_loss(lp_c, lp_r, ref_c, ref_r, beta=0.1)[0]` is log 2 when policy == reference.
    """
    margins = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
    return -F.logsigmoid(margins).mean(), margins


class DPOLoss:
    """A loss function for `loop.train`: DPO against a frozen copy of the reference model.

    With `nll_weight` > 0 it adds that much of the chosen answers' mean next-token loss (RPO, Pang
    et al. 2024; in TRL, `loss_type=["sigmoid", "sft"]` with `loss_weights=[1, nll_weight]`): DPO
    alone may lower the chosen answers' probability too, as long as the rejected ones' falls
    faster, and the SFT term keeps the chosen answers likely.
    Example: `train(policy, PreferenceBatches(...), config, loss_fn=DPOLoss(reference, beta=0.1))`.
    """

    def __init__(self, reference: torch.nn.Module, beta: float, nll_weight: float = 0.0):
        if beta <= 0 or nll_weight < 0:
            raise ValueError(f"beta must be positive and nll_weight not negative, got {beta} and {nll_weight}")
        self.reference, self.beta = reference.eval().requires_grad_(False), beta
        self.nll_weight = nll_weight

    def pair_logprobs(self, model: torch.nn.Module, batch) -> tuple[torch.Tensor, ...]:
        x, y = batch
        half = x.size(0) // 2
        policy = answer_logprobs(model, x, y)
        with torch.no_grad():
            reference = answer_logprobs(self.reference, x, y)
        return policy[:half], policy[half:], reference[:half], reference[half:]

    def __call__(self, model: torch.nn.Module, batch) -> torch.Tensor:
        chosen, *others = self.pair_logprobs(model, batch)
        loss = dpo_loss(chosen, *others, self.beta)[0]
        if self.nll_weight:
            chosen_targets = batch[1][: batch[1].size(0) // 2]
            loss = loss - self.nll_weight * chosen.sum() / (chosen_targets != IGNORE_INDEX).sum()
        return loss

    @torch.no_grad()
    def mean_margin(self, model: torch.nn.Module, batches: PreferenceBatches, split: str = "val",
                    batch_size: int = 64) -> float:
        """The mean margin over every pair of `split`: how far the policy prefers the chosen answers."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        try:
            margins = [dpo_loss(*self.pair_logprobs(model, tuple(t.to(device) for t in batch)), self.beta)[1]
                       for batch in batches.in_order(split, batch_size)]
            return torch.cat(margins).mean().item()
        finally:
            model.train(was_training)


LN2 = math.log(2)  # DPO's loss at the start, when the policy is the reference


def split_by_item(items: list, val_every: int = 10, seed: int = 0) -> dict[str, list]:
    """Shuffled items, every `val_every`-th to "val". Example: `split_by_item(chats)["train"]`."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    return {"train": [x for i, x in enumerate(shuffled) if i % val_every],
            "val": [x for i, x in enumerate(shuffled) if not i % val_every]}
