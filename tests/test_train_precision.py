"""bfloat16 autocast where it pays: the CPU's flags, the model's width, the override, and a run that still learns."""

from __future__ import annotations

import pytest
import torch

from buildgpt.data.batches import TokenBatches
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.settings.presets import CPU_MODEL, LECTURE_MODEL
from buildgpt.train import precision
from buildgpt.train.loop import TrainConfig, train

SMALL = GPTConfig(vocab_size=16, block_size=16, n_layer=1, n_head=2, n_embd=32, dropout=0.0, mlp="gelu")

@pytest.mark.parametrize("flags, native", [("fpu sse avx512f avx512_bf16 fma", True), ("fpu amx_bf16 amx_tile", True),
                                           ("fpu sse avx512f avx512_vnni", False), ("fpu avx512_bf16x", False)])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert precision.cpu_has_native_bf16(cpuinfo) is native
    assert precision.cpu_has_native_bf16(tmp_path / "missing") is False

def test_bf16_is_chosen_on_cuda_and_for_wide_models_on_a_native_cpu(monkeypatch):
    monkeypatch.delenv("BUILDGPT_BF16", raising=False)
    with torch.device("meta"):
        wide, book_cpu, narrow = GPT(LECTURE_MODEL), GPT(CPU_MODEL), GPT(SMALL)
    assert precision.model_width(wide) == 384 and precision.model_width(narrow) == 32
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.use_bf16(wide, "cpu") and precision.use_bf16(book_cpu, "cpu")
    assert not precision.use_bf16(narrow, "cpu")
    assert precision.use_bf16(narrow, "cuda:0")
    assert not precision.use_bf16(wide, "cpu", setting=False) and precision.use_bf16(narrow, "cpu", setting=True)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert not precision.use_bf16(wide, "cpu") and not precision.use_bf16(wide, "mps")

def test_the_environment_switches_the_choice_for_runs_that_leave_it_unset(monkeypatch):
    with torch.device("meta"):
        wide, narrow = GPT(LECTURE_MODEL), GPT(SMALL)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setenv("BUILDGPT_BF16", "0")
    assert not precision.use_bf16(wide, "cpu") and not precision.use_bf16(narrow, "cuda:0")
    assert precision.use_bf16(wide, "cpu", setting=True)  # a run's own setting still wins
    monkeypatch.setenv("BUILDGPT_BF16", "1")
    assert precision.use_bf16(narrow, "cpu") and not precision.use_bf16(wide, "cpu", setting=False)
    monkeypatch.setenv("BUILDGPT_BF16", "yes")
    with pytest.raises(ValueError, match="BUILDGPT_BF16 is 'yes': set it to 1"):
        precision.use_bf16(wide, "cpu")


def test_training_in_bf16_on_the_cpu_learns_as_float32_does():
    data = torch.arange(4000) % 16  # a cycle: the next token is always the current one plus one
    batches = TokenBatches(data[:3600], data[3600:], SMALL.block_size)
    final = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = GPT(SMALL)
        config = TrainConfig(max_iters=60, eval_interval=60, eval_iters=2, batch_size=8, learning_rate=1e-2, bf16=bf16)
        final[bf16] = train(model, batches, config, progress=False).val[-1]
        assert next(model.parameters()).dtype == torch.float32  # autocast keeps the weights in float32
    assert final[False] < 0.5 and abs(final[True] - final[False]) < 0.1, final

def test_autocast_runs_the_matrix_multiplications_in_bf16():
    model = GPT(SMALL)
    x = torch.zeros(1, 4, 32)
    with precision.autocast(model, "cpu", setting=True):
        assert model.lm_head(x).dtype == torch.bfloat16
    with precision.autocast(model, "cpu", setting=False):
        assert model.lm_head(x).dtype == torch.float32


def test_compile_is_on_by_default_only_on_cuda_and_a_setting_wins():
    assert not precision.use_compile("cpu") and precision.use_compile("cuda:0")
    assert precision.use_compile("cpu", True) and not precision.use_compile("cuda", False)
