"""Which arithmetic a training step runs in: bfloat16 autocast wherever it is both supported and faster.

bfloat16 keeps float32's exponent range with a shorter mantissa, so autocast can run the matrix
multiplications in it without loss scaling, while weights, optimizer state and reductions stay
in float32. It pays where the hardware multiplies bfloat16 natively and the multiplications
dominate the step:

- on CUDA, always (tensor cores);
- on a CPU, only with native bfloat16 instructions (AVX512-BF16 or AMX) and a model at least as
  wide as the book's CPU model (128). `benchmarks/bench_precision.py` times every CPU run of the
  book both ways. On a 2-core Zen 5 EPYC, one thread: the 10.8M lecture model (384 wide) steps
  2.8 times as fast, the 128-wide runs 1.2 (the calculator's 41-token rows) to 1.8 times (the
  assistant's 240-token chats), and the 64-wide ones 0.64x (the studies, 32 x 64) to 1.16x
  (addition): a narrow model's step is many small operations, and converting their inputs costs
  about what the multiplications save. (An earlier Zen 4 EPYC gained 1.7x at 384 wide and
  nothing at 128, where the choice then changes only the rounding.)

Two of the book's 128-wide runs keep float32 in their settings, measured: the calculator (no
faster in its short unpadded rows) and the assistant (no DPO learning rate kept its accuracy
claim at the page's seed in both precisions). `TrainConfig.bf16` overrides the choice either
way for one run, and the environment variable `BUILDGPT_BF16` (0 or 1) for every run that
leaves it unset, e.g. `BUILDGPT_BF16=0 make book`.
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

MIN_CPU_WIDTH = 128  # embedding width from which bfloat16 autocast pays on a CPU with native bfloat16


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 natively (Linux's flags avx512_bf16 or amx_bf16); False if unknown.

    Example: `cpu_has_native_bf16()` is True on a Zen 5 EPYC, False on an AVX2-only one.
    """
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def model_width(model: torch.nn.Module) -> int:
    """The widest embedding in `model` (a GPT's n_embd), 0 if it has none. Example: 384 for the lecture model."""
    return max((m.embedding_dim for m in model.modules() if isinstance(m, torch.nn.Embedding)), default=0)


def use_bf16(model: torch.nn.Module, device: str, setting: bool | None = None) -> bool:
    """Whether training `model` on `device` should autocast to bfloat16. `setting` (True/False) decides if given,
    then `BUILDGPT_BF16`.

    Example: `use_bf16(GPT(LECTURE_MODEL), "cpu")` is True on a CPU with AVX512-BF16.
    """
    if setting is not None:
        return setting
    forced = os.environ.get("BUILDGPT_BF16", "")
    if forced:
        if forced not in ("0", "1"):
            raise ValueError(f"BUILDGPT_BF16 is {forced!r}: set it to 1 (bfloat16 autocast), 0 (float32), "
                             "or unset it to let the trainer pick where it pays")
        return forced == "1"
    if device.startswith("cuda"):
        return True
    return device == "cpu" and model_width(model) >= MIN_CPU_WIDTH and cpu_has_native_bf16()


def autocast(model: torch.nn.Module, device: str, setting: bool | None = None) -> AbstractContextManager:
    """The context a training step's forward pass runs in: bfloat16 autocast, or nothing (float32).

    Example: `with autocast(model, "cpu"): loss = loss_fn(model, batch)`.
    """
    if not use_bf16(model, device, setting):
        return nullcontext()
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)


def use_compile(device: str, setting: bool | None = None) -> bool:
    """Whether to train through `torch.compile`: `setting` if given, else only on CUDA, where it pays back its warm-up.

    Example: `use_compile("cpu")` is False; `use_compile("cpu", True)` is True.
    """
    return setting if setting is not None else device.startswith("cuda")
