"""The GPT's parts and size: config checks, parameter count, the loss, feed-forward variants, it learns.

The invariants every configuration must keep (causality, the KV cache, the context window, the
train/eval mode) are in test_gpt_invariants.py, parametrised over attention and position schemes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from buildgpt.nn.model import ATTENTIONS, GPT, POSITIONS, Block, FeedForward, GPTConfig, SwiGLU, make_feed_forward

VOCAB = 20

pytestmark = pytest.mark.usefixtures("one_thread")

VARIANTS = [dict(position=p) for p in POSITIONS] + [
    dict(norm="rmsnorm"), dict(mlp="swiglu"), dict(mlp="gelu"), dict(qk_norm=True), dict(bias=False),
    dict(position="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True),
]
IDS = ["-".join(f"{k}={v}" for k, v in variant.items()) for variant in VARIANTS]


def tiny_config(**overrides) -> GPTConfig:
    values = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    values.update(overrides)
    return GPTConfig(**values)


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(tiny_config(**overrides)).eval()


def prompt(batch: int = 2, length: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- config and size


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_lecture_model_has_10_788_929_parameters(attention):
    with torch.device("meta"):  # sizes only: no memory, no initialisation cost
        model = GPT(GPTConfig(vocab_size=65, attention=attention))
    assert model.num_params() == 10_788_929


@pytest.mark.parametrize("field,value", [("position", "rotary"), ("norm", "batchnorm"), ("mlp", "tanh"),
                                         ("attention", "flash")])
def test_config_rejects_unknown_choices(field, value):
    with pytest.raises(ValueError, match=field):
        GPTConfig(**{field: value})


def test_config_rejects_indivisible_heads_and_round_trips():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="n_head and n_embd must each be at least 1, got 0"):
        GPTConfig(n_head=0)  # was a ZeroDivisionError, e.g. from a damaged checkpoint header
    c = tiny_config(mlp="gelu", position="none")
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown"):
        GPTConfig.from_dict({**c.to_dict(), "n_kv_head": 2})


@pytest.mark.parametrize("overrides", [dict(position="rope"), dict(position="alibi"), dict(qk_norm=True)], ids=str)
def test_inside_attention_variants_need_a_batched_path(overrides):
    with pytest.raises(ValueError, match="batched"):
        GPTConfig(attention="per_head", **overrides)


# ---------------------------------------------------------------- feed-forward


def test_swiglu_keeps_the_parameter_count():
    dense = sum(p.numel() for p in FeedForward(GPTConfig(n_embd=384)).parameters())
    gated = sum(p.numel() for p in SwiGLU(GPTConfig(n_embd=384, mlp="swiglu")).parameters())
    assert abs(gated - dense) / dense < 0.01


def test_feed_forward_is_chosen_by_the_config():
    assert type(make_feed_forward(tiny_config(mlp="relu"))) is FeedForward
    assert type(make_feed_forward(tiny_config(mlp="gelu"))) is FeedForward
    assert type(make_feed_forward(tiny_config(mlp="swiglu"))) is SwiGLU
    with pytest.raises(ValueError, match="SwiGLU"):
        FeedForward(tiny_config(mlp="swiglu"))


@pytest.mark.parametrize("mlp", ["relu", "gelu"])
def test_feed_forward_is_up_activation_down(mlp):
    torch.manual_seed(0)
    ffwd = FeedForward(tiny_config(mlp=mlp)).eval()
    x = torch.randn(2, 5, 16)
    act = nn.functional.relu if mlp == "relu" else nn.functional.gelu
    torch.testing.assert_close(ffwd(x), ffwd.down(act(ffwd.up(x))))
    assert ffwd.up.out_features == 4 * 16


def test_swiglu_is_the_gated_product():
    torch.manual_seed(0)
    ffwd = SwiGLU(tiny_config(mlp="swiglu")).eval()
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(ffwd(x), ffwd.down(nn.functional.silu(ffwd.gate(x)) * ffwd.up(x)))


def test_swiglu_equals_llamas_feed_forward_in_transformers():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    torch.manual_seed(0)
    ours = SwiGLU(tiny_config(mlp="swiglu", bias=False)).eval()
    theirs = LlamaMLP(LlamaConfig(hidden_size=16, num_attention_heads=2, intermediate_size=ours.up.out_features,
                                  hidden_act="silu", mlp_bias=False))
    for name in ("gate", "up", "down"):
        getattr(theirs, f"{name}_proj").weight.data.copy_(getattr(ours, name).weight)
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(ours(x), theirs(x))


def test_block_is_two_residual_updates():
    torch.manual_seed(0)
    block = Block(tiny_config()).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        h = x + block.attn(block.ln1(x))
        torch.testing.assert_close(block(x), h + block.ffwd(block.ln2(h)))


# ---------------------------------------------------------------- forward and learning


def test_forward_loss_is_cross_entropy():
    model = tiny_model()
    idx, targets = prompt(2, 8, seed=1), prompt(2, 8, seed=2)
    logits, loss = model(idx, targets)
    expected = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
    torch.testing.assert_close(loss, expected)
    # at initialisation the prediction is near uniform
    assert abs(loss.item() - torch.log(torch.tensor(float(VOCAB))).item()) < 0.3
    assert model(idx)[1] is None


def test_residual_projections_start_smaller():
    """GPT-2's init: the layers writing into the residual stream have std 0.02 / sqrt(2 n_layer)."""
    torch.manual_seed(0)
    model = GPT(tiny_config(n_layer=8, n_embd=64, n_head=4))
    proj = torch.cat([b.attn.proj.weight.flatten() for b in model.blocks])
    assert proj.std().item() == pytest.approx(0.02 / 4, rel=0.1)
    assert model.lm_head.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = GPT(tiny_config(n_layer=1, n_head=2, n_embd=32, block_size=8))
    x, y = prompt(4, 8, seed=3), prompt(4, 8, seed=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    steps = 0
    while steps < 300:
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if loss.item() < 0.1:
            break
    assert loss.item() < 0.1, f"loss {loss.item():.3f} after {steps} steps"


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_every_variant_trains(variant):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0, **variant))
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
