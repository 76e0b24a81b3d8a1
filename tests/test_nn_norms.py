"""Normalisation: the written-out LayerNorm and the layer equal PyTorch's; RMSNorm equals PyTorch's."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from buildgpt.nn.norms import LayerNorm, RMSNorm, layer_norm


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_equals_torch(bias):
    """Both the written-out function and the layer (on PyTorch's kernel) equal nn.LayerNorm."""
    g = torch.Generator().manual_seed(0)
    ours = LayerNorm(24, bias=bias)
    theirs = nn.LayerNorm(24, bias=bias)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(24, generator=g))
        theirs.weight.copy_(ours.weight)
        if bias:
            ours.bias.copy_(torch.randn(24, generator=g))
            theirs.bias.copy_(ours.bias)
    assert (ours.bias is None) == (not bias)
    x = torch.randn(4, 7, 24, generator=g) * 3 + 1.5
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(layer_norm(x, ours.weight, ours.bias), theirs(x), atol=1e-5, rtol=0)


def test_written_out_layernorm_gradients_equal_torch():
    x = (torch.randn(3, 5, 16) * 2 + 1).requires_grad_()
    weight, bias = torch.randn(16, requires_grad=True), torch.randn(16, requires_grad=True)
    grad_out = torch.randn(3, 5, 16)
    ours = torch.autograd.grad(layer_norm(x, weight, bias), (x, weight, bias), grad_out)
    theirs = torch.autograd.grad(nn.functional.layer_norm(x, (16,), weight, bias), (x, weight, bias), grad_out)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_layernorm_normalises_each_position():
    x = torch.randn(3, 5, 64) * 10 - 4
    y = LayerNorm(64)(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(3, 5), atol=1e-3, rtol=0)


def test_rmsnorm_matches_torch():
    torch.manual_seed(0)
    ours, theirs = RMSNorm(24), torch.nn.RMSNorm(24, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    x = torch.randn(4, 7, 24) * 3
    assert (ours(x) - theirs(x)).abs().max() < 1e-5


def test_rmsnorm_gives_unit_root_mean_square():
    y = RMSNorm(32)(torch.randn(2, 5, 32) * 7 + 3)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(2, 5), atol=1e-4, rtol=0)
