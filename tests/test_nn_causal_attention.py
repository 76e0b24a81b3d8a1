"""The attention the GPT runs: `attend` and CausalSelfAttention equal the plain versions, with every option.

Plain version for the page, fast version for the package, tested equal: MultiHeadAttention (per head) ==
BatchedSelfAttention (heads batched) == CausalSelfAttention written out == CausalSelfAttention fused.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from buildgpt.nn.attention import MultiHeadAttention, attention_weights, scaled_dot_product_attention
from buildgpt.nn.batched_attention import BatchedSelfAttention
from buildgpt.nn.causal_attention import CausalSelfAttention, attend, causal_mask
from buildgpt.nn.positions import alibi_bias

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


@pytest.mark.parametrize("t_query,t_key", [(1, 7), (3, 7), (7, 7), (1, 1)])
def test_causal_mask_is_the_offset_lower_triangle(t_query, t_key):
    assert torch.equal(causal_mask(t_query, t_key), offset_mask(t_query, t_key))


# ---------------------------------------------------------------- attend, the written-out path


def test_attend_equals_the_plain_attention():
    q, k, v = qkv(T, T)
    out, weights = attend(q, k, v)
    torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=0)
    torch.testing.assert_close(weights, attention_weights(q, k), atol=1e-6, rtol=0)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5, rtol=0)


@pytest.mark.parametrize("t_query,t_key", [(1, 7), (3, 7), (7, 7)])
def test_fewer_queries_than_keys_equals_torch_sdpa_with_explicit_mask(t_query, t_key):
    """The KV-cache case: the queries are the last positions, each sees every key up to itself."""
    q, k, v = qkv(t_query, t_key, seed=2)
    out, _ = attend(q, k, v)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=offset_mask(t_query, t_key))
    torch.testing.assert_close(out, theirs, atol=1e-5, rtol=0)


def test_one_query_sees_every_key_as_the_non_causal_kernel():
    """The newest position may look at all earlier ones: no mask at all, as PyTorch's non-causal kernel."""
    q, k, v = qkv(1, T, seed=1)
    out, weights = attend(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=0)
    assert (weights > 0).all()


@pytest.mark.parametrize("t_query", [T, 3, 1])
def test_bias_is_added_to_the_scores(t_query):
    """An additive bias (ALiBi's) equals PyTorch's kernel given the bias as a float mask, -inf in the future."""
    q, k, v = qkv(t_query, T, seed=5)
    bias = alibi_bias(3, t_query, T)
    out, weights = attend(q, k, v, bias)
    mask = bias.masked_fill(~offset_mask(t_query, T), float("-inf"))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5, rtol=0)
    no_bias, _ = attend(q, k, v)
    assert not torch.allclose(out, no_bias, atol=1e-3)  # the bias does act


def test_attend_dropout_only_in_training():
    q, k, v = qkv(T, T, seed=6)
    plain, _ = attend(q, k, v)
    torch.testing.assert_close(attend(q, k, v, dropout=0.5, training=False)[0], plain)
    torch.manual_seed(0)
    dropped, weights = attend(q, k, v, dropout=0.5, training=True)
    assert not torch.allclose(dropped, plain)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, T), atol=1e-6, rtol=0)  # weights before dropout


# ---------------------------------------------------------------- four modules, one function


def make_modules(seed: int = 0, bias: bool = True, **options) -> dict[str, torch.nn.Module]:
    """The per-head module, and the batched and causal ones loaded with its weights."""
    torch.manual_seed(seed)
    mha = MultiHeadAttention(N_EMBD, N_HEAD, bias=bias).eval()
    batched = BatchedSelfAttention(N_EMBD, N_HEAD, bias=bias).load_from_heads(mha).eval()
    modules = {"per_head": mha, "batched": batched}
    for name, fused in (("written_out", False), ("fused", True)):
        causal = CausalSelfAttention(N_EMBD, N_HEAD, bias=bias, fused=fused, **options).eval()
        causal.load_state_dict(batched.state_dict(), strict=not options.get("qk_norm"))
        modules[name] = causal
    return modules


