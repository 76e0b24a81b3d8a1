"""Attention from scratch against PyTorch's kernel; the three multi-head modules compute one function."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from buildgpt.attention import (BatchedSelfAttention, Head, KVCache, MultiHeadAttention, causal_mask,
                                scaled_dot_product_attention)

N_EMBD, N_HEAD, T = 32, 4, 10


pytestmark = pytest.mark.usefixtures("one_thread")


def qkv(t_query: int, t_key: int, seed: int = 0, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 3, t_query, d, generator=g)
    k = torch.randn(2, 3, t_key, d, generator=g)
    v = torch.randn(2, 3, t_key, d, generator=g)
    return q, k, v


def offset_mask(t_query: int, t_key: int) -> torch.Tensor:
    """Built independently of `causal_mask`: query i sits at absolute position (t_key - t_query) + i."""
    query_pos = torch.arange(t_query)[:, None] + (t_key - t_query)
    key_pos = torch.arange(t_key)[None, :]
    return key_pos <= query_pos


def test_causal_equals_torch_sdpa():
    q, k, v = qkv(T, T)
    ours = scaled_dot_product_attention(q, k, v, causal=True)
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_non_causal_equals_torch_sdpa():
    q, k, v = qkv(T, T, seed=1)
    ours = scaled_dot_product_attention(q, k, v, causal=False)
    theirs = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("t_query,t_key", [(1, 7), (3, 7), (7, 7)])
def test_fewer_queries_than_keys_equals_torch_sdpa_with_explicit_mask(t_query, t_key):
    """The KV-cache case: the queries are the last positions, each sees every key up to itself."""
    assert torch.equal(causal_mask(t_query, t_key), offset_mask(t_query, t_key))
    q, k, v = qkv(t_query, t_key, seed=2)
    ours = scaled_dot_product_attention(q, k, v, causal=True)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=offset_mask(t_query, t_key))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_weights_rows_sum_to_one_and_zero_above_diagonal():
    q, k, v = qkv(T, T, seed=3)
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    assert weights.shape == (2, 3, T, T)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, T), atol=1e-6, rtol=0)
    above = ~torch.ones(T, T, dtype=torch.bool).tril()
    assert (weights[..., above] == 0).all()
    assert (weights[..., ~above] > 0).all()
    torch.testing.assert_close(out, weights @ v)
    # the first position can only look at itself
    assert torch.allclose(weights[..., 0, 0], torch.ones(()))


def test_head_records_weights():
    torch.manual_seed(0)
    head = Head(N_EMBD, 8).eval()
    x = torch.randn(2, T, N_EMBD)
    head(x)
    assert head.last_weights is None  # nothing kept unless asked
    head.record_weights = True
    out = head(x)
    assert out.shape == (2, T, 8)
    w = head.last_weights
    assert w.shape == (2, T, T)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, T), atol=1e-6, rtol=0)
    assert (w.triu(diagonal=1) == 0).all()


def make_modules(seed: int = 0, bias: bool = True):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(N_EMBD, N_HEAD, bias=bias).eval()
    batched = BatchedSelfAttention(N_EMBD, N_HEAD, bias=bias, fused=False).load_from_heads(mha).eval()
    fused = BatchedSelfAttention(N_EMBD, N_HEAD, bias=bias, fused=True).load_from_heads(mha).eval()
    return {"per_head": mha, "batched": batched, "fused": fused}


@pytest.mark.parametrize("bias", [True, False])
def test_three_implementations_agree_after_load_from_heads(bias):
    modules = make_modules(bias=bias)
    x = torch.randn(3, T, N_EMBD, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        outs = {name: m(x) for name, m in modules.items()}
    assert outs["per_head"].shape == (3, T, N_EMBD)
    for name in ("batched", "fused"):
        assert (outs[name] - outs["per_head"]).abs().max().item() < 1e-5, name
    # and they do not agree by accident: other weights give another output
    other = BatchedSelfAttention(N_EMBD, N_HEAD, bias=bias).eval()
    with torch.no_grad():
        assert (other(x) - outs["per_head"]).abs().max().item() > 1e-3


def test_load_from_heads_layout():
    """Rows of the fused qkv matrix: all heads' queries, then all keys, then all values."""
    mha = make_modules()["per_head"]
    batched = BatchedSelfAttention(N_EMBD, N_HEAD).load_from_heads(mha)
    hs = N_EMBD // N_HEAD
    for h, head in enumerate(mha.heads):
        for i, part in enumerate(("query", "key", "value")):
            rows = batched.qkv.weight[i * N_EMBD + h * hs: i * N_EMBD + (h + 1) * hs]
            assert torch.equal(rows, getattr(head, part).weight)
    assert torch.equal(batched.proj.weight, mha.proj.weight)
    assert torch.equal(batched.proj.bias, mha.proj.bias)


@pytest.mark.parametrize("name", ["per_head", "batched", "fused"])
def test_each_module_is_causal(name):
    module = make_modules(seed=1)[name]
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, T, N_EMBD, generator=g)
    with torch.no_grad():
        base = module(x)
        for t in range(T):
            changed = x.clone()
            changed[:, t] = torch.randn(2, N_EMBD, generator=g)
            out = module(changed)
            assert torch.equal(out[:, :t], base[:, :t]) or torch.allclose(out[:, :t], base[:, :t], atol=1e-6, rtol=0), \
                f"{name}: changing position {t} changed an earlier output"
            assert not torch.allclose(out[:, t], base[:, t]), "the changed position itself must change"


@pytest.mark.parametrize("fused", [False, True])
def test_kv_cache_one_token_at_a_time_equals_full_forward(fused):
    torch.manual_seed(2)
    attn = BatchedSelfAttention(N_EMBD, N_HEAD, fused=fused).eval()
    x = torch.randn(2, T, N_EMBD)
    cache = KVCache()
    assert cache.length == 0
    with torch.no_grad():
        full = attn(x)
        steps = [attn(x[:, :4], cache)]  # a prompt of 4, then one token at a time
        for t in range(4, T):
            steps.append(attn(x[:, t:t + 1], cache))
            assert cache.length == t + 1
    assert cache.k.shape == cache.v.shape == (2, N_HEAD, T, N_EMBD // N_HEAD)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_per_head_module_refuses_a_cache():
    mha = MultiHeadAttention(N_EMBD, N_HEAD)
    with pytest.raises(NotImplementedError, match="batched"):
        mha(torch.randn(1, 3, N_EMBD), KVCache())


@pytest.mark.parametrize("name", ["per_head", "batched", "fused"])
def test_last_weights_of_each_module(name):
    module = make_modules()[name]
    module.record_weights = True
    x = torch.randn(2, T, N_EMBD)
    with torch.no_grad():
        module(x)
    w = module.last_weights
    assert w.shape == (2, N_HEAD, T, T)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, N_HEAD, T), atol=1e-6, rtol=0)
    assert (w.triu(diagonal=1) == 0).all()


def test_recorded_weights_do_not_change_the_output():
    modules = make_modules()
    x = torch.randn(2, T, N_EMBD)
    with torch.no_grad():
        plain = modules["fused"](x)
        modules["fused"].record_weights = True
        recorded = modules["fused"](x)
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", [MultiHeadAttention, BatchedSelfAttention])
@pytest.mark.parametrize("n_embd,n_head", [(32, 3), (10, 4), (7, 2)])
def test_n_embd_must_divide_by_n_head(cls, n_embd, n_head):
    with pytest.raises(ValueError, match="divisible"):
        cls(n_embd, n_head)
