"""What every GPT configuration must keep, whatever its attention implementation and position scheme.

- causality: changing a later token never changes earlier logits;
- the KV cache changes the cost, not the result: cached logits and greedy tokens equal uncached ones;
- the context window: a learned table refuses inputs past block_size, other schemes run past it,
  and generation crops its context to the window;
- generate and attention_maps leave the model in the mode they found it;
- the three attention implementations, given the same weights, are the same model.
"""

from __future__ import annotations

import pytest
import torch

from buildgpt.infer.generate import generate
from buildgpt.infer.kv_cache import KVCache, forward_cached, supports_cache
from buildgpt.nn.model import ATTENTIONS, GPT, POSITIONS, GPTConfig

VOCAB = 20

pytestmark = pytest.mark.usefixtures("one_thread")

# Every attention implementation with every position scheme it supports (RoPE and ALiBi live inside
# batched attention), and the researcher's other changes on top.
CONFIGS = [dict(attention=a, position=p) for a in ATTENTIONS for p in POSITIONS
           if a != "per_head" or p not in ("rope", "alibi")] + [
    dict(attention="fused", qk_norm=True),
    dict(attention="batched", position="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True),
]
IDS = ["-".join(f"{v}" if k in ("attention", "position") else f"{k}={v}" for k, v in c.items()) for c in CONFIGS]
CACHED = [c for c in CONFIGS if c["attention"] != "per_head"]
CACHED_IDS = [i for c, i in zip(CONFIGS, IDS) if c["attention"] != "per_head"]


def tiny_model(config: dict, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    values = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return GPT(GPTConfig(**{**values, **config, **overrides})).eval()


def prompt(batch: int = 2, length: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- causality


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_changing_a_token_never_changes_earlier_logits(config):
    model = tiny_model(config)
    T = 12
    idx = prompt(2, T, seed=1)
    with torch.no_grad():
        base, _ = model(idx)
        assert base.shape == (2, T, VOCAB)
        for t in range(T):
            changed = idx.clone()
            changed[:, t] = (changed[:, t] + 1 + t) % VOCAB
            logits, _ = model(changed)
            # exactly equal, not merely close: nothing of token t reaches an earlier position
            assert torch.equal(logits[:, :t], base[:, :t]), f"{config}: changing token {t} changed earlier logits"
            assert not torch.allclose(logits[:, t:], base[:, t:])


# ---------------------------------------------------------------- the KV cache


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_cached_greedy_generation_equals_uncached(config):
    model = tiny_model(config, seed=3)
    idx = prompt(3, 4, seed=5)
    new = model.config.block_size - idx.size(1)  # prompt + new tokens fill the window exactly
    cached = generate(model, idx, new, temperature=0, use_cache=True)
    uncached = generate(model, idx, new, temperature=0, use_cache=False)
    assert cached.shape == (3, model.config.block_size)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, :4], idx)
    assert supports_cache(model) == (config["attention"] != "per_head")  # per-head: the uncached path


@pytest.mark.parametrize("config", CACHED, ids=CACHED_IDS)
def test_forward_cached_logits_equal_forward(config):
    model = tiny_model(config, seed=4)
    idx = prompt(2, 16, seed=6)
    with torch.no_grad():
        full, _ = model(idx)
        caches = [KVCache() for _ in model.blocks]
        parts = [forward_cached(model, idx[:, :5], caches)]  # a prompt of 5, then one token at a time
        for t in range(5, 16):
            parts.append(forward_cached(model, idx[:, t:t + 1], caches))
            assert caches[0].length == t + 1
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)
    assert caches[-1].k.shape == caches[-1].v.shape == (2, 2, 16, 8)


@pytest.mark.parametrize("config", CACHED, ids=CACHED_IDS)
def test_forward_cached_past_the_window(config):
    """A learned table has no row past block_size, cached or not; the other schemes go on, still exact."""
    model = tiny_model(config, seed=4)
    idx = prompt(2, 24, seed=7)
    caches = [KVCache() for _ in model.blocks]
    with torch.no_grad():
        first = forward_cached(model, idx[:, :16], caches)
        if config.get("position", "learned") == "learned":
            with pytest.raises(ValueError, match="block_size"):
                forward_cached(model, idx[:, 16:17], caches)  # the cache already fills the window
            return
        rest = [forward_cached(model, idx[:, t:t + 1], caches) for t in range(16, 24)]
        full, _ = model(idx)
    torch.testing.assert_close(torch.cat([first, *rest], dim=1), full, atol=1e-5, rtol=0)


