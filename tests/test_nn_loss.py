"""The language-modelling loss: PyTorch's cross-entropy, and masked targets (IGNORE_INDEX) that do not count."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from buildgpt.nn.loss import IGNORE_INDEX, cross_entropy


def test_cross_entropy_matches_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, 11, generator=g)
    targets = torch.randint(0, 11, (4, 7), generator=g)
    expected = F.cross_entropy(logits.view(-1, 11), targets.view(-1))
    assert torch.allclose(cross_entropy(logits, targets), expected)
    assert cross_entropy(logits, targets).shape == ()
    # uniform logits give ln(V)
    assert torch.isclose(cross_entropy(torch.zeros(2, 3, 11), targets[:2, :3]), torch.log(torch.tensor(11.0)))


def test_cross_entropy_non_contiguous_input():
    logits = torch.randn(7, 4, 11).transpose(0, 1)  # (4, 7, 11), not contiguous
    targets = torch.randint(0, 11, (7, 4)).t()
    expected = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))
    assert torch.allclose(cross_entropy(logits, targets), expected)


def test_masked_targets_do_not_count():
    """The loss is the mean over the unmasked positions only, whatever the logits at the masked ones."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, 9, generator=g)
    targets = torch.randint(0, 9, (3, 6), generator=g)
    mask = torch.rand(3, 6, generator=g) < 0.5
    mask[0, 0] = False  # at least one position counts
    masked = targets.masked_fill(mask, IGNORE_INDEX)
    kept = ~mask
    expected = F.cross_entropy(logits[kept], targets[kept])
    torch.testing.assert_close(cross_entropy(logits, masked), expected)
    # the logits at masked positions do not matter
    other = logits.clone()
    other[mask] = torch.randn(int(mask.sum()), 9, generator=g) * 100
    torch.testing.assert_close(cross_entropy(other, masked), expected)
    # nor do they get a gradient
    logits.requires_grad_()
    cross_entropy(logits, masked).backward()
    assert (logits.grad[mask] == 0).all() and (logits.grad[kept] != 0).any()


def test_one_scored_position_is_its_own_loss():
    logits = torch.zeros(1, 2, 4)
    loss = cross_entropy(logits, torch.tensor([[1, IGNORE_INDEX]]))
    assert math.isclose(loss.item(), math.log(4), rel_tol=1e-6)
