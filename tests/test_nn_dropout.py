"""Our CPU dropout: the keep probability, the scaling, the gradient, and PyTorch's statistics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from buildgpt.nn.dropout import LEVELS, Dropout, dropout, keep_mask

N = 1 << 20


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_keep_rate_in_every_16_bit_lane(p):
    torch.manual_seed(0)
    keep, keep_probability = keep_mask(torch.Size([N]), p)
    assert keep_probability == 1 - round(p * LEVELS) / LEVELS
    sigma = (keep_probability * (1 - keep_probability) / (N / 4)) ** 0.5
    # each 64-bit word feeds four elements: every lane must be a fair coin, not only their mean
    lane_rates = keep.view(-1, 4).float().mean(0)
    assert (lane_rates - keep_probability).abs().max() < 5 * sigma, lane_rates


def test_kept_values_scaled_dropped_zero_and_gradient_is_the_same_mask():
    torch.manual_seed(1)
    x = (torch.rand(1000, 37) + 0.5).requires_grad_()  # odd size: not a multiple of four
    y = dropout(x, 0.2)
    kept = y != 0
    keep_probability = 1 - round(0.2 * LEVELS) / LEVELS
    torch.testing.assert_close(y[kept], x[kept] / keep_probability)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / keep_probability)


def test_same_statistics_as_torch_dropout():
    """Mean preserved and variance x²·p/(1-p), as F.dropout (whose mask cannot be shared)."""
    torch.manual_seed(2)
    x = torch.full((N,), 3.0)
    for out in (dropout(x, 0.2), F.dropout(x, 0.2)):
        assert abs(out.mean().item() - 3.0) < 0.02
        assert abs(out.var().item() - 9.0 * 0.2 / 0.8) < 0.05
        assert abs((out == 0).float().mean().item() - 0.2) < 0.003


def test_seeded_masks_repeat_and_differ_between_calls():
    torch.manual_seed(3)
    a, b = dropout(torch.ones(4096), 0.5), dropout(torch.ones(4096), 0.5)
    torch.manual_seed(3)
    assert torch.equal(dropout(torch.ones(4096), 0.5), a)
    assert not torch.equal(a, b)


def test_non_contiguous_input():
    torch.manual_seed(4)
    x = torch.randn(64, 48).t()
    y = dropout(x, 0.3)
    assert y.shape == x.shape
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - round(0.3 * LEVELS) / LEVELS))


def test_identity_in_eval_mode_and_at_p_zero():
    x = torch.randn(10, 10)
    layer = Dropout(0.5).eval()
    assert layer(x) is x
    assert dropout(x, 0.0) is x
    assert dropout(x, 0.5, training=False) is x
    assert "p=0.5" in repr(layer)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, 0.999995])  # the last rounds to 1 in the 16-bit mask
def test_bad_probability_is_refused(p):
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(torch.ones(3), p)
