"""The KV cache: a growing buffer of keys and values; one position at a time equals the whole window."""

from __future__ import annotations

import pytest
import torch

from buildgpt.infer.kv_cache import KVCache, supports_cache
from buildgpt.nn.causal_attention import CausalSelfAttention
from buildgpt.nn.model import GPT, GPTConfig

N_EMBD, N_HEAD, T = 32, 4, 10

pytestmark = pytest.mark.usefixtures("one_thread")


def test_extend_returns_everything_so_far():
    cache = KVCache()
    assert cache.length == 0 and cache.k is None and cache.v is None
    g = torch.Generator().manual_seed(0)
    ks, vs = [], []
    for n in (5, 1, 1, 20, 3):  # past the first capacity (16) and past its double
        k, v = torch.randn(2, 3, n, 4, generator=g), torch.randn(2, 3, n, 4, generator=g)
        ks.append(k), vs.append(v)
        all_k, all_v = cache.extend(k, v)
        assert torch.equal(all_k, torch.cat(ks, dim=2)) and torch.equal(all_v, torch.cat(vs, dim=2))
        assert cache.length == sum(t.size(2) for t in ks)
        assert torch.equal(cache.k, all_k) and torch.equal(cache.v, all_v)


def test_buffer_grows_by_doubling():
    cache = KVCache()
    capacities = []
    for _ in range(40):
        cache.extend(torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2))
        capacities.append(cache._k.size(2))
    assert sorted(set(capacities)) == [16, 32, 64]


@pytest.mark.parametrize("options", [dict(), dict(position="rope"), dict(position="alibi"), dict(qk_norm=True)],
                         ids=str)
@pytest.mark.parametrize("fused", [False, True])
def test_kv_cache_one_token_at_a_time_equals_full_forward(fused, options):
    torch.manual_seed(2)
    attn = CausalSelfAttention(N_EMBD, N_HEAD, fused=fused, **options).eval()
    x = torch.randn(2, T, N_EMBD)
    cache = KVCache()
    with torch.no_grad():
        full = attn(x)
        steps = [attn(x[:, :4], cache)]  # a prompt of 4, then one token at a time
        for t in range(4, T):
            steps.append(attn(x[:, t:t + 1], cache))
            assert cache.length == t + 1
    assert cache.k.shape == cache.v.shape == (2, N_HEAD, T, N_EMBD // N_HEAD)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("attention,supported", [("per_head", False), ("batched", True), ("fused", True)])
def test_supports_cache(attention, supported):
    with torch.device("meta"):
        model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8, attention=attention))
    assert supports_cache(model) is supported
