"""Position schemes and the researcher's variants: properties from the papers, and every variant works."""

from __future__ import annotations

import math

import pytest
import torch

from buildgpt import positions
from buildgpt.model import GPT, POSITIONS, FeedForward, GPTConfig
from buildgpt.norms import RMSNorm

VARIANTS = [dict(position=p) for p in POSITIONS] + [
    dict(norm="rmsnorm"), dict(mlp="swiglu"), dict(qk_norm=True),
    dict(position="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True),
]
IDS = ["-".join(f"{k}={v}" for k, v in variant.items()) for variant in VARIANTS]


def tiny(**overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0, **overrides)).eval()


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 4, 8, 16).unbind(0)  # (batch, heads, time, head size)

    def scores(start: int) -> torch.Tensor:
        cos, sin = positions.rope_angles(torch.arange(start, start + 8), 16)
        return positions.apply_rope(q, cos, sin) @ positions.apply_rope(k, cos, sin).transpose(-2, -1)

    assert torch.allclose(scores(0), scores(37), atol=1e-4)  # shift queries and keys together
    assert not torch.allclose(scores(0), q @ k.transpose(-2, -1), atol=1e-2)  # the rotation does act


def test_rope_preserves_norms():
    x = torch.randn(3, 5, 16)
    cos, sin = positions.rope_angles(torch.arange(5), 16)
    assert torch.allclose(positions.apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


@pytest.mark.parametrize("n_head,expected", [
    (8, [2 ** -(i + 1) for i in range(8)]),           # the paper: 1/2, 1/4, ..., 1/256
    (4, [4 ** -(i + 1) for i in range(4)]),           # 1/4, 1/16, 1/64, 1/256
    (16, [2 ** (-(i + 1) / 2) for i in range(16)]),   # 1/sqrt(2), 1/2, ..., 1/256
])
def test_alibi_slopes_match_the_paper(n_head, expected):
    assert torch.allclose(positions.alibi_slopes(n_head), torch.tensor(expected))


def test_alibi_slopes_for_other_head_counts_follow_the_reference_recipe():
    # 6 heads: the 4-head slopes, then every other slope of the 8-head sequence (1/sqrt(2)^1, ^3 ...).
    expected = [4 ** -(i + 1) for i in range(4)] + [2 ** -1, 2 ** -3]
    assert torch.allclose(positions.alibi_slopes(6), torch.tensor(expected))


def test_alibi_bias_is_minus_slope_times_distance():
    bias = positions.alibi_bias(4, 3, 5)  # the last 3 of 5 positions query
    slopes = positions.alibi_slopes(4)
    assert bias.shape == (4, 3, 5)
    assert torch.allclose(bias[:, 2, 0], -slopes * 4)  # query at 4, key at 0
    assert torch.all(bias[:, 0, 2] == 0)  # query at 2 looking at itself


def test_sinusoidal_table_matches_the_formula():
    table = positions.sinusoidal_table(50, 16)
    for pos in (0, 1, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert math.isclose(table[pos, 2 * i], math.sin(angle), abs_tol=1e-5)
            assert math.isclose(table[pos, 2 * i + 1], math.cos(angle), abs_tol=1e-5)
    assert torch.allclose(positions.sinusoidal_table(5, 16, start=10), table[10:15])


def test_sinusoidal_offset_is_a_linear_map():
    """PE[p + k] = PE[p] @ M_k for one fixed matrix M_k (block rotations), whatever p."""
    table = positions.sinusoidal_table(80, 16)
    for k in (1, 5, 30):
        shifted = table[:50] @ positions.sinusoidal_offset_matrix(k, 16)
        assert torch.allclose(shifted, table[k:50 + k], atol=1e-4)


def test_rmsnorm_matches_torch():
    torch.manual_seed(0)
    ours, theirs = RMSNorm(24), torch.nn.RMSNorm(24, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    x = torch.randn(4, 7, 24) * 3
    assert (ours(x) - theirs(x)).abs().max() < 1e-5


def test_swiglu_keeps_the_parameter_count():
    config = GPTConfig(n_embd=384)
    dense = sum(p.numel() for p in FeedForward(config).parameters())
    gated = sum(p.numel() for p in FeedForward(GPTConfig(n_embd=384, mlp="swiglu")).parameters())
    assert abs(gated - dense) / dense < 0.01


def test_inside_attention_variants_need_a_batched_path():
    with pytest.raises(ValueError, match="batched"):
        GPTConfig(position="rope", attention="per_head")


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_every_variant_is_causal(variant):
    model = tiny(**variant)
    idx = torch.randint(11, (2, 12), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 11
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    assert torch.equal(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_every_variant_trains(variant):
    model = tiny(**variant).train()
    x = torch.randint(11, (8, 16), generator=torch.Generator().manual_seed(2))
    y = torch.roll(x, -1, dims=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("position", ["rope", "alibi", "sinusoidal", "none"])
@pytest.mark.parametrize("attention", ["batched", "fused"])
def test_kv_cache_generation_equals_uncached(position, attention):
    model = tiny(position=position, attention=attention)
    prompt = torch.tensor([[1, 2, 3]])
    cached = model.generate(prompt, 12, temperature=0, use_cache=True)
    uncached = model.generate(prompt, 12, temperature=0, use_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("position", ["rope", "alibi", "sinusoidal", "none"])
def test_relative_and_fixed_schemes_run_past_the_training_context(position):
    logits, _ = tiny(position=position)(torch.zeros((1, 64), dtype=torch.long))
    assert logits.shape == (1, 64, 11) and torch.isfinite(logits).all()


def test_a_learned_table_cannot_run_past_its_length():
    with pytest.raises(ValueError, match="learned position table"):
        tiny(position="learned")(torch.zeros((1, 17), dtype=torch.long))
