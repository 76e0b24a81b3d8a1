"""Position schemes: properties from the papers, and the modules added to the embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from buildgpt.nn import positions
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.nn.positions import LearnedPositions, NoPositions, SinusoidalPositions


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


def test_rope_needs_an_even_head_size():
    with pytest.raises(ValueError, match="odd"):
        positions.rope_angles(torch.arange(4), 7)


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


def test_alibi_slopes_equal_bloom_in_transformers_for_every_head_count():
    """BLOOM's slopes are the ALiBi authors' recipe, so every count, power of two or not, must agree."""
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    for n_head in range(1, 33):
        torch.testing.assert_close(positions.alibi_slopes(n_head), _get_alibi_slopes(n_head, torch.device("cpu")),
                                   msg=f"{n_head} heads")


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
    with pytest.raises(ValueError, match="even"):
        positions.sinusoidal_table(5, 15)


def test_sinusoidal_offset_is_a_linear_map():
    """PE[p + k] = PE[p] @ M_k for one fixed matrix M_k (block rotations), whatever p."""
    table = positions.sinusoidal_table(80, 16)
    for k in (1, 5, 30):
        shifted = table[:50] @ positions.sinusoidal_offset_matrix(k, 16)
        assert torch.allclose(shifted, table[k:50 + k], atol=1e-4)


# ---------------------------------------------------------------- the modules: module(T, start=0)


def test_learned_positions_are_rows_of_the_table():
    torch.manual_seed(0)
    table = LearnedPositions(8, 6)
    assert torch.equal(table(8), table.weight)
    assert torch.equal(table(3, start=4), table.weight[4:7])
    table(2, start=6)  # ends exactly at the last row
    with pytest.raises(ValueError, match="block_size=8"):
        table(3, start=6)
    with pytest.raises(ValueError, match="learned position table"):
        table(9)


def test_sinusoidal_positions_are_the_scaled_table_at_any_start():
    module = SinusoidalPositions(16, block_size=8)
    scale = 0.02 * math.sqrt(2)
    torch.testing.assert_close(module(8), scale * positions.sinusoidal_table(8, 16))
    torch.testing.assert_close(module(3, start=2), module(8)[2:5])
    # past the precomputed rows, the same formula goes on
    torch.testing.assert_close(module(5, start=6), scale * positions.sinusoidal_table(11, 16)[6:], atol=1e-6, rtol=0)
    assert list(module.parameters()) == []  # fixed, not learned
    assert "table" not in module.state_dict()  # and not saved in checkpoints
    # RMS 0.02 like a freshly initialised learned table
    assert module(8).pow(2).mean().sqrt().item() == pytest.approx(0.02, rel=0.05)


def test_no_positions_add_nothing():
    assert NoPositions()(5) == 0.0
    assert NoPositions()(5, start=100) == 0.0


def test_the_papers_sinusoidal_scheme_gives_tokens_and_positions_one_size():
    """Attention Is All You Need, 3.4 and 3.5: the raw table (RMS 1/sqrt(2)) beside token embeddings
    initialised at N(0, 1/d) and multiplied by sqrt(d) (RMS 1); ours shrinks the table to RMS 0.02 instead."""
    torch.manual_seed(0)
    paper = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=1, n_head=2, n_embd=64, position="sinusoidal_paper"))
    ours = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=1, n_head=2, n_embd=64, position="sinusoidal"))
    idx = torch.randint(0, 65, (4, 32))
    tokens = paper.token_embedding(idx)
    assert isinstance(paper.token_embedding, positions.ScaledEmbedding)
    torch.testing.assert_close(tokens, paper.token_embedding.weight[idx] * 8.0)  # sqrt(64)
    assert 0.9 < tokens.pow(2).mean().sqrt().item() < 1.1
    torch.testing.assert_close(paper.position_embedding(32), positions.sinusoidal_table(32, 64))
    assert abs(ours.position_embedding(32).pow(2).mean().sqrt().item() - 0.02) < 1e-3
    assert type(ours.token_embedding) is torch.nn.Embedding
    logits, loss = paper(idx, idx)
    assert logits.shape == (4, 32, 65) and torch.isfinite(loss)


def test_rope_equals_llama_in_transformers_up_to_the_order_of_channels():
    """Llama rotates channel i with channel i + head_size/2 (`rotate_half`); we rotate neighbours
    (2i, 2i+1), as the RoPE paper writes it. Reorder the channels (evens first) and the two agree."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    head_size, T = 16, 12
    torch.manual_seed(0)
    q, k = torch.randn(2, 2, 3, T, head_size).unbind(0)  # (B, nh, T, hs)
    config = LlamaConfig(hidden_size=3 * head_size, num_attention_heads=3, rope_theta=10000.0,
                         max_position_embeddings=64)
    position_ids = torch.arange(5, 5 + T)[None]  # not starting at 0: a decoding step's positions
    cos, sin = LlamaRotaryEmbedding(config)(q, position_ids)
    evens_first = torch.cat((torch.arange(0, head_size, 2), torch.arange(1, head_size, 2)))
    theirs = apply_rotary_pos_emb(q[..., evens_first], k[..., evens_first], cos, sin)
    ours_cos, ours_sin = positions.rope_angles(position_ids[0], head_size)
    for mine, llama in zip((q, k), theirs):
        torch.testing.assert_close(positions.apply_rope(mine, ours_cos, ours_sin)[..., evens_first], llama,
                                   atol=1e-5, rtol=0)
