"""Splits and batches: the contiguous train/val split, random windows, the TokenBatches batch source."""

from __future__ import annotations

import pytest
import torch

from buildgpt.data.batches import TokenBatches, get_batch, train_val_split


@pytest.fixture
def ramp() -> torch.Tensor:
    """Token ids 0..999: every value says where it sits, so windows are easy to check."""
    return torch.arange(1000, dtype=torch.long)


def test_split_proportions_and_contiguity(ramp):
    train, val = train_val_split(ramp)
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), ramp)
    assert torch.equal(train, ramp[:900]) and torch.equal(val, ramp[900:])
    train, val = train_val_split(ramp[:10], train_fraction=0.75)
    assert (len(train), len(val)) == (7, 3)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_split_fraction_must_be_inside_0_1(ramp, fraction):
    with pytest.raises(ValueError, match="train_fraction"):
        train_val_split(ramp, fraction)


def test_get_batch_shapes_and_shift():
    data = torch.randint(0, 65, (500,), generator=torch.Generator().manual_seed(0))
    x, y = get_batch(data, batch_size=16, block_size=8, generator=torch.Generator().manual_seed(1))
    assert x.shape == y.shape == (16, 8)
    assert x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    # every row is a window of the data, and y the window one further along
    n = len(data)
    for row_x, row_y in zip(x, y):
        starts = [s for s in range(n - 8) if torch.equal(data[s:s + 8], row_x)
                  and torch.equal(data[s + 1:s + 9], row_y)]
        assert starts


def test_get_batch_windows_at_their_offsets(ramp):
    x, y = get_batch(ramp, batch_size=64, block_size=16, generator=torch.Generator().manual_seed(3))
    starts = x[:, 0]
    offsets = torch.arange(16)
    assert torch.equal(x, ramp[starts[:, None] + offsets])
    assert torch.equal(y, ramp[starts[:, None] + offsets + 1])
    assert starts.min() >= 0 and (starts + 16).max() <= len(ramp) - 1


def test_get_batch_reaches_the_last_token():
    """With data of exactly block_size+1 tokens there is one window, and it is used."""
    data = torch.tensor([5, 6, 7, 8])
    x, y = get_batch(data, batch_size=4, block_size=3)
    assert torch.equal(x, torch.tensor([[5, 6, 7]] * 4))
    assert torch.equal(y, torch.tensor([[6, 7, 8]] * 4))


def test_get_batch_deterministic_with_seed(ramp):
    a = get_batch(ramp, 8, 4, generator=torch.Generator().manual_seed(42))
    b = get_batch(ramp, 8, 4, generator=torch.Generator().manual_seed(42))
    c = get_batch(ramp, 8, 4, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_get_batch_device(ramp):
    x, y = get_batch(ramp, 2, 4, device="cpu")
    assert x.device.type == y.device.type == "cpu"
    x, y = get_batch(ramp, 2, 4, device=torch.device("meta"))
    assert x.device.type == y.device.type == "meta"
    if torch.cuda.is_available():
        x, y = get_batch(ramp, 2, 4, device="cuda")
        assert x.is_cuda and y.is_cuda


@pytest.mark.parametrize("length", [0, 1, 8])
def test_get_batch_data_too_short(length):
    data = torch.arange(length)
    with pytest.raises(ValueError) as e:
        get_batch(data, batch_size=4, block_size=8)
    message = str(e.value)
    assert f"has {length} tokens" in message
    assert "block_size=8" in message and "needs 9" in message


def test_token_batches_draw_windows_of_each_split(ramp):
    """The batch source of plain language modelling: get_batch on the split asked for, same generator."""
    source = TokenBatches(ramp[:800], ramp[800:], block_size=6)
    for split, data in (("train", ramp[:800]), ("val", ramp[800:])):
        x, y = source.batch(split, 5, torch.Generator().manual_seed(4))
        ex, ey = get_batch(data, 5, 6, generator=torch.Generator().manual_seed(4))
        assert torch.equal(x, ex) and torch.equal(y, ey)
        assert x.shape == (5, 6)
    assert (source.batch("train", 64)[1] < 800).all()  # a train window never reaches into val
    assert (source.batch("val", 64)[0] >= 800).all()
    with pytest.raises(KeyError):
        source.batch("test", 2)


