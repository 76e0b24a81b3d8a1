"""Measuring a model: estimate_loss over random batches, split_loss over a whole split, the unigram and
bigram floors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from buildgpt.data.batches import TokenBatches, get_batch
from buildgpt.nn.bigram import BigramLanguageModel
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.train.evaluate import bigram_loss, estimate_loss, split_loss, unigram_loss

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ramp() -> torch.Tensor:
    return torch.arange(1000, dtype=torch.long)


# ---------------------------------------------------------------- estimate_loss


@pytest.mark.parametrize("training", [True, False])
def test_estimate_loss_restores_mode(ramp, training):
    model = BigramLanguageModel(1000)
    model.train(training)
    losses = estimate_loss(model, TokenBatches(ramp[:800], ramp[800:], 8), eval_iters=3, batch_size=4,
                           generator=torch.Generator().manual_seed(0))
    assert model.training is training
    assert set(losses) == {"train", "val"}
    assert all(isinstance(v, float) and v > 0 for v in losses.values())


def test_estimate_loss_is_the_mean_over_batches(ramp):
    """Train is scored first, then val, each the mean of eval_iters batches drawn from the one generator."""
    model = BigramLanguageModel(1000)
    losses = estimate_loss(model, TokenBatches(ramp, ramp, 8), eval_iters=5, batch_size=4,
                           generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        per_batch = [model(*get_batch(ramp, 4, 8, generator=g))[1].item() for _ in range(10)]
    assert losses["train"] == pytest.approx(sum(per_batch[:5]) / 5)
    assert losses["val"] == pytest.approx(sum(per_batch[5:]) / 5)


def test_estimate_loss_of_one_split_draws_its_batches_first(ramp):
    model = BigramLanguageModel(1000)
    both = estimate_loss(model, TokenBatches(ramp, ramp, 8), 5, 4, generator=torch.Generator().manual_seed(7))
    val = estimate_loss(model, TokenBatches(ramp, ramp, 8), 5, 4, generator=torch.Generator().manual_seed(7),
                        splits=("val",))
    assert set(val) == {"val"} and val["val"] == pytest.approx(both["train"])  # same data, same first batches


def test_estimate_loss_runs_without_gradients(ramp):
    seen = []

    class Spy(BigramLanguageModel):
        def forward(self, idx, targets=None):
            seen.append((torch.is_grad_enabled(), self.training))
            return super().forward(idx, targets)

    model = Spy(1000)
    estimate_loss(model, TokenBatches(ramp, ramp, 4), eval_iters=2, batch_size=2)
    assert seen == [(False, False)] * 4  # two batches of each split
    assert model.training


def test_estimate_loss_uses_the_loss_function(ramp):
    """Whatever a batch holds, the loss function turns it into the number that is averaged."""
    class Pairs:
        def batch(self, split, batch_size, generator=None):
            return torch.full((batch_size,), 2.0 if split == "train" else 3.0), torch.ones(batch_size)

    calls = []

    def loss_fn(model, batch):
        calls.append(len(batch))
        a, b = batch
        return (a * b).mean()

    losses = estimate_loss(BigramLanguageModel(3), Pairs(), eval_iters=3, batch_size=5, loss_fn=loss_fn)
    assert losses == {"train": 2.0, "val": 3.0}
    assert calls == [2] * 6


# ---------------------------------------------------------------- split_loss


@pytest.mark.parametrize("length,block_size,batch_size", [(10, 4, 64), (9, 4, 1), (8, 4, 2), (2, 1, 3), (37, 5, 2),
                                                          (5, 8, 4)])
def test_split_loss_scores_every_next_token_once(length, block_size, batch_size):
    """A bigram model's prediction ignores context, so the exact answer is one cross-entropy over all pairs."""
    torch.manual_seed(0)
    model = BigramLanguageModel(7)
    data = torch.randint(0, 7, (length,), generator=torch.Generator().manual_seed(length))
    with torch.no_grad():
        expected = F.cross_entropy(model.token_logits(data[:-1]), data[1:]).item()
    assert split_loss(model, data, block_size, batch_size) == pytest.approx(expected, rel=1e-6)


def test_split_loss_by_hand_with_a_gpt():
    """With context, the windows matter: consecutive windows of block_size, the last one shorter."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)).train()
    data = torch.randint(0, 13, (23,), generator=torch.Generator().manual_seed(1))
    loss = split_loss(model, data, 8, 2)
    assert model.training  # split_loss restores the mode
    model.eval()
    with torch.no_grad():
        total = 0.0
        for start in range(0, 22, 8):  # windows 0..7, 8..15, 16..21 (predicting 1..22)
            x = data[start:min(start + 8, 22)][None]
            y = data[start + 1:min(start + 9, 23)][None]
            total += F.cross_entropy(model(x)[0][0], y[0], reduction="sum").item()
    assert loss == pytest.approx(total / 22, rel=1e-6)
    assert math.isfinite(loss)


def test_split_loss_needs_two_tokens():
    with pytest.raises(ValueError, match="at least 2"):
        split_loss(BigramLanguageModel(3), torch.tensor([1]), 4)


# ---------------------------------------------------------------- the unigram floor


def test_unigram_loss_is_the_cross_entropy_of_training_frequencies():
    train = torch.tensor([0, 0, 0, 1])  # P(0) = 3/4, P(1) = 1/4
    val = torch.tensor([0, 1])
    expected = -(math.log(3 / 4) + math.log(1 / 4)) / 2
    assert unigram_loss(train, val, vocab_size=3) == pytest.approx(expected)


def test_bigram_loss_is_the_cross_entropy_of_smoothed_pair_counts():
    train = torch.tensor([0, 1, 0, 1, 1])  # pairs 01, 10, 01, 11: from 0 always 1, from 1 half 0 half 1
    val = torch.tensor([0, 1, 1])  # pairs 01, 11
    # add-one smoothing over a vocabulary of 2: P(1|0) = (2+1)/(2+2), P(1|1) = (1+1)/(2+2)
    expected = -(math.log(3 / 4) + math.log(2 / 4)) / 2
    assert bigram_loss(train, val, vocab_size=2) == pytest.approx(expected)


def test_bigram_loss_matches_cross_entropy_of_the_log_count_table():
    generator = torch.Generator().manual_seed(0)
    train, val = torch.randint(0, 5, (500,), generator=generator), torch.randint(0, 5, (100,), generator=generator)
    counts = torch.ones(5, 5, dtype=torch.float64)
    for a, b in zip(train[:-1].tolist(), train[1:].tolist()):
        counts[a, b] += 1
    table = torch.log(counts / counts.sum(dim=1, keepdim=True))
    expected = torch.nn.functional.cross_entropy(table[val[:-1]], val[1:]).item()
    assert bigram_loss(train, val, vocab_size=5) == pytest.approx(expected)
    assert bigram_loss(train, val, 5) < unigram_loss(train, val, 5) + 0.1  # uniform data: context barely helps

