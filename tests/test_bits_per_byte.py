"""`bits_per_byte`: losses of models with different tokenizers, on one scale."""

from __future__ import annotations

import math

import pytest
import torch

from buildgpt.train.evaluate import bits_per_byte, split_loss


def test_hand_computed():
    # 4 tokens at ln 2 nats each: 4 bits in all, over 8 bytes.
    assert bits_per_byte(math.log(2), n_tokens=4, n_bytes=8) == pytest.approx(0.5)
    # Guessing uniformly among the 256 byte values costs 8 bits per byte.
    assert bits_per_byte(math.log(256), n_tokens=1000, n_bytes=1000) == pytest.approx(8.0)
    assert bits_per_byte(0.0, 3, 5) == 0.0


def test_same_text_same_cost_whatever_the_tokens():
    """One token for "ab", costing what "a" then "b" cost one character at a time: same bits per byte."""
    loss_a, loss_b = 1.3, 0.4
    per_char = bits_per_byte((loss_a + loss_b) / 2, n_tokens=2, n_bytes=2)
    per_pair = bits_per_byte(loss_a + loss_b, n_tokens=1, n_bytes=2)
    assert per_char == pytest.approx(per_pair) == pytest.approx((loss_a + loss_b) / 2 / math.log(2))


@pytest.mark.parametrize("loss, n_tokens, n_bytes, message", [
    (1.0, 0, 5, "at least one token and one byte"), (1.0, 5, 0, "at least one token and one byte"),
    (-0.1, 5, 5, "a cross-entropy loss is a number >= 0"), (math.nan, 5, 5, "a cross-entropy loss is a number >= 0"),
])
def test_rejects_impossible_inputs(loss, n_tokens, n_bytes, message):
    with pytest.raises(ValueError, match=message):
        bits_per_byte(loss, n_tokens, n_bytes)


class Uniform(torch.nn.Module):
    """Equal logits for every token of a vocabulary: the loss of each prediction is ln(vocab_size)."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, idx, targets=None):
        return torch.zeros(*idx.shape, self.vocab_size), None


def test_with_split_loss():
    """split_loss scores len(data) - 1 predictions; with one byte per token a uniform model over
    V tokens costs log2(V) bits per byte, and over two bytes per token half that."""
    data = torch.randint(0, 64, (101,), generator=torch.Generator().manual_seed(0))
    loss = split_loss(Uniform(64), data, block_size=16)
    assert loss == pytest.approx(math.log(64))
    assert bits_per_byte(loss, len(data) - 1, n_bytes=100) == pytest.approx(6.0)
    assert bits_per_byte(loss, len(data) - 1, n_bytes=200) == pytest.approx(3.0)
