"""The `gpu` book's plan: how many minutes each chapter should take on one H100, from its sizes.

The whole `gpu` book must execute in 8 minutes (DESIGN.md), so every `gpu` setting is sized
against this plan, and the first GPU run (`scripts/gpu-book.sh`, its gpu-book.json) measures it.
Until then the minutes are estimates, from three numbers:

- Throughput. nanoGPT's shakespeare-char run (the lecture model, 5000 steps of 64 x 256
  tokens, 200 evaluation batches per split every 250 steps) takes about 3 minutes on an A100:
  about 50 TFLOP/s, counted as `train.flops` counts (6N + 12LCT per token, a third of that for
  a forward pass alone). An H100 is taken as twice that.
- A floor per step for small models, whose time is kernel launches, not arithmetic: 1 ms plus
  0.8 ms per layer (a forward and backward pass launch some 60 kernels per layer).
- Compiling: `torch.compile` costs about 45 s for each model shape a chapter compiles (the
  trainer compiles on CUDA unless a run says `compile=False`); another model of the same shape
  reuses the compiled code. Uncompiled, the arithmetic runs 1.4 times slower (layer norms,
  activations and residual sums each read and write memory once more), so compiling pays only
  for runs of many thousand steps, and the book's gpu runs are uncompiled.

`chapter_runs` says which runs each chapter trains and how many times, as the chapter does.
Example: `round(sum(planned_minutes().values()), 1)` is the whole book's planned minutes.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..nn.model import GPT
from ..train import flops
from .chapters import SETTINGS, settings_for
from .types import TrainingRun

H100_FLOPS = 100e12  # FLOP/s achieved: twice what nanoGPT's shakespeare-char run reaches on an A100
STEP_FLOOR_S = 1e-3  # seconds per training step, before its layers
LAYER_FLOOR_S = 0.8e-3  # and per layer
COMPILE_S = 45.0  # torch.compile, per model shape compiled in a chapter
EAGER_SLOWDOWN = 1.4  # uncompiled arithmetic, against compiled
CHAPTER_S = 10.0  # a kernel's start, imports, data, figures and samples
# Work besides training, in seconds, from the cpu book's runs: tokenizers train on one CPU core on any machine,
# the distributed chapter's exact and timed steps are 2 CPU processes under every profile, the rest is timing
# kernels and decoding held-out problems or requests in batches.
OTHER_WORK_S = {"tokenizer": 65.0, "distributed": 45.0, "efficiency": 30.0, "assistant": 30.0, "bits_per_byte": 15.0,
                "batched_heads": 10.0, "addition": 10.0, "calculator": 10.0}
BUDGET_MINUTES = 8.0  # the whole gpu book (DESIGN.md)


def flops_per_token(run: TrainingRun) -> float:
    """train.flops's count for `run`'s model, built on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        return flops.flops_per_token(GPT(run.model))


def step_seconds(run: TrainingRun) -> float:
    """One training step (forward, backward, update) of `run` on one H100."""
    tokens = run.train.batch_size * run.train.grad_accum_steps * run.model.block_size
    floor = STEP_FLOOR_S + LAYER_FLOOR_S * run.model.n_layer
    arithmetic = tokens * flops_per_token(run) / H100_FLOPS * (1.0 if run.train.compile is not False else EAGER_SLOWDOWN)
    return max(arithmetic, floor * run.train.grad_accum_steps)


def run_seconds(run: TrainingRun, count: int = 1) -> float:
    """`count` trainings of `run`, evaluations included (a third of a step per evaluation batch), compiling not."""
    t = run.train
    forward_batches = (t.max_iters // t.eval_interval + 1) * 2 * t.eval_iters
    return count * step_seconds(run) * (t.max_iters + forward_batches / 3)


def chapter_runs(chapter: str, settings) -> list[tuple[TrainingRun, int]]:
    """The runs `chapter` trains under these settings, each with how many times (as the chapter's page does)."""
    runs = settings.runs()
    if chapter == "gpt":  # the lecture model, the ladder, dropout (the takeaway gpt.ipynb runs in the CPU book only)
        ladder, overfit = settings.ladder, settings.overfitting
        rungs = [TrainingRun(model, ladder.train) for _, _, model in ladder.rungs()]
        return [(runs["model"], 1), *((rung, 1) for rung in rungs),
                (TrainingRun(overfit.model, overfit.train), 2)]
    if chapter == "positions":  # six schemes, each seed
        return [(runs["model"], 6 * len(settings.seeds))]
    if chapter == "researcher":  # baseline, four changes, all four: each seed
        return [(runs["model"], 6 * len(settings.seeds))]
    if chapter == "addition":  # four formats, five position schemes for the lengths
        return [(runs["adder"], 4), (runs["lengths"], 5)]
    if chapter == "calculator":  # with the working and without
        return [(runs["calculator"], 2)]
    if chapter == "pretrain":  # pretrain, finetune, and from scratch for the finetuning's and the whole budget
        whole = runs["scratch"]
        short = TrainingRun(whole.model, settings.scratch(settings.finetune.max_iters))
        return [(runs["pretrain"], 1), (runs["finetune"], 1), (short, 1), (whole, 1)]
    if chapter == "bits_per_byte":  # characters and BPE tokens
        return [(runs["lm"], 2)]
    if chapter == "distributed":  # on the GPU: the command-line run of the gpt preset, then its resumption
        gpt = settings_for("gpt", "gpu")
        return [(TrainingRun(gpt.model, replace(gpt.train, max_iters=settings.cli_iters)), 2)]
    if chapter == "assistant":  # a DPO step runs the policy and the frozen reference on both answers
        return [(runs["pretrain"], 1), (runs["sft"], 1), (runs["dpo"], 3)]
    return [(run, 1) for run in runs.values()]


def chapter_minutes(chapter: str, settings) -> float:
    """The planned minutes of `chapter` on one H100. Example: `chapter_minutes("gpt", settings_for("gpt", "gpu"))`."""
    runs = chapter_runs(chapter, settings)
    compiled = {run.model for run, _ in runs if run.train.compile is not False}
    training = sum(run_seconds(run, count) for run, count in runs)
    return (CHAPTER_S + OTHER_WORK_S.get(chapter, 0.0) + COMPILE_S * len(compiled) + training) / 60


def planned_minutes(profile: str = "gpu") -> dict[str, float]:
    """Every chapter's planned minutes under `profile` (meaningful for gpu: the estimates are an H100's)."""
    return {chapter: chapter_minutes(chapter, by_profile[profile]) for chapter, by_profile in SETTINGS.items()}


def main() -> None:
    """Print the plan: `python -m buildgpt.settings.gpu_plan` (or `make gpu-plan`)."""
    minutes = planned_minutes()
    for chapter, planned in minutes.items():
        print(f"{chapter:>15} {planned:5.2f} min")
    total = sum(minutes.values())
    verdict = "within" if total <= BUDGET_MINUTES else f"{total - BUDGET_MINUTES:.1f} min over"
    print(f"{'all':>15} {total:5.2f} min on one H100 (planned; {verdict} the {BUDGET_MINUTES:g}-minute budget)")


if __name__ == "__main__":
    main()
