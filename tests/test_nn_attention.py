"""Plain attention, as chapter 2 writes it: the mask, the weights, one head, many heads, against PyTorch's kernel."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from buildgpt.nn.attention import Head, MultiHeadAttention, attention_weights, causal_mask, scaled_dot_product_attention

N_EMBD, N_HEAD, T = 32, 4, 10

pytestmark = pytest.mark.usefixtures("one_thread")


def qkv(t: int = T, seed: int = 0, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 3, t, d, generator=g) for _ in range(3))


@pytest.mark.parametrize("t", [1, 2, 7])
def test_causal_mask_lets_each_position_see_the_past_and_itself(t):
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    assert torch.equal(causal_mask(t), j <= i)


@pytest.mark.parametrize("t", [1, 2, T, 33])
def test_plain_attention_equals_torch_sdpa(t):
    """The page's formula and PyTorch's causal kernel compute the same function."""
    q, k, v = qkv(t)
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v), theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(attention_weights(q, k) @ v, theirs, atol=1e-5, rtol=0)


def test_plain_attention_gradients_equal_torch_sdpa():
    q, k, v = (t.requires_grad_() for t in qkv(seed=4))
    grad_out = torch.randn(2, 3, T, 8)
    ours = torch.autograd.grad(scaled_dot_product_attention(q, k, v), (q, k, v), grad_out)
    theirs = torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, is_causal=True), (q, k, v), grad_out)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_weights_rows_sum_to_one_and_zero_above_diagonal():
    q, k, v = qkv(seed=3)
    weights = attention_weights(q, k)
    out = scaled_dot_product_attention(q, k, v)
    assert weights.shape == (2, 3, T, T)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, T), atol=1e-6, rtol=0)
    above = ~torch.ones(T, T, dtype=torch.bool).tril()
    assert (weights[..., above] == 0).all()
    assert (weights[..., ~above] > 0).all()
    torch.testing.assert_close(out, weights @ v)
    # the first position can only look at itself
    assert torch.allclose(weights[..., 0, 0], torch.ones(()))


def test_head_keeps_the_weights_of_its_last_call():
    torch.manual_seed(0)
    head = Head(N_EMBD, 8).eval()
    assert head.last_weights is None  # nothing before the first call
    x = torch.randn(2, T, N_EMBD)
    out = head(x)
    assert out.shape == (2, T, 8)
    w = head.last_weights
    assert w.shape == (2, T, T) and not w.requires_grad
    torch.testing.assert_close(w.sum(-1), torch.ones(2, T), atol=1e-6, rtol=0)
    assert (w.triu(diagonal=1) == 0).all()
    torch.testing.assert_close(w, attention_weights(head.query(x), head.key(x)))
    torch.testing.assert_close(out, w @ head.value(x))


def test_multi_head_is_the_heads_concatenated_then_projected():
    torch.manual_seed(1)
    mha = MultiHeadAttention(N_EMBD, N_HEAD).eval()
    x = torch.randn(2, T, N_EMBD)
    with torch.no_grad():
        expected = mha.proj(torch.cat([h(x) for h in mha.heads], dim=-1))
        torch.testing.assert_close(mha(x), expected)
    assert mha.last_weights.shape == (2, N_HEAD, T, T)
    assert torch.equal(mha.last_weights[:, 2], mha.heads[2].last_weights)


@pytest.mark.parametrize("n_embd,n_head", [(32, 3), (10, 4), (7, 2)])
def test_n_embd_must_divide_by_n_head(n_embd, n_head):
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(n_embd, n_head)