@pytest.mark.parametrize("bias", [True, False])
def test_plain_batched_and_causal_modules_agree(bias):
    modules = make_modules(bias=bias)
    x = torch.randn(3, T, N_EMBD, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        outs = {name: m(x) for name, m in modules.items()}
    assert outs["per_head"].shape == (3, T, N_EMBD)
    for name in ("batched", "written_out", "fused"):
        torch.testing.assert_close(outs[name], outs["per_head"], atol=1e-5, rtol=0, msg=name)
    # and they do not agree by accident: other weights give another output
    other = CausalSelfAttention(N_EMBD, N_HEAD, bias=bias).eval()
    with torch.no_grad():
        assert (other(x) - outs["per_head"]).abs().max().item() > 1e-3


def test_load_from_heads_is_inherited():
    modules = make_modules()
    fused = CausalSelfAttention(N_EMBD, N_HEAD).load_from_heads(modules["per_head"])
    assert torch.equal(fused.qkv.weight, modules["batched"].qkv.weight)


@pytest.mark.parametrize("options", [dict(position="rope"), dict(position="alibi"), dict(qk_norm=True),
                                     dict(position="rope", qk_norm=True)], ids=str)
def test_fused_equals_written_out_with_every_option(options):
    modules = make_modules(seed=1, **options)
    with torch.no_grad():
        for m in modules.values():  # a qk-norm gain that is not all ones
            if getattr(m, "q_norm", None) is not None:
                m.q_norm.weight.copy_(torch.linspace(0.5, 1.5, N_EMBD // N_HEAD))
        x = torch.randn(2, T, N_EMBD)
        written, fused = modules["written_out"](x), modules["fused"](x)
        torch.testing.assert_close(fused, written, atol=1e-5, rtol=0)
        assert not torch.allclose(written, modules["batched"](x), atol=1e-4)  # the option does act


@pytest.mark.parametrize("name", ["per_head", "batched", "written_out", "fused", "rope", "alibi"])
def test_each_module_is_causal(name):
    if name in ("rope", "alibi"):
        module = make_modules(seed=1, position=name)["fused"]
    else:
        module = make_modules(seed=1)[name]
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, T, N_EMBD, generator=g)
    with torch.no_grad():
        base = module(x)
        for t in range(T):
            changed = x.clone()
            changed[:, t] = torch.randn(2, N_EMBD, generator=g)
            out = module(changed)
            torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0,
                                       msg=f"{name}: changing position {t} changed an earlier output")
            assert not torch.allclose(out[:, t], base[:, t]), "the changed position itself must change"


# ---------------------------------------------------------------- recorded weights


@pytest.mark.parametrize("fused", [False, True])
def test_weights_kept_only_when_recorded(fused):
    module = make_modules()["fused" if fused else "written_out"]
    x = torch.randn(2, T, N_EMBD)
    with torch.no_grad():
        plain = module(x)
        assert module.last_weights is None  # nothing kept unless asked
        module.record_weights = True
        recorded = module(x)
    torch.testing.assert_close(recorded, plain, atol=1e-5, rtol=0)  # recording does not change the output
    w = module.last_weights
    assert w.shape == (2, N_HEAD, T, T)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, N_HEAD, T), atol=1e-6, rtol=0)
    assert (w.triu(diagonal=1) == 0).all()


def test_recorded_weights_equal_the_per_head_weights():
    modules = make_modules()
    x = torch.randn(2, T, N_EMBD)
    modules["fused"].record_weights = True
    with torch.no_grad():
        modules["per_head"](x)
        modules["fused"](x)
    torch.testing.assert_close(modules["fused"].last_weights, modules["per_head"].last_weights, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- arguments


def test_unknown_position_is_refused():
    with pytest.raises(ValueError, match="rope"):
        CausalSelfAttention(N_EMBD, N_HEAD, position="learned")


@pytest.mark.parametrize("n_embd,n_head", [(32, 3), (10, 4), (7, 2)])
def test_n_embd_must_divide_by_n_head(n_embd, n_head):
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(n_embd, n_head)
