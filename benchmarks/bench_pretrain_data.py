"""Exercise 3's data path, side by side with nanoGPT's way: preparing the novels, and training from the token file.

    .venv/bin/python benchmarks/bench_pretrain_data.py                # ~2 min on 2 cores
    .venv/bin/python benchmarks/bench_pretrain_data.py --skip-reference

1. Preparing the corpus, each in a fresh process so its peak memory is its own:
   - ours, `prepare_corpus`: streams the text out of the .xz, one byte per character, split by book;
   - reference, the way nanoGPT's `data/shakespeare_char/prepare.py` does it: the whole text in
     memory, a Python list of ints, then a numpy array written to disk.
   Reported: seconds, MB/s of text, peak resident memory, and the ratios. Then a second call of
   ours with everything prepared already (the bar: under a second).
2. Training steps of the chapter's cpu model with batches read from the memory-mapped token
   file against the same windows from an in-memory tensor, alternating, median of each.
   The bar: the memory map costs at most 5% per step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import torch

from buildgpt.data.batches import TokenBatches
from buildgpt.data.prepared import prepare_corpus
from buildgpt.nn.model import GPT
from buildgpt.settings.chapters import settings_for
from buildgpt.train.loop import make_optimizer
from buildgpt.train.objectives import next_token_loss

# Each job prints its seconds; the parent reads the child's peak memory from the kernel.
OURS = """
import sys, time
from buildgpt.data.prepared import prepare_corpus
t = time.perf_counter(); prepare_corpus(folder=sys.argv[1], progress=False); print(time.perf_counter() - t)
"""
REFERENCE = """
import sys, time, numpy as np
from buildgpt.data import registry
t = time.perf_counter()
data = registry.load_text("gutenberg-novels")
chars = sorted(set(data))
stoi = {ch: i for i, ch in enumerate(chars)}
ids = [stoi[c] for c in data]
n = int(0.9 * len(ids))
np.array(ids[:n], dtype=np.uint16).tofile(sys.argv[1] + "/train.bin")
np.array(ids[n:], dtype=np.uint16).tofile(sys.argv[1] + "/val.bin")
print(time.perf_counter() - t)
"""


def run_job(code: str, folder: str) -> tuple[float, float]:
    """(seconds, peak resident MB) of `code` run in a fresh Python process."""
    wrapper = (f"import resource, subprocess, sys; p = subprocess.run([sys.executable, '-c', {code!r}, {folder!r}], "
               "capture_output=True, text=True, check=True); "
               "print(p.stdout.strip(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def step_seconds(model, optimizer, batches, steps: int, seed: int) -> list[float]:
    rng, times = torch.Generator().manual_seed(seed), []
    for _ in range(steps):
        start = time.perf_counter()
        loss = next_token_loss(model, batches.batch("train", 32, rng))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-reference", action="store_true", help="skip nanoGPT's in-memory preparation")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds of training steps")
    args = parser.parse_args()
    text_mb = 89_405_015 / 1e6  # the decompressed corpus
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["ours"] = run_job(OURS, tmp)
        results["ours, again"] = run_job(OURS, tmp)
        if not args.skip_reference:
            with tempfile.TemporaryDirectory() as ref:
                results["reference"] = run_job(REFERENCE, ref)
    for name, (seconds, peak) in results.items():
        print(f"prepare {name:>12}: {seconds:6.2f} s, {text_mb / seconds:6.1f} MB/s, peak memory {peak:7.0f} MB")
    if "reference" in results:
        (ours_s, ours_m), (ref_s, ref_m) = results["ours"], results["reference"]
        print(f"ours vs reference: {ref_s / ours_s:.1f}x faster, {ref_m / ours_m:.1f}x less memory")

    corpus = prepare_corpus(progress=False)
    settings = settings_for("pretrain", "cpu")
    torch.manual_seed(0)
    model = GPT(replace(settings.model, vocab_size=len(corpus.chars)))
    optimizer = make_optimizer(model, settings.pretrain, "cpu")
    block = model.config.block_size
    mapped = corpus.batches(block)
    in_memory = TokenBatches(torch.from_numpy(corpus.train.astype("int64")), torch.from_numpy(corpus.val.astype("int64")),
                             block)
    times = {"memory map": [], "in-memory tensor": []}
    step_seconds(model, optimizer, in_memory, 5, seed=0)  # warm-up
    for round_ in range(args.rounds):
        for name, batches in (("memory map", mapped), ("in-memory tensor", in_memory)):
            times[name] += step_seconds(model, optimizer, batches, 10, seed=round_)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"train step, batches from {name:>16}: {1000 * median:6.1f} ms (median of {len(times[name])})")
    ratio = medians["memory map"] / medians["in-memory tensor"]
    print(f"memory map / in-memory: {ratio:.3f} (bar: <= 1.05)")
    print(json.dumps({"prepare": results, "step_ms": {k: 1000 * v for k, v in medians.items()}, "ratio": ratio}))


if __name__ == "__main__":
    main()
