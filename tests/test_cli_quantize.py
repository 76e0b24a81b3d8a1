"""Quantized checkpoints: `buildgpt quantize`, sampling with `--weights`, and clear errors for the wrong format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from buildgpt.cli import main
from buildgpt.infer.load import load_char_model, load_model
from buildgpt.infer.quantize import QuantizedLinear, quantize_model
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
CHARS = list("\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@pytest.fixture
def fp32_checkpoint(tmp_path) -> str:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(CHARS), block_size=32, n_layer=1, n_head=2, n_embd=64))
    path = tmp_path / "best.safetensors"
    checkpoint.save(path, model, step=7, meta={"tokenizer": {"type": "char", "chars": CHARS}, "history": {}})
    return str(path)


@pytest.mark.parametrize("format, stored", [("int8", "int8"), ("int4", "q4_0"), ("q8_0", "q8_0")])
def test_quantize_writes_a_checkpoint_that_loads_back_with_the_same_logits(fp32_checkpoint, capsys, format, stored):
    assert main(["quantize", fp32_checkpoint, "--format", format]) == 0
    out = fp32_checkpoint.replace(".safetensors", f".{stored}.safetensors")
    assert f"written to {out}" in capsys.readouterr().out
    small, ckpt = load_model(out)
    assert ckpt.meta["weights"] == stored and ckpt.step == 7 and "history" not in ckpt.meta
    assert any(isinstance(m, QuantizedLinear) and m.format == stored for m in small.modules())
    original, _ = load_model(fp32_checkpoint)
    idx = torch.randint(0, len(CHARS), (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(small(idx)[0], quantize_model(original, stored)(idx)[0])  # exactly what was written


@pytest.mark.parametrize("weights", ["fp32", "fp16", "int8", "int4", "q8_0"])
def test_sample_with_each_weight_format(fp32_checkpoint, capsys, weights):
    assert main(["sample", fp32_checkpoint, "--prompt", "ab", "--max-new-tokens", "5", "--seed", "0",
                 "--weights", weights]) == 0
    assert capsys.readouterr().out.startswith("ab")


def test_sampling_a_quantized_checkpoint_uses_its_format_and_refuses_another(fp32_checkpoint, capsys):
    main(["quantize", fp32_checkpoint, "--format", "int8", "--out", fp32_checkpoint + ".int8"])
    assert main(["sample", fp32_checkpoint + ".int8", "--prompt", "a", "--max-new-tokens", "3"]) == 0
    capsys.readouterr()
    assert main(["sample", fp32_checkpoint + ".int8", "--weights", "q4_0"]) == 2
    err = capsys.readouterr().err
    assert "holds int8 weights; it cannot be sampled as q4_0" in err and "Leave out --weights" in err


def test_a_quantized_checkpoint_is_not_taken_for_float32_nor_the_reverse(fp32_checkpoint, capsys):
    main(["quantize", fp32_checkpoint, "--format", "int8", "--out", fp32_checkpoint + ".int8"])
    with pytest.raises(checkpoint.CheckpointError, match="holds int8 weights, not fp32"):
        load_model(fp32_checkpoint + ".int8", weights="fp32")
    with pytest.raises(checkpoint.CheckpointError, match="holds fp32 weights, not int8"):
        load_model(fp32_checkpoint, weights="int8")
    with pytest.raises(checkpoint.CheckpointError, match="holds int8 weights, not fp32"):
        load_char_model(fp32_checkpoint + ".int8", "ab")  # finetuning needs float32 weights
    capsys.readouterr()
    assert main(["quantize", fp32_checkpoint + ".int8", "--format", "q4_0"]) == 2  # quantizing twice
    assert "holds int8 weights, not fp32" in capsys.readouterr().err


@pytest.mark.parametrize("weights", ["int8", "fp32"])
def test_compiled_sampling_prints_the_plain_samplers_greedy_text(fp32_checkpoint, capsys, weights):
    """40 tokens after a 2-character prompt: past the 32-character window, so the refill is compared too."""
    args = ["sample", fp32_checkpoint, "--prompt", "ab", "--max-new-tokens", "40", "--temperature", "0",
            "--weights", weights]
    assert main(args) == 0
    plain = capsys.readouterr().out
    assert main([*args, "--compile"]) == 0
    assert capsys.readouterr().out == plain


def test_compiled_sampling_refuses_what_it_does_not_do(fp32_checkpoint, capsys):
    for extra, named in ((["--top-k", "5"], "--top-k"), (["--no-cache"], "--no-cache"),
                         (["--weights", "q4_0"], "other --weights")):
        assert main(["sample", fp32_checkpoint, "--compile", *extra]) == 2
        err = capsys.readouterr().err
        assert named in err and "drop --compile" in err
    main(["quantize", fp32_checkpoint, "--format", "int8", "--out", fp32_checkpoint + ".int8"])
    assert main(["sample", fp32_checkpoint + ".int8", "--compile"]) == 2
    assert "holds int8 weights, not fp32" in capsys.readouterr().err


@pytest.mark.parametrize("same_file", [True, False])
def test_quantize_replaces_no_file_not_even_its_own_source(fp32_checkpoint, capsys, same_file):
    target = fp32_checkpoint if same_file else fp32_checkpoint.replace("best", "other")
    if not same_file:
        Path(target).write_bytes(b"another run's checkpoint")
    before = Path(target).read_bytes()
    assert main(["quantize", fp32_checkpoint, "--format", "int8", "--out", target]) == 2
    assert "exists, and quantize replaces no file" in capsys.readouterr().err
    assert Path(target).read_bytes() == before
