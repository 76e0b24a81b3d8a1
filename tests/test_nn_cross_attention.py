"""Cross-attention (chapter 2): shapes, PyTorch's kernel and nn.MultiheadAttention, no mask, clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from buildgpt.nn.cross_attention import CrossAttention

B, T, S, N_EMBD, HEAD_SIZE = 2, 5, 7, 32, 16

pytestmark = pytest.mark.usefixtures("one_thread")


def inputs(seed: int = 0, t: int = T, s: int = S):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, t, N_EMBD, generator=g), torch.randn(B, s, N_EMBD, generator=g)


@pytest.mark.parametrize("t,s", [(T, S), (S, T), (1, 9), (4, 1)])
def test_shapes_follow_the_queries_and_the_context(t, s):
    torch.manual_seed(0)
    cross = CrossAttention(N_EMBD, HEAD_SIZE)
    x, context = inputs(t=t, s=s)
    out = cross(x, context)
    assert out.shape == (B, t, HEAD_SIZE)
    assert cross.last_weights.shape == (B, t, s) and not cross.last_weights.requires_grad
    torch.testing.assert_close(cross.last_weights.sum(-1), torch.ones(B, t), atol=1e-6, rtol=0)


def test_equals_torch_sdpa_on_its_own_projections():
    torch.manual_seed(1)
    cross = CrossAttention(N_EMBD, HEAD_SIZE)
    x, context = inputs(seed=1)
    with torch.no_grad():
        theirs = F.scaled_dot_product_attention(cross.query(x), cross.key(context), cross.value(context))
        torch.testing.assert_close(cross(x, context), theirs, atol=1e-5, rtol=0)


def test_equals_torch_multihead_attention_with_copied_weights():
    """One head as wide as the model, no biases, an identity output projection: nn.MultiheadAttention's special case."""
    torch.manual_seed(2)
    cross = CrossAttention(N_EMBD, N_EMBD)
    mha = torch.nn.MultiheadAttention(N_EMBD, num_heads=1, bias=False, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([cross.query.weight, cross.key.weight, cross.value.weight]))
        mha.out_proj.weight.copy_(torch.eye(N_EMBD))
        x, context = inputs(seed=2)
        theirs, their_weights = mha(x, context, context)
        torch.testing.assert_close(cross(x, context), theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(cross.last_weights, their_weights, atol=1e-6, rtol=0)


def test_every_position_reads_all_of_the_context():
    """No mask: every weight is positive, and changing any context position (even the last) moves every output."""
    torch.manual_seed(3)
    cross = CrossAttention(N_EMBD, HEAD_SIZE)
    x, context = inputs(seed=3)
    before = cross(x, context)
    assert (cross.last_weights > 0).all()
    for s in (0, S - 1):
        changed = context.clone()
        changed[:, s] += 1.0
        moved = (cross(x, changed) - before).abs().amax(dim=-1)  # (B, T)
        assert (moved > 0).all(), f"changing context position {s} left some outputs unchanged"


def test_the_context_of_one_sequence_does_not_reach_another():
    torch.manual_seed(4)
    cross = CrossAttention(N_EMBD, HEAD_SIZE)
    x, context = inputs(seed=4)
    changed = context.clone()
    changed[1] += 1.0
    assert torch.equal(cross(x, changed)[0], cross(x, context)[0])


@pytest.mark.parametrize("x_shape,context_shape", [
    ((B, T, N_EMBD), (B + 1, S, N_EMBD)),  # one context per sequence
    ((B, T, N_EMBD), (B, S, N_EMBD + 1)),  # the context's width
    ((T, N_EMBD), (S, N_EMBD)),  # no batch dimension
])
def test_bad_shapes_are_named(x_shape, context_shape):
    cross = CrossAttention(N_EMBD, HEAD_SIZE)
    with pytest.raises(ValueError, match=r"expected x \(B, T, 32\) and context \(B, S, 32\)"):
        cross(torch.randn(x_shape), torch.randn(context_shape))
