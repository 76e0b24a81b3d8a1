"""Every benchmark still runs against the package, at its smallest size, and the side-by-side checks it makes
before timing anything pass: the same tokens, the same merges, the same losses. What the benchmarks measure is not
looked at here (speed is benchmarked, not timed in tests); run them in full for the numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SMALLEST = {  # each a few seconds on 2 cores
    "bench_arithmetic.py": ["--problems", "200", "--reference-problems", "10"],
    "bench_bpe.py": ["--quick"],
    "bench_distributed.py": ["--steps", "2"],
    "bench_pretrain_data.py": ["--rounds", "1", "--skip-reference"],
    "bench_quantize.py": ["--steps", "10", "--tokens", "10", "--repeats", "1"],
    "bench_unpadded_loss.py": ["--steps", "2"],
}
# Not run here: no size small enough to take seconds (sampling alone is 40 s, a training step of the lecture's model
# 2 s), or not a benchmark.
LEFT_OUT = {"bench_gpt_cpu.py", "bench_precision.py", "nanogpt_reference.py"}


def test_every_benchmark_is_run_here_or_left_out_by_name():
    assert {p.name for p in BENCHMARKS.glob("*.py")} == set(SMALLEST) | LEFT_OUT


@pytest.mark.slow  # about a minute for all: outside make test-fast
@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_the_benchmark_runs_at_its_smallest_size(script, mirror_dir, tiktoken_cache):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *SMALLEST[script]], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
