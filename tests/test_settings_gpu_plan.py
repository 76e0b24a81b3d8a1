"""The gpu book's plan (buildgpt.settings.gpu_plan): every chapter is planned under every profile,
the constants reproduce the run they were calibrated on, and the counting rules hold."""

from __future__ import annotations

from dataclasses import replace

import pytest

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
        assert all(run in own for run, _ in runs)
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
    expected = gpu_plan.CHAPTER_S + gpu_plan.COMPILE_S + training  # four runs, one model shape
    assert gpu_plan.chapter_minutes("pretrain", compiled) == pytest.approx(expected / 60)


def test_small_models_cost_their_floor_not_their_arithmetic():
    tiny = TrainingRun(replace(LECTURE_MODEL, n_layer=1, n_embd=32, n_head=1, block_size=8, vocab_size=65),
                       replace(NANOGPT_SCHEDULE, batch_size=4, compile=False))
    assert gpu_plan.step_seconds(tiny) == pytest.approx(gpu_plan.STEP_FLOOR_S + gpu_plan.LAYER_FLOOR_S)


def test_the_plan_covers_the_table_and_prints_its_total(capsys):
    assert set(gpu_plan.planned_minutes()) == set(SETTINGS)
    gpu_plan.main()
    assert "on one H100 (planned;" in capsys.readouterr().out.splitlines()[-1]
