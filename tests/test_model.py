"""The GPT: LayerNorm, parameter count, causality, overfitting, KV-cache generation, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from buildgpt.model import ATTENTIONS, GPT, GPTConfig, LayerNorm
from buildgpt.norms import layer_norm

VOCAB = 20


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**overrides) -> GPTConfig:
    values = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    values.update(overrides)
    return GPTConfig(**values)


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(tiny_config(**overrides)).eval()


def prompt(batch: int = 2, length: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- LayerNorm


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


# ---------------------------------------------------------------- config and size


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_lecture_model_has_10_788_929_parameters(attention):
    with torch.device("meta"):  # sizes only: no memory, no initialisation cost
        model = GPT(GPTConfig(vocab_size=65, attention=attention))
    assert model.num_params() == 10_788_929


def test_lecture_config_defaults():
    c = GPTConfig(vocab_size=65)
    assert (c.block_size, c.n_layer, c.n_head, c.n_embd, c.dropout) == (256, 6, 6, 384, 0.2)


@pytest.mark.parametrize("field,value", [("position", "rotary"), ("norm", "batchnorm"), ("mlp", "tanh"),
                                         ("attention", "flash")])
def test_config_rejects_unknown_choices(field, value):
    with pytest.raises(ValueError, match=field):
        GPTConfig(**{field: value})


def test_config_rejects_indivisible_heads_and_round_trips():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=30, n_head=4)
    c = tiny_config(mlp="gelu", position="none")
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown"):
        GPTConfig.from_dict({**c.to_dict(), "n_kv_head": 2})


# ---------------------------------------------------------------- forward


@pytest.mark.parametrize("position", ["learned", "none"])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_gpt_is_causal(attention, position):
    model = tiny_model(attention=attention, position=position)
    T = 12
    idx = prompt(2, T, seed=1)
    with torch.no_grad():
        base, _ = model(idx)
        assert base.shape == (2, T, VOCAB)
        for t in range(T):
            changed = idx.clone()
            changed[:, t] = (changed[:, t] + 1 + t) % VOCAB
            logits, _ = model(changed)
            assert torch.allclose(logits[:, :t], base[:, :t], atol=1e-6, rtol=0), \
                f"{attention}/{position}: changing token {t} changed earlier logits"
            assert not torch.allclose(logits[:, t], base[:, t])


def test_forward_loss_is_cross_entropy():
    model = tiny_model()
    idx, targets = prompt(2, 8, seed=1), prompt(2, 8, seed=2)
    logits, loss = model(idx, targets)
    expected = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
    torch.testing.assert_close(loss, expected)
    # at initialisation the prediction is near uniform
    assert abs(loss.item() - torch.log(torch.tensor(float(VOCAB))).item()) < 0.3
    assert model(idx)[1] is None


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_forward_longer_than_block_size_raises(attention):
    model = tiny_model(attention=attention)
    with pytest.raises(ValueError, match="block_size"):
        model(prompt(1, 17))
    model(prompt(1, 16))  # exactly the window is fine


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = GPT(tiny_config(n_layer=1, n_head=2, n_embd=32, block_size=8))
    x, y = prompt(4, 8, seed=3), prompt(4, 8, seed=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(300):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.1:
            break
    assert loss.item() < 0.1, f"loss {loss.item():.3f} after {step + 1} steps"


# ---------------------------------------------------------------- attention maps


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_attention_maps(attention):
    model = tiny_model(attention=attention, n_layer=3, n_head=2)
    model.train()
    maps = model.attention_maps(prompt(2, 9))
    assert maps.shape == (3, 2, 9, 9)
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, 2, 9), atol=1e-5, rtol=0)
    assert (maps.triu(diagonal=1) == 0).all()
    assert model.training  # the mode is restored
    assert all(not block.attn.record_weights for block in model.blocks)


def test_attention_maps_agree_across_implementations():
    maps = []
    for attention in ATTENTIONS:
        model = tiny_model(seed=0, attention="per_head")
        if attention != "per_head":  # same weights in the batched layout
            other = tiny_model(seed=1, attention=attention)
            state = {k: v for k, v in model.state_dict().items() if ".attn.heads." not in k}
            other.load_state_dict(state, strict=False)
            for block, other_block in zip(model.blocks, other.blocks):
                other_block.attn.load_from_heads(block.attn)
            model = other
        maps.append(model.attention_maps(prompt(1, 7)))
    torch.testing.assert_close(maps[1], maps[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(maps[2], maps[0], atol=1e-5, rtol=0)


# ---------------------------------------------------------------- generation


@pytest.mark.parametrize("attention", ["batched", "fused"])
def test_kv_cache_greedy_equals_uncached(attention):
    model = tiny_model(seed=3, attention=attention)
    idx = prompt(3, 4, seed=5)
    new = model.config.block_size - idx.size(1)  # prompt + new tokens fill the window exactly
    cached = model.generate(idx, new, temperature=0, use_cache=True)
    uncached = model.generate(idx, new, temperature=0, use_cache=False)
    assert cached.shape == (3, model.config.block_size)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, :4], idx)


@pytest.mark.parametrize("attention", ["batched", "fused"])
def test_kv_cache_logits_equal_full_forward(attention):
    from buildgpt.attention import KVCache

    model = tiny_model(seed=4, attention=attention)
    idx = prompt(2, 16, seed=6)
    with torch.no_grad():
        full, _ = model(idx)
        caches = [KVCache() for _ in model.blocks]
        parts = [model(idx[:, :5], caches=caches)[0]]
        for t in range(5, 16):
            parts.append(model(idx[:, t:t + 1], caches=caches)[0])
        with pytest.raises(ValueError, match="block_size"):
            model(idx[:, :1], caches=caches)  # the cache already fills the window
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("block_size", [1, 5])
@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_generation_beyond_block_size(attention, use_cache, block_size):
    model = tiny_model(attention=attention, block_size=block_size, n_layer=1)
    idx = prompt(2, 3)
    out = model.generate(idx, 3 * block_size + 2, use_cache=use_cache, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3 + 3 * block_size + 2)
    assert torch.equal(out[:, :3], idx)
    assert ((out >= 0) & (out < VOCAB)).all()


@pytest.mark.parametrize("use_cache", [True, False])
def test_prompt_longer_than_block_size_is_cropped(use_cache):
    model = tiny_model(attention="fused")
    long_prompt = prompt(1, 40)
    out = model.generate(long_prompt, 5, temperature=0, use_cache=use_cache)
    assert out.shape == (1, 45)
    assert torch.equal(out[:, :40], long_prompt)
    # only the last block_size tokens count: the same as generating from them alone
    cropped = model.generate(long_prompt[:, -16:], 1, temperature=0, use_cache=use_cache)
    assert torch.equal(out[:, 40:41], cropped[:, -1:])


def test_generate_stream_yields_the_tokens_of_generate():
    model = tiny_model(seed=5)
    idx = prompt(2, 3)
    streamed = list(model.generate_stream(idx, 6, generator=torch.Generator().manual_seed(9)))
    assert len(streamed) == 6 and all(t.shape == (2, 1) for t in streamed)
    full = model.generate(idx, 6, generator=torch.Generator().manual_seed(9))
    assert torch.equal(full, torch.cat([idx, *streamed], dim=1))


def test_generate_restores_training_mode():
    model = tiny_model()
    model.train()
    model.generate(prompt(1, 2), 3)
    assert model.training


@pytest.mark.parametrize("kwargs,match", [
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(temperature=-0.5), "temperature"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=-3), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_p=-0.1), "top_p"),
])
def test_invalid_generation_arguments_raise(kwargs, match):
    model = tiny_model()
    args = dict(max_new_tokens=5, **{k: v for k, v in kwargs.items() if k != "max_new_tokens"})
    if "max_new_tokens" in kwargs:
        args["max_new_tokens"] = kwargs["max_new_tokens"]
    with pytest.raises(ValueError, match=match):
        model.generate(prompt(), **args)


def test_empty_prompt_raises():
    with pytest.raises(ValueError, match="prompt"):
        tiny_model().generate(torch.zeros(1, 0, dtype=torch.long), 3)


def test_zero_new_tokens_returns_the_prompt():
    idx = prompt(2, 5)
    out = tiny_model().generate(idx, 0)
    assert torch.equal(out, idx)


def test_top_p_one_is_allowed():
    out = tiny_model().generate(prompt(), 4, top_p=1.0)
    assert out.shape == (2, 7)


def test_top_k_larger_than_vocab_is_no_top_k():
    model = tiny_model(seed=6)
    idx = prompt(2, 3)
    plain = model.generate(idx, 12, generator=torch.Generator().manual_seed(11))
    for k in (VOCAB, VOCAB + 1, 10_000):
        assert torch.equal(model.generate(idx, 12, top_k=k, generator=torch.Generator().manual_seed(11)), plain)


def test_top_k_one_is_greedy():
    model = tiny_model(seed=7)
    idx = prompt(2, 3)
    greedy = model.generate(idx, 12, temperature=0)
    for seed in range(3):
        assert torch.equal(model.generate(idx, 12, top_k=1, generator=torch.Generator().manual_seed(seed)), greedy)


def test_seeded_generation_is_reproducible_and_seeds_differ():
    model = tiny_model(seed=8)
    idx = prompt(4, 3)
    a = model.generate(idx, 12, generator=torch.Generator().manual_seed(1))
    b = model.generate(idx, 12, generator=torch.Generator().manual_seed(1))
    c = model.generate(idx, 12, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
