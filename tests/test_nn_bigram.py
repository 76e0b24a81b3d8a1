"""The bigram model: shapes, its loss before and after training, generation."""

from __future__ import annotations

import math

import pytest
import torch

from buildgpt.data.batches import TokenBatches, get_batch, train_val_split
from buildgpt.nn.bigram import BigramLanguageModel
from buildgpt.tokenizers.chars import CharTokenizer
from buildgpt.train.loop import History, TrainConfig, train


@pytest.fixture(scope="module")
def shakespeare(shakespeare_text):
    tok = CharTokenizer.from_text(shakespeare_text)
    ids = torch.tensor(tok.encode(shakespeare_text), dtype=torch.long)
    return tok, ids


def test_forward_shapes_and_no_loss_without_targets():
    torch.manual_seed(0)
    model = BigramLanguageModel(11)
    idx = torch.randint(0, 11, (4, 7))
    logits, loss = model(idx)
    assert logits.shape == (4, 7, 11)
    assert loss is None
    logits2, loss = model(idx, idx)
    assert torch.equal(logits, logits2)
    assert loss.shape == () and loss.item() > 0
    # the logits of a character are its row of the table, whatever came before
    assert torch.equal(logits[0, 0], model.token_logits.weight[idx[0, 0]])


def test_initial_loss_close_to_uniform(shakespeare):
    tok, ids = shakespeare
    torch.manual_seed(1337)
    model = BigramLanguageModel(tok.vocab_size)
    x, y = get_batch(ids, 256, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, loss = model(x, y)
    uniform = math.log(tok.vocab_size)  # 4.17 for 65 characters
    # N(0, 1) initial logits cost about half a nat more than exactly uniform predictions
    assert uniform - 0.1 < loss.item() < uniform + 0.75
    with torch.no_grad():
        model.token_logits.weight.zero_()
        _, loss = model(x, y)
    assert loss.item() == pytest.approx(uniform, abs=1e-5)


def test_training_reduces_val_loss(shakespeare):
    tok, ids = shakespeare
    train_data, val_data = train_val_split(ids)
    torch.manual_seed(1337)
    model = BigramLanguageModel(tok.vocab_size)
    config = TrainConfig(max_iters=300, eval_interval=100, eval_iters=20, batch_size=32, learning_rate=3e-2)
    history = train(model, TokenBatches(train_data, val_data, block_size=8), config, progress=False)
    assert isinstance(history, History)
    assert history.steps == [0, 100, 200, 300]
    assert len(history.train) == len(history.val) == 4
    assert history.val[0] > 4.0
    assert history.final_val < 3.0
    assert history.final_val < history.val[0] - 1.0
    assert model.training  # train leaves the model in training mode


def test_training_is_reproducible(shakespeare):
    _, ids = shakespeare
    train_data, val_data = train_val_split(ids[:20_000])
    config = TrainConfig(max_iters=20, eval_interval=10, eval_iters=2, learning_rate=3e-2)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(train(BigramLanguageModel(65), TokenBatches(train_data, val_data, 8), config, progress=False))
    for field in ("steps", "train", "val", "lr", "tokens", "best_val", "best_step"):
        assert getattr(runs[0], field) == getattr(runs[1], field), field  # not `seconds`: wall time varies


def test_generate_length_range_and_prompt(shakespeare):
    tok, _ = shakespeare
    model = BigramLanguageModel(tok.vocab_size)
    prompt = torch.tensor([tok.encode("ROMEO:"), tok.encode("JULIET")])
    out = model.generate(prompt, 50, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 6 + 50)
    assert torch.equal(out[:, :6], prompt)
    assert out.dtype == torch.long
    assert out.min() >= 0 and out.max() < tok.vocab_size
    assert len(tok.decode(out[0])) == 56
    assert torch.equal(model.generate(prompt, 0), prompt)


def test_generate_reproducible_with_seeded_generator():
    torch.manual_seed(0)
    model = BigramLanguageModel(20)
    prompt = torch.zeros((1, 1), dtype=torch.long)
    a = model.generate(prompt, 100, generator=torch.Generator().manual_seed(5))
    b = model.generate(prompt, 100, generator=torch.Generator().manual_seed(5))
    c = model.generate(prompt, 100, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_generate_follows_the_table():
    """With a table that makes each character certain to follow the previous, the output is fixed."""
    model = BigramLanguageModel(5)
    with torch.no_grad():
        model.token_logits.weight.fill_(-1e9)
        for i in range(5):
            model.token_logits.weight[i, (i + 1) % 5] = 0.0
    out = model.generate(torch.tensor([[3]]), 7)
    assert out.tolist() == [[3, 4, 0, 1, 2, 3, 4, 0]]


def test_generate_rejects_bad_arguments():
    model = BigramLanguageModel(5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(torch.zeros((1, 1), dtype=torch.long), -1)
    with pytest.raises(ValueError, match="prompt"):
        model.generate(torch.zeros((1, 0), dtype=torch.long), 5)
    with pytest.raises(ValueError, match="prompt"):
        model.generate(torch.zeros((0, 3), dtype=torch.long), 5)
