"""Which arithmetic a training step runs in: bfloat16 autocast wherever it is both supported and faster.

bfloat16 keeps float32's exponent range with a shorter mantissa, so autocast can run the matrix
multiplications in it without loss scaling, while weights, optimizer state and reductions stay
in float32. It pays where the hardware multiplies bfloat16 natively and the multiplications
dominate the step:

- on CUDA, always (tensor cores);
- on a CPU, only with native bfloat16 instructions (AVX512-BF16 or AMX) and a model wide enough.
  Measured by `benchmarks/bench_gpt_cpu.py --part train-step` on a 2-core AMD EPYC with
  AVX512-BF16: the 10.8M lecture model (384 wide) steps about 1.7 times as fast, the book's
  128-wide CPU model no faster (its step is many small operations, and converting their inputs
  costs what the multiplications save). `MIN_CPU_WIDTH` sits between the two.

`TrainConfig.bf16` overrides the choice either way.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

MIN_CPU_WIDTH = 256  # embedding width from which bfloat16 autocast pays on a CPU with native bfloat16


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 natively (Linux's flags avx512_bf16 or amx_bf16); False if unknown."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def model_width(model: torch.nn.Module) -> int:
    """The widest embedding in `model` (a GPT's n_embd), 0 if it has none. Example: 384 for the lecture model."""
    return max((m.embedding_dim for m in model.modules() if isinstance(m, torch.nn.Embedding)), default=0)


def use_bf16(model: torch.nn.Module, device: str, setting: bool | None = None) -> bool:
    """Whether training `model` on `device` should autocast to bfloat16. `setting` (True/False) decides if given.

    Example: `use_bf16(GPT(LECTURE_MODEL), "cpu")` is True on a CPU with AVX512-BF16.
    """
    if setting is not None:
        return setting
    if device.startswith("cuda"):
        return True
    return device == "cpu" and model_width(model) >= MIN_CPU_WIDTH and cpu_has_native_bf16()


def autocast(model: torch.nn.Module, device: str, setting: bool | None = None) -> AbstractContextManager:
    """The context a training step's forward pass runs in: bfloat16 autocast, or nothing (float32)."""
    if not use_bf16(model, device, setting):
        return nullcontext()
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
