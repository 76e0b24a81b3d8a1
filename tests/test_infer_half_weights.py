"""Half-precision weights for one-token decoding steps: same model, float32 where it matters."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from buildgpt.infer.generate import generate
from buildgpt.infer.half_weights import SKINNY_ROWS, HalfWeightLinear, with_half_weights
from buildgpt.infer.kv_cache import KVCache, forward_cached
from buildgpt.nn.model import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    values = dict(vocab_size=30, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
    return GPT(GPTConfig(**{**values, **overrides})).eval()


def test_wide_inputs_use_the_float32_weights_exactly():
    linear = nn.Linear(16, 8)
    x = torch.randn(SKINNY_ROWS, 16)
    assert torch.equal(HalfWeightLinear(linear)(x), linear(x))


def test_skinny_inputs_use_float16_weights_and_return_float32():
    linear = nn.Linear(64, 32)
    half = HalfWeightLinear(linear)
    x = torch.randn(1, 64)
    y = half(x)
    assert y.dtype == torch.float32 and half.weight16.dtype == torch.float16
    assert not torch.equal(y, linear(x))  # the float16 path did run
    # exact on the float16-rounded input, weights and bias, but for the float16 rounding of the output
    rounded = F.linear(x.half().double(), half.weight16.double(), half.bias16.double())
    torch.testing.assert_close(y.double(), rounded, rtol=2**-11, atol=1e-7)


def test_the_original_model_is_untouched():
    original = model()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    fast = with_half_weights(original)
    assert not any(isinstance(m, HalfWeightLinear) for m in original.modules())
    wrapped = [m for m in fast.modules() if isinstance(m, HalfWeightLinear)]
    assert len(wrapped) == sum(isinstance(m, nn.Linear) for m in original.modules())
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    for k, v in original.state_dict().items():
        assert torch.equal(v, before[k])


def test_prefill_is_exact_and_cached_steps_stay_close():
    """Teacher-forced through the cache: the prompt (many rows) exactly, each new token closely."""
    original = model()
    fast = with_half_weights(original)
    tokens = torch.randint(0, 30, (1, 24), generator=torch.Generator().manual_seed(0))
    prompt = tokens[:, :SKINNY_ROWS]
    slow_caches, fast_caches = [KVCache() for _ in range(2)], [KVCache() for _ in range(2)]
    with torch.no_grad():
        assert torch.equal(forward_cached(fast, prompt, fast_caches), forward_cached(original, prompt, slow_caches))
        for t in range(SKINNY_ROWS, tokens.size(1)):
            step = tokens[:, t:t + 1]
            torch.testing.assert_close(forward_cached(fast, step, fast_caches), forward_cached(original, step, slow_caches),
                                       atol=2e-3, rtol=0)


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_generation_past_the_window_with_every_sampling_option(position):
    fast = with_half_weights(model(position=position))
    idx = torch.zeros((2, 1), dtype=torch.long)
    out = generate(fast, idx, 70, temperature=0.9, top_k=10, top_p=0.9, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 71) and out.max() < 30
