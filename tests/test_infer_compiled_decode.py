"""The compiled decoder: the plain decoder's tokens, from a static cache, int8 weights and an in-step sampler."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from buildgpt.infer.compiled_decode import CompiledDecoder, Int8MatVecLinear, gumbel_noise
from buildgpt.infer.generate import generate
from buildgpt.infer.quantize import QuantizedLinear, quantize_model
from buildgpt.nn.model import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")

WINDOW = 16


def model(**overrides) -> GPT:
    torch.manual_seed(0)
    values = dict(vocab_size=11, block_size=WINDOW, n_layer=2, n_head=2, n_embd=32, dropout=0.0, attention="fused")
    return GPT(GPTConfig(**{**values, **overrides})).eval()


@pytest.fixture(scope="module")
def decoders():
    """One compile per weight format for the module: compiling is the slow part."""
    plain = model()
    return plain, {weights: CompiledDecoder(plain, weights) for weights in ("fp32", "int8")}


def test_greedy_tokens_are_the_plain_decoders_past_the_window(decoders):
    """40 new tokens after 5 of prompt: the window of 16 fills and is refilled from its last half, twice."""
    plain, compiled = decoders
    prompt = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(1))
    expected = {"fp32": generate(plain, prompt, 40, temperature=0),
                "int8": generate(quantize_model(plain, "int8"), prompt, 40, temperature=0)}
    for weights, decoder in compiled.items():
        assert torch.equal(decoder.generate(prompt, 40, temperature=0), expected[weights]), weights


def test_a_prompt_longer_than_the_window_keeps_its_last_window(decoders):
    plain, compiled = decoders
    prompt = torch.randint(0, 11, (1, 3 * WINDOW), generator=torch.Generator().manual_seed(2))
    out = compiled["fp32"].generate(prompt, 6, temperature=0)
    assert torch.equal(out, generate(plain, prompt, 6, temperature=0))


def test_sampling_follows_the_generator_and_stays_in_the_vocabulary(decoders):
    _, compiled = decoders
    prompt = torch.zeros(1, 1, dtype=torch.long)

    def sample(seed: int) -> torch.Tensor:
        return compiled["int8"].generate(prompt, 30, temperature=1.0, generator=torch.Generator().manual_seed(seed))

    first = sample(0)
    assert torch.equal(first, sample(0))
    assert not torch.equal(first, sample(1))
    assert 0 <= first.min() and first.max() < 11


def test_a_step_at_temperature_half_is_the_argmax_of_plain_logits_over_half_plus_the_noise(decoders):
    """Step by step, one compiled decode step draws argmax(logits / 0.5 + gumbel) of the plain model's logits."""
    plain, compiled = decoders
    decoder = compiled["fp32"]
    tokens = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(3))  # batch 2: compiled already
    keys, values = ([torch.zeros(2, 2, WINDOW, 16) for _ in decoder.model.blocks] for _ in range(2))
    filled = decoder._prefill(tokens[:, :-1], keys, values)
    # the random model's logits are about 0.1: a tenth of the usual noise lets both the logits and the noise count
    noise = 0.1 * gumbel_noise((8, 2, 11), torch.Generator().manual_seed(4))
    without_temperature = without_noise = 0
    for gumbel in noise:
        token = decoder.step(decoder.model, tokens[:, -1:].clone(), decoder.positions[filled], keys, values,
                             decoder.position_table, torch.tensor(0.5), gumbel)
        with torch.no_grad():
            logits = plain(tokens)[0][:, -1]
        assert torch.equal(token, (logits / 0.5 + gumbel).argmax(-1, keepdim=True))
        without_temperature += (token != (logits + gumbel).argmax(-1, keepdim=True)).sum().item()
        without_noise += (token != logits.argmax(-1, keepdim=True)).sum().item()
        tokens, filled = torch.cat([tokens, token], dim=1), filled + 1
    assert without_temperature > 0 and without_noise > 0  # both the temperature and the noise changed some draws


def test_gumbel_max_samples_the_softmax():
    """argmax(logits + g) over 200,000 draws lands on each token as often as softmax(logits) says."""
    logits = torch.tensor([2.0, 0.5, 0.0, -1.0, 1.0])
    draws = (logits + gumbel_noise((200_000, 5), torch.Generator().manual_seed(0))).argmax(-1)
    frequencies = torch.bincount(draws, minlength=5).float() / draws.numel()
    torch.testing.assert_close(frequencies, F.softmax(logits, -1), atol=4e-3, rtol=0)


def test_int8_matvec_computes_the_quantized_layer_eagerly_and_compiled():
    linear = torch.nn.Linear(48, 24)
    x = torch.randn(3, 1, 48)
    layer, expected = Int8MatVecLinear(linear), QuantizedLinear(linear, "int8")
    torch.testing.assert_close(torch.cat(layer.code_quarters(), dim=1), expected.codes.int())  # the packing is lossless
    torch.testing.assert_close(layer(x), expected(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.compile(layer)(x), expected(x), atol=1e-5, rtol=1e-5)


def test_int8_words_need_inputs_in_fours():
    with pytest.raises(ValueError, match="four codes"):
        Int8MatVecLinear(torch.nn.Linear(6, 4))


def test_zero_new_tokens_gives_back_the_prompt(decoders):
    _, compiled = decoders
    prompt = torch.tensor([[1, 2, 3]])
    assert torch.equal(compiled["int8"].generate(prompt, 0), prompt)


@pytest.mark.parametrize("overrides, message", [
    (dict(position="rope"), "inside attention"),
    (dict(position="alibi"), "inside attention"),
    (dict(qk_norm=True), "inside attention"),
    (dict(attention="per_head"), "batched or fused attention"),
])
def test_models_it_does_not_compute_are_refused_with_the_way_out(overrides, message):
    with pytest.raises(ValueError, match=message) as error:
        CompiledDecoder(model(**overrides))
    assert "generate()" in str(error.value)


def test_bad_arguments_are_refused_before_compiling():
    with pytest.raises(ValueError, match="int8 or fp32"):
        CompiledDecoder(model(), weights="q4_0")
    decoder = CompiledDecoder(model())
    with pytest.raises(ValueError, match="at least one token"):
        next(decoder.generate_stream(torch.zeros(1, 0, dtype=torch.long), 5))
    with pytest.raises(ValueError, match="temperature"):
        next(decoder.generate_stream(torch.zeros(1, 1, dtype=torch.long), 5, temperature=-1.0))