def test_per_head_attention_keeps_no_cache():
    model = tiny_model(dict(attention="per_head"))
    with pytest.raises(ValueError, match="batched"):
        forward_cached(model, prompt(1, 3), [KVCache() for _ in model.blocks])


# ---------------------------------------------------------------- the context window


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_forward_past_block_size(config):
    model = tiny_model(config)
    model(prompt(1, 16))  # exactly the window is fine
    if config.get("position", "learned") == "learned":
        with pytest.raises(ValueError, match="block_size"):
            model(prompt(1, 17))
        with pytest.raises(ValueError, match="learned position table"):
            model(torch.zeros((1, 64), dtype=torch.long))
    else:  # relative and fixed schemes run past the training context
        logits, _ = model(torch.zeros((1, 64), dtype=torch.long))
        assert logits.shape == (1, 64, VOCAB) and torch.isfinite(logits).all()


@pytest.mark.parametrize("block_size", [1, 5])
@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_generation_beyond_block_size(config, use_cache, block_size):
    model = tiny_model(config, block_size=block_size, n_layer=1)
    idx = prompt(2, 3)
    out = generate(model, idx, 3 * block_size + 2, use_cache=use_cache, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3 + 3 * block_size + 2)
    assert torch.equal(out[:, :3], idx)
    assert ((out >= 0) & (out < VOCAB)).all()


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_prompt_longer_than_block_size_is_cropped(config, use_cache):
    model = tiny_model(config)
    long_prompt = prompt(1, 40)
    out = generate(model, long_prompt, 5, temperature=0, use_cache=use_cache)
    assert out.shape == (1, 45)
    assert torch.equal(out[:, :40], long_prompt)
    # only the last block_size tokens count: the same as generating from them alone
    cropped = generate(model, long_prompt[:, -16:], 1, temperature=0, use_cache=use_cache)
    assert torch.equal(out[:, 40:41], cropped[:, -1:])


# ---------------------------------------------------------------- train / eval mode


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_generate_restores_the_mode(config, training):
    model = tiny_model(config, dropout=0.1).train(training)
    generate(model, prompt(1, 2), 3)
    assert model.training is training
    assert all(m.training is training for m in model.modules())


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_attention_maps(config):
    model = tiny_model(config, n_layer=3, dropout=0.1)
    model.train()
    maps = model.attention_maps(prompt(2, 9))
    assert maps.shape == (3, 2, 9, 9)
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, 2, 9), atol=1e-5, rtol=0)
    assert (maps.triu(diagonal=1) == 0).all()
    assert model.training  # the mode is restored
    assert all(m.training for m in model.modules())
    assert all(not getattr(block.attn, "record_weights", False) for block in model.blocks)
    model.eval()
    model.attention_maps(prompt(1, 4))
    assert not model.training


# ---------------------------------------------------------------- one model, three implementations


@pytest.mark.parametrize("position", ["learned", "none", "sinusoidal"])
def test_three_attention_implementations_are_one_model(position):
    """The per-head model's weights, loaded into the batched and fused layouts: same logits, same maps."""
    reference = tiny_model(dict(attention="per_head", position=position), seed=0)
    idx = prompt(2, 11, seed=3)
    with torch.no_grad():
        expected, _ = reference(idx)
    expected_maps = reference.attention_maps(idx[:1])
    for attention in ("batched", "fused"):
        other = tiny_model(dict(attention=attention, position=position), seed=1)
        state = {k: v for k, v in reference.state_dict().items() if ".attn.heads." not in k}
        missing, unexpected = other.load_state_dict(state, strict=False)
        assert not unexpected and all(".attn.qkv." in k for k in missing)
        for block, other_block in zip(reference.blocks, other.blocks):
            other_block.attn.load_from_heads(block.attn)
        with torch.no_grad():
            torch.testing.assert_close(other(idx)[0], expected, atol=1e-5, rtol=0, msg=attention)
        torch.testing.assert_close(other.attention_maps(idx[:1]), expected_maps, atol=1e-5, rtol=0, msg=attention)
