"""Quantized weights written from scratch, against the libraries: PyTorch's per-channel int8 and ggml's Q8_0/Q4_0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, quants

from buildgpt.infer.quantize import (
    BLOCK,
    QuantizedLinear,
    dequantize,
    ggml_bytes,
    quantize,
    quantize_model,
    save_quantized,
    weight_bytes,
)
from buildgpt.nn.model import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")
GGML = {"q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0}


def weights(seed: int = 0, shape=(48, 128)) -> torch.Tensor:
    """Gaussian weights with a few outliers and exact zeros, as trained matrices have."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) * 0.02
    w[3, 5], w[7, 40], w[0, :BLOCK] = 0.5, -0.7, 0.0  # outliers; one block all zero
    w[torch.rand(shape, generator=g) < 0.05] = 0.0
    return w


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")  # deprecated, still the reference
def test_int8_codes_equal_pytorchs_per_channel_quantization():
    w = weights()
    q = quantize(w, "int8")
    reference = torch.quantize_per_channel(w, q.scales.double(), torch.zeros(w.shape[0], dtype=torch.long), 0,
                                           torch.qint8)
    assert torch.equal(q.codes, reference.int_repr())
    assert torch.allclose(dequantize(q), reference.dequantize(), atol=1e-7)


@pytest.mark.parametrize("format", ["q8_0", "q4_0"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_formats_are_ggmls_byte_for_byte(format, seed):
    w = weights(seed)
    ours = quantize(w, format)
    reference = quants.quantize(w.numpy(), GGML[format])
    assert ggml_bytes(ours) == reference.tobytes()
    assert np.array_equal(dequantize(ours).numpy(), quants.dequantize(reference, GGML[format]))


@pytest.mark.parametrize("format", ["int8", "q8_0", "q4_0"])
def test_the_error_is_within_the_formats_bound_and_zero_and_sign_are_exact(format):
    w = weights()
    q = quantize(w, format)
    back = dequantize(q)
    if format == "int8":
        step = q.scales[:, None].expand_as(w)
        bound = step / 2 + 1e-7  # rounding to the nearest level
    else:
        step = q.scales.float().repeat_interleave(BLOCK, dim=1).abs()
        # half a level, plus the float16 rounding of the scale times the largest code (q4_0's top
        # level is 7 d while the bottom is -8 d, so weights of the other sign may lose a whole level)
        relative = 2 ** -11 * (127 if format == "q8_0" else 8)
        bound = step * (0.5 if format == "q8_0" else 1.0) + w.abs() * relative + 1e-7
    assert ((back - w).abs() <= bound).all()
    assert (back[w == 0] == 0).all()
    assert (torch.sign(back) * torch.sign(w) >= 0).all()  # never the opposite sign
    assert torch.isfinite(back).all()  # the all-zero block has scale 0 and no division by it


def test_sizes_are_four_and_about_seven_times_smaller():
    w = weights(shape=(256, 1024))
    fp32 = w.numel() * 4
    assert fp32 / quantize(w, "int8").nbytes == pytest.approx(4, rel=0.01)
    assert fp32 / quantize(w, "q8_0").nbytes == pytest.approx(32 / 8.5)
    assert fp32 / quantize(w, "q4_0").nbytes == pytest.approx(32 / 4.5)


@pytest.fixture
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=64, dropout=0.0)).eval()


@pytest.mark.parametrize("format, tolerance", [("int8", 0.02), ("q8_0", 0.02), ("q4_0", 0.15)])
def test_quantized_logits_stay_close_to_float32(model, format, tolerance):
    """Mean error under `tolerance` of the logits' spread, the largest under ten times that."""
    idx = torch.randint(0, 65, (2, 32), generator=torch.Generator().manual_seed(1))
    small = quantize_model(model, format)
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert sum(isinstance(m, QuantizedLinear) for m in small.modules()) == linears
    assert not any(isinstance(m, torch.nn.Linear) for m in small.modules())
    with torch.no_grad():
        reference, _ = model(idx)
        logits, _ = small(idx)
    spread = reference.std().item()
    assert (logits - reference).abs().max().item() < tolerance * spread * 10
    assert (logits - reference).abs().mean().item() < tolerance * spread
    assert weight_bytes(small) < weight_bytes(model)


@pytest.mark.parametrize("format", ["int8", "q8_0", "q4_0"])
def test_a_quantized_layer_is_the_linear_of_its_dequantized_weights_and_its_bias(format):
    """Exact, with a bias that is not zero (the GPT starts its biases at zero, so the model test cannot see one)."""
    linear = torch.nn.Linear(64, 32)
    torch.nn.init.normal_(linear.bias)
    x = torch.randn(5, 64)
    expected = torch.nn.functional.linear(x, dequantize(quantize(linear.weight, format)), linear.bias)
    torch.testing.assert_close(QuantizedLinear(linear, format)(x), expected, atol=1e-6, rtol=0)


def test_quantizing_twice_is_refused_and_the_original_is_untouched(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = quantize_model(model, "int8")
    with pytest.raises(ValueError, match=r"already quantized \(int8\)"):
        quantize_model(small, "q4_0")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_only_a_quantized_model_is_saved_as_one(model, tmp_path):
    with pytest.raises(ValueError, match="needs a model from quantize_model, in one format; this one has no quantized"):
        save_quantized(tmp_path / "m.int8.safetensors", model, {})
    assert not (tmp_path / "m.int8.safetensors").exists()


@pytest.mark.parametrize("bad, message", [
    (lambda: quantize(torch.zeros(4, 40), "q4_0"), "blocks of 32; this matrix has 40 columns"),
    (lambda: quantize(torch.zeros(4, 32), "int3"), "unknown weight format 'int3'"),
    (lambda: quantize(torch.zeros(32), "int8"), "takes a matrix"),
    (lambda: ggml_bytes(quantize(torch.zeros(4, 32), "int8")), "not a ggml block format"),
])
def test_bad_input_says_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        bad()
