"""The gpu book's plan (buildgpt.settings.gpu_plan): every chapter is planned under every profile,
the constants reproduce the run they were calibrated on, and the counting rules hold: each run at the
windows it trains on, every evaluation, the bigram's steps, and the pages that train nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from buildgpt.data.arithmetic import OPS, ArithmeticBatches, ArithmeticFormat, Problem
from buildgpt.settings import gpu_plan
from buildgpt.settings.chapters import SETTINGS, all_settings, settings_for
from buildgpt.settings.presets import LECTURE_MODEL, NANOGPT_SCHEDULE
from buildgpt.settings.types import TrainingRun


@pytest.mark.parametrize(("chapter", "profile", "settings"), all_settings(),
                         ids=[f"{c}-{p}" for c, p, _ in all_settings()])
def test_every_chapter_is_planned_from_its_own_runs(chapter, profile, settings):
    runs = gpu_plan.chapter_runs(chapter, settings)
    assert all(count >= 1 for _, count in runs)
    own = list(settings.runs().values())
    if chapter not in ("gpt", "pretrain", "distributed"):  # the ladder, the short scratch run, the CLI runs
        # exercise 2's runs are costed at their windows, no longer than the model's context
        assert all(any(run.train == o.train and replace(run.model, block_size=o.model.block_size) == o.model
                       and run.model.block_size <= o.model.block_size for o in own) for run, _ in runs)
    assert gpu_plan.chapter_minutes(chapter, settings) * 60 >= gpu_plan.CHAPTER_S


def test_the_constants_reproduce_nanogpts_shakespeare_char_run():
    """5000 steps of the lecture model with nanoGPT's evaluations took about 3 minutes on an A100, so their
    arithmetic takes about 1.5 on an H100 (taken as twice as fast)."""
    run = TrainingRun(replace(LECTURE_MODEL, vocab_size=65), replace(NANOGPT_SCHEDULE, compile=True))
    assert 1.3 < gpu_plan.run_seconds(run) / 60 < 1.7


def test_compiling_is_counted_once_per_model_shape_and_uncompiled_runs_are_slower():
    run = TrainingRun(replace(LECTURE_MODEL, vocab_size=65), replace(NANOGPT_SCHEDULE, max_iters=100))
    eager = TrainingRun(run.model, replace(run.train, compile=False))
    assert gpu_plan.step_seconds(eager) == pytest.approx(gpu_plan.EAGER_SLOWDOWN * gpu_plan.step_seconds(run))
    settings = settings_for("pretrain", "gpu")
    compiled = replace(settings, pretrain=replace(settings.pretrain, compile=True),
                       finetune=replace(settings.finetune, compile=True))
    runs = gpu_plan.chapter_runs("pretrain", compiled)
    training = sum(gpu_plan.run_seconds(r, n) for r, n in runs)
    own = gpu_plan.other_seconds("pretrain", compiled)  # its own evaluations
    expected = gpu_plan.CHAPTER_S + own + gpu_plan.COMPILE_S + training  # four runs, one model shape
    assert gpu_plan.chapter_minutes("pretrain", compiled) == pytest.approx(expected / 60)


def test_small_models_cost_their_floor_not_their_arithmetic():
    tiny = TrainingRun(replace(LECTURE_MODEL, n_layer=1, n_embd=32, n_head=1, block_size=8, vocab_size=65),
                       replace(NANOGPT_SCHEDULE, batch_size=4, compile=False))
    assert gpu_plan.step_seconds(tiny) == pytest.approx(gpu_plan.STEP_FLOOR_S + gpu_plan.LAYER_FLOOR_S)


def test_evaluations_are_counted_as_the_trainer_runs_them():
    """At step 0, every eval_interval steps, and at the end (once, when the end is on an interval)."""
    assert gpu_plan.evaluations(replace(NANOGPT_SCHEDULE, max_iters=5000, eval_interval=250)) == 21
    assert gpu_plan.evaluations(replace(NANOGPT_SCHEDULE, max_iters=600, eval_interval=250)) == 4


def test_exercise_2_is_costed_at_the_windows_its_batches_have():
    settings = settings_for("calculator", "gpu")
    traced = ArithmeticFormat(reverse=True, width=settings.digits, trace=True)
    batches = ArithmeticBatches(traced, settings.digits, [Problem(1, "+", 2)], OPS)  # as the chapter builds them
    (with_working, _), (answer_only, _) = gpu_plan.chapter_runs("calculator", settings)
    assert with_working.model.block_size == batches.length < settings.run.model.block_size
    assert answer_only.model.block_size < with_working.model.block_size
    addition = settings_for("addition", "gpu")
    (adder, formats), (lengths, schemes) = gpu_plan.chapter_runs("addition", addition)
    assert (formats, schemes) == (4, 5) and lengths.model.block_size < addition.lengths.model.block_size


def test_the_bigram_and_exercise_3s_own_evaluations_are_counted():
    bigram = settings_for("bigram", "gpu")
    longer = replace(bigram, train=replace(bigram.train, max_iters=2 * bigram.train.max_iters))
    assert gpu_plan.chapter_minutes("bigram", longer) > gpu_plan.chapter_minutes("bigram", bigram) > gpu_plan.CHAPTER_S / 60
    pretrain = settings_for("pretrain", "gpu")
    training = sum(gpu_plan.run_seconds(r, n) for r, n in gpu_plan.chapter_runs("pretrain", pretrain))
    assert gpu_plan.chapter_minutes("pretrain", pretrain) * 60 > gpu_plan.CHAPTER_S + training


def test_the_plan_covers_the_table_and_prints_its_total(capsys):
    planned = gpu_plan.planned_minutes()
    assert set(planned) == set(SETTINGS)
    pages = len(gpu_plan.OTHER_PAGES) * gpu_plan.CHAPTER_S / 60
    assert gpu_plan.total_minutes(jobs=1) == pytest.approx(sum(planned.values()) + pages)  # one after another
    scheduled, arithmetic = gpu_plan.together_bounds()
    alone = sum(planned[chapter] for chapter in gpu_plan.ALONE)
    assert gpu_plan.total_minutes() == pytest.approx(alone + max(scheduled, arithmetic))
    assert max(planned.values()) <= scheduled < gpu_plan.total_minutes(jobs=1)
    gpu_plan.main()
    assert "on one H100 (planned;" in capsys.readouterr().out.splitlines()[-1]


def test_the_gpu_book_is_planned_within_its_budget():
    assert gpu_plan.total_minutes() <= gpu_plan.BUDGET_MINUTES


def test_longest_first_starts_each_chapter_on_the_first_kernel_free():
    assert gpu_plan.longest_first({"a": 3, "b": 2, "c": 2}, jobs=2) == 4
    assert gpu_plan.longest_first({"a": 3, "b": 2, "c": 2}, jobs=1) == 7
    assert gpu_plan.longest_first({"a": 3, "b": 2}, jobs=4) == 3


def test_the_gpu_is_busy_with_arithmetic_not_with_launches():
    """A small model's steps cost the launch floor, but keep the GPU busy only for their arithmetic; the lecture
    model's steps are all arithmetic."""
    for chapter, small in (("positions", True), ("pretrain", False)):
        settings = settings_for(chapter, "gpu")
        training = sum(gpu_plan.run_seconds(r, n) for r, n in gpu_plan.chapter_runs(chapter, settings))
        own = sum(gpu_plan.step_seconds(r) * b / 3 for r, b in gpu_plan.own_evaluations(chapter, settings))
        busy = gpu_plan.gpu_seconds(chapter, settings)
        assert busy < training if small else busy == pytest.approx(training + own)
