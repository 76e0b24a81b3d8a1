"""Exercise 1: the heads as a batch dimension compute the function of the per-head module."""

from __future__ import annotations

import pytest
import torch

from buildgpt.nn.attention import MultiHeadAttention
from buildgpt.nn.batched_attention import BatchedSelfAttention

N_EMBD, N_HEAD, T = 32, 4, 10

pytestmark = pytest.mark.usefixtures("one_thread")


def pair(seed: int = 0, bias: bool = True):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(N_EMBD, N_HEAD, bias=bias).eval()
    return mha, BatchedSelfAttention(N_EMBD, N_HEAD, bias=bias).load_from_heads(mha).eval()


@pytest.mark.parametrize("bias", [True, False])
def test_batched_equals_per_head_after_load_from_heads(bias):
    mha, batched = pair(bias=bias)
    x = torch.randn(3, T, N_EMBD, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = mha(x)
        torch.testing.assert_close(batched(x), expected, atol=1e-5, rtol=0)
    assert expected.shape == (3, T, N_EMBD)
    torch.testing.assert_close(batched.last_weights, mha.last_weights, atol=1e-6, rtol=0)
    # and they do not agree by accident: other weights give another output
    other = BatchedSelfAttention(N_EMBD, N_HEAD, bias=bias).eval()
    with torch.no_grad():
        assert (other(x) - expected).abs().max().item() > 1e-3


def test_load_from_heads_layout():
    """Rows of the fused qkv matrix: all heads' queries, then all keys, then all values."""
    mha, batched = pair()
    hs = N_EMBD // N_HEAD
    for h, head in enumerate(mha.heads):
        for i, part in enumerate(("query", "key", "value")):
            rows = batched.qkv.weight[i * N_EMBD + h * hs: i * N_EMBD + (h + 1) * hs]
            assert torch.equal(rows, getattr(head, part).weight)
    assert torch.equal(batched.proj.weight, mha.proj.weight)
    assert torch.equal(batched.proj.bias, mha.proj.bias)


def test_gradients_equal_per_head():
    mha, batched = pair(seed=2)
    x = torch.randn(2, T, N_EMBD, generator=torch.Generator().manual_seed(3))
    mha.train(), batched.train()  # dropout 0: the same function in train mode
    mha(x).square().sum().backward()
    batched(x).square().sum().backward()
    torch.testing.assert_close(batched.proj.weight.grad, mha.proj.weight.grad, atol=1e-5, rtol=1e-4)
    q_rows = batched.qkv.weight.grad[: N_EMBD // N_HEAD]
    torch.testing.assert_close(q_rows, mha.heads[0].query.weight.grad, atol=1e-5, rtol=1e-4)


def test_last_weights_are_causal_distributions():
    _, batched = pair()
    with torch.no_grad():
        batched(torch.randn(2, T, N_EMBD))
    w = batched.last_weights
    assert w.shape == (2, N_HEAD, T, T)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, N_HEAD, T), atol=1e-6, rtol=0)
    assert (w.triu(diagonal=1) == 0).all()


@pytest.mark.parametrize("n_embd,n_head", [(32, 3), (10, 4), (7, 2)])
def test_n_embd_must_divide_by_n_head(n_embd, n_head):
    with pytest.raises(ValueError, match="divisible"):
        BatchedSelfAttention(n_embd, n_head)
