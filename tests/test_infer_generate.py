"""Generating text: the stream and the whole, argument checks, top-k and seeds.

Cached vs uncached, cropping to the window and the train/eval mode are invariants of every
configuration: test_gpt_invariants.py.
"""

from __future__ import annotations

import pytest
import torch

from buildgpt.infer.generate import generate, generate_stream
from buildgpt.nn.model import GPT, GPTConfig

VOCAB = 20

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    values = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return GPT(GPTConfig(**{**values, **overrides})).eval()


def prompt(batch: int = 2, length: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_stream_yields_the_tokens_of_generate(use_cache):
    model = tiny_model(seed=5)
    idx = prompt(2, 3)
    stream = generate_stream(model, idx, 6, use_cache=use_cache, generator=torch.Generator().manual_seed(9))
    streamed = list(stream)
    assert len(streamed) == 6 and all(t.shape == (2, 1) for t in streamed)
    full = generate(model, idx, 6, use_cache=use_cache, generator=torch.Generator().manual_seed(9))
    assert torch.equal(full, torch.cat([idx, *streamed], dim=1))


def test_the_stream_is_lazy():
    """Nothing is computed before the first token is asked for, and each token as soon as it is."""
    model = tiny_model()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    stream = generate_stream(model, prompt(), 5, use_cache=False)
    assert calls == []
    next(stream)
    assert len(calls) == 1


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
        generate(model, prompt(), **args)


@pytest.mark.parametrize("idx", [torch.zeros(1, 0, dtype=torch.long), torch.zeros(3, dtype=torch.long)],
                         ids=["empty", "one-dimensional"])
def test_bad_prompt_raises(idx):
    with pytest.raises(ValueError, match="prompt"):
        generate(tiny_model(), idx, 3)


def test_zero_new_tokens_returns_the_prompt():
    idx = prompt(2, 5)
    out = generate(tiny_model(), idx, 0)
    assert torch.equal(out, idx)


def test_top_p_one_is_no_filter():
    model = tiny_model()
    out = generate(model, prompt(), 4, top_p=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, generate(model, prompt(), 4, generator=torch.Generator().manual_seed(0)))


def test_top_k_larger_than_vocab_is_no_top_k():
    model = tiny_model(seed=6)
    idx = prompt(2, 3)
    plain = generate(model, idx, 12, generator=torch.Generator().manual_seed(11))
    for k in (VOCAB, VOCAB + 1, 10_000):
        assert torch.equal(generate(model, idx, 12, top_k=k, generator=torch.Generator().manual_seed(11)), plain)


def test_top_k_one_is_greedy():
    model = tiny_model(seed=7)
    idx = prompt(2, 3)
    greedy = generate(model, idx, 12, temperature=0)
    for seed in range(3):
        assert torch.equal(generate(model, idx, 12, top_k=1, generator=torch.Generator().manual_seed(seed)), greedy)


def test_seeded_generation_is_reproducible_and_seeds_differ():
    model = tiny_model(seed=8)
    idx = prompt(4, 3)
    a = generate(model, idx, 12, generator=torch.Generator().manual_seed(1))
    b = generate(model, idx, 12, generator=torch.Generator().manual_seed(1))
    c = generate(model, idx, 12, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
