"""Timing helpers shared by the chapters and `benchmarks/`: the median of repeated calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def seconds_per_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device: str = "cpu") -> float:
    """Median wall-clock seconds of `fn()`, after `warmup` untimed calls (GPU work included).

    Example: `seconds_per_call(lambda: sum(range(1000)))` is a few microseconds on a CPU.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
