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

`chapter_runs` says which runs each chapter trains and how many times, as the chapter does, each at
the windows it trains on (exercise 2's problems are padded to the longest problem, not to the
model's context). `other_seconds` adds what is not a GPT's training: the bigram's steps (at the
floor: it has no layers), evaluations a chapter runs itself, and the work of `OTHER_WORK_S`. The
pages that train nothing (`OTHER_PAGES`) still start a kernel and import the package.
Example: `round(total_minutes(), 1)` is the whole book's planned minutes.

One chapter after another the book does not fit the budget: the work besides training (`CHAPTER_S`,
`OTHER_WORK_S`, `OTHER_PAGES`) is about 6 minutes by itself, and training about 7 more, most of it
the full-size runs the book promises (chapter 3's lecture model, exercise 2's ten-digit adder in its
four formats, exercise 3's pretraining, finetuning and its two routes from scratch). But much of that leaves
the GPU idle: the work besides training runs on the CPU, and a small model's step waits on kernel
launches. So scripts/gpu_book.py executes `JOBS` chapters at once, each kernel on its share of the
machine's cores, after the chapters that time the GPU itself (`ALONE`) have run with nothing beside
them. Without MPS the GPU runs one process's kernels at a time, so the plan counts the arithmetic of
the chapters run together one after another (`gpu_seconds`): the book takes the `ALONE` chapters'
minutes, plus the longer of that arithmetic and the `longest_first` schedule of the rest on `JOBS`
kernels. What the first GPU run measures decides how close these estimates are.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..data.arithmetic import ArithmeticFormat
from ..nn.model import GPT
from ..train import flops
from ..train.loop import TrainConfig
from .chapters import SETTINGS, settings_for
from .types import TrainingRun

H100_FLOPS = 100e12  # FLOP/s achieved: twice what nanoGPT's shakespeare-char run reaches on an A100
STEP_FLOOR_S = 1e-3  # seconds per training step, before its layers
LAYER_FLOOR_S = 0.8e-3  # and per layer
COMPILE_S = 45.0  # torch.compile, per model shape compiled in a chapter
EAGER_SLOWDOWN = 1.4  # uncompiled arithmetic, against compiled
CHAPTER_S = 10.0  # a kernel's start, imports, data, figures and samples
# Work besides training, in seconds, from the cpu book's runs: tokenizers train on one CPU core on any machine,
# the distributed chapter's exact and timed steps are 2 CPU processes under every profile, the efficiency chapter
# compiles its CPU decoder and times three decoders on the CPU (30 s), the rest is timing kernels and decoding
# held-out problems or requests in batches.
OTHER_WORK_S = {"tokenizer": 35.0, "distributed": 45.0, "efficiency": 60.0, "assistant": 30.0, "bits_per_byte": 15.0,
                "batched_heads": 10.0, "addition": 10.0, "calculator": 10.0}
OTHER_PAGES = ("intro", "nanogpt")  # pages of _toc.yml with code but no settings: each a CHAPTER_S, at most
BUDGET_MINUTES = 8.0  # the whole gpu book (DESIGN.md)
JOBS = 4  # chapters the gpu book executes at once: the GPU machine's 16 cores, 4 for each chapter's kernel
ALONE = ("efficiency",)  # chapters that time the GPU itself (attention kernels, compiling, MFU): run first, alone


def flops_per_token(run: TrainingRun) -> float:
    """train.flops's count for `run`'s model, built on the meta device (shapes only, no memory).

    Example: `flops_per_token(settings_for("gpt", "gpu").runs()["model"])` is about 7.1e7, the lecture model's.
    """
    with torch.device("meta"):
        return flops.flops_per_token(GPT(run.model))


def arithmetic_seconds(run: TrainingRun) -> float:
    """The GPU's busy time in one training step of `run` on one H100: its arithmetic, launches aside.

    Example: `arithmetic_seconds(settings_for("gpt", "gpu").runs()["model"])` is about 0.016, uncompiled.
    """
    tokens = run.train.batch_size * run.train.grad_accum_steps * run.model.block_size
    return tokens * flops_per_token(run) / H100_FLOPS * (1.0 if run.train.compile is not False else EAGER_SLOWDOWN)


def step_seconds(run: TrainingRun) -> float:
    """One training step (forward, backward, update) of `run` on one H100: its arithmetic or its launch floor.

    Example: `step_seconds(settings_for("gpt", "gpu").runs()["model"])` is about 0.016: arithmetic, over a 5.8 ms floor.
    """
    floor = STEP_FLOOR_S + LAYER_FLOOR_S * run.model.n_layer
    return max(arithmetic_seconds(run), floor * run.train.grad_accum_steps)


def evaluations(train: TrainConfig) -> int:
    """How many times `loop.train` evaluates: at step 0, every `eval_interval` steps, and at the end.

    Example: `evaluations(TrainConfig(max_iters=5000, eval_interval=250))` is 21.
    """
    return train.max_iters // train.eval_interval + 1 + (train.max_iters % train.eval_interval > 0)


def steps(train: TrainConfig) -> float:
    """A run's training steps, and its evaluation batches counted as a third of a step each.

    Example: `steps(TrainConfig(max_iters=90, eval_interval=30, eval_iters=3))` is 98.0: 90 + 4 x 2 x 3 / 3.
    """
    return train.max_iters + evaluations(train) * 2 * train.eval_iters / 3


def run_seconds(run: TrainingRun, count: int = 1) -> float:
    """`count` trainings of `run`, evaluations included, compiling not.

    Example: `run_seconds(settings_for("gpt", "gpu").runs()["model"])` is about 86, the lecture model's 5000 steps.
    """
    return count * step_seconds(run) * steps(run.train)


def windowed(run: TrainingRun, fmt: ArithmeticFormat, ops: tuple[str, ...], digits: int) -> TrainingRun:
    """`run` costed at the windows exercise 2 trains it on: every problem padded to the longest one.

    Example: `windowed(run, ArithmeticFormat(reverse=True, width=10), ("+",), 10).model.block_size` is 33.
    """
    return TrainingRun(replace(run.model, block_size=fmt.max_length(ops, digits) - 1), run.train)


def chapter_runs(chapter: str, settings) -> list[tuple[TrainingRun, int]]:
    """The runs `chapter` trains under these settings, each with how many times (as the chapter's page does).

    Example: `len(chapter_runs("gpt", settings_for("gpt", "gpu")))` is 10: the lecture model, 8 rungs, dropout.
    """
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
    if chapter == "addition":  # four formats (of one length), five position schemes for the lengths
        adder = windowed(runs["adder"], ArithmeticFormat(reverse=True, width=settings.digits), ("+",), settings.digits)
        lengths = windowed(runs["lengths"], ArithmeticFormat(reverse=True, reverse_operands=True), ("+",),
                           settings.length_digits)
        return [(adder, 4), (lengths, 5)]
    if chapter == "calculator":  # with the working and without (answer only): the same model, shorter windows
        return [(windowed(settings.run, ArithmeticFormat(reverse=True, width=settings.digits, trace=trace),
                          settings.train_ops, settings.digits), 1) for trace in (True, False)]
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


def other_seconds(chapter: str, settings) -> float:
    """What `chapter` does besides training its GPTs: `OTHER_WORK_S`, the bigram's steps, and the evaluations
    exercise 3 runs itself (Shakespeare's val loss at each pretraining evaluation; the novels' after, twice as many
    batches, for the pretrained and the finetuned model), a third of a step per batch.
    Example: `other_seconds("tokenizer", settings_for("tokenizer", "gpu"))` is 35.0, its `OTHER_WORK_S`.
    """
    seconds = OTHER_WORK_S.get(chapter, 0.0)
    if chapter == "bigram":  # an embedding table: its step costs the floor, without layers
        seconds += STEP_FLOOR_S * steps(settings.train)
    return seconds + sum(step_seconds(run) * batches / 3 for run, batches in own_evaluations(chapter, settings))


def own_evaluations(chapter: str, settings) -> list[tuple[TrainingRun, int]]:
    """The forward batches `chapter` evaluates itself, outside `loop.train`, each with the run whose model does:
    exercise 3's Shakespeare val loss at each pretraining evaluation, then the novels' for two models.
    Example: `own_evaluations("gpt", settings_for("gpt", "gpu"))` is `[]`: only "pretrain" has any.
    """
    if chapter != "pretrain":
        return []
    t = settings.pretrain
    return [(TrainingRun(settings.model, t), evaluations(t) * t.eval_iters + 2 * 2 * t.eval_iters)]


def gpu_seconds(chapter: str, settings) -> float:
    """The seconds `chapter` keeps the GPU busy: the arithmetic of its runs and its own evaluations.

    Example: `gpu_seconds("gpt", settings_for("gpt", "gpu"))` is about 88.
    """
    training = sum(count * arithmetic_seconds(run) * steps(run.train) for run, count in chapter_runs(chapter, settings))
    return training + sum(arithmetic_seconds(run) * batches / 3 for run, batches in own_evaluations(chapter, settings))


def chapter_minutes(chapter: str, settings) -> float:
    """The planned minutes of `chapter` on one H100. Example: `chapter_minutes("gpt", settings_for("gpt", "gpu"))`."""
    runs = chapter_runs(chapter, settings)
    compiled = {run.model for run, _ in runs if run.train.compile is not False}
    training = sum(run_seconds(run, count) for run, count in runs)
    return (CHAPTER_S + other_seconds(chapter, settings) + COMPILE_S * len(compiled) + training) / 60


def planned_minutes(profile: str = "gpu") -> dict[str, float]:
    """Every chapter's planned minutes under `profile` (meaningful for gpu: the estimates are an H100's).

    Example: `planned_minutes()["gpt"]` is about 1.9.
    """
    return {chapter: chapter_minutes(chapter, by_profile[profile]) for chapter, by_profile in SETTINGS.items()}


def longest_first(minutes: dict[str, float], jobs: int) -> float:
    """How long `jobs` kernels take over chapters of these `minutes`, each started, longest first, on the first
    kernel free. Example: `longest_first({"a": 3, "b": 2, "c": 2}, jobs=2) == 4`."""
    kernels = [0.0] * jobs
    for planned in sorted(minutes.values(), reverse=True):
        kernels[kernels.index(min(kernels))] += planned
    return max(kernels)


def together_bounds(profile: str = "gpu", jobs: int = JOBS) -> tuple[float, float]:
    """The minutes of the chapters run together (all but `ALONE`, the pages that train nothing included) on `jobs`
    kernels, and the minutes of their arithmetic on the GPU, one after another: the book takes the longer.
    Example: `scheduled, arithmetic = together_bounds()` gives about 3.1 and 6.1 minutes.
    """
    together = {c: m for c, m in planned_minutes(profile).items() if c not in ALONE}
    pages = {page: CHAPTER_S / 60 for page in OTHER_PAGES}
    arithmetic = sum(gpu_seconds(chapter, SETTINGS[chapter][profile]) for chapter in together) / 60
    return longest_first(together | pages, jobs), arithmetic


def total_minutes(profile: str = "gpu", jobs: int = JOBS) -> float:
    """The whole book's planned minutes: the `ALONE` chapters, then the rest `jobs` at a time.

    Example: `total_minutes()` is about 7.4, and `total_minutes(jobs=1)` about 13.4.
    """
    alone = sum(planned_minutes(profile)[chapter] for chapter in ALONE)
    return alone + max(together_bounds(profile, jobs))


def main() -> None:
    """Print the plan: `python -m buildgpt.settings.gpu_plan` (or `make gpu-plan`)."""
    minutes = planned_minutes()
    for chapter, planned in minutes.items():
        print(f"{chapter:>15} {planned:5.2f} min")
    print(f"{'other pages':>15} {len(OTHER_PAGES) * CHAPTER_S / 60:5.2f} min ({', '.join(OTHER_PAGES)}: no training)")
    print(f"{'one by one':>15} {total_minutes(jobs=1):5.2f} min")
    scheduled, arithmetic = together_bounds()
    print(f"{'together':>15} {scheduled:5.2f} min on {JOBS} kernels, besides {', '.join(ALONE)} (first, alone); "
          f"{arithmetic:.2f} min of their arithmetic on the GPU")
    total = total_minutes()
    verdict = "within" if total <= BUDGET_MINUTES else f"{total - BUDGET_MINUTES:.1f} min over"
    print(f"{'all':>15} {total:5.2f} min on one H100 (planned; {verdict} the {BUDGET_MINUTES:g}-minute budget)")


if __name__ == "__main__":
    main()
