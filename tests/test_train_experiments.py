"""Controlled comparisons: runs summarised across seeds, differences judged against their noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from buildgpt.nn.model import GPTConfig
from buildgpt.train.experiments import (
    Run,
    Summary,
    compare,
    extrapolation,
    regime,
    run_study,
    summarize,
    t_quantile,
    train_variant,
)
from buildgpt.train.loop import History, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def hand_run(variant: str, seed: int, val_loss: float, params: int = 100) -> Run:
    return Run(variant, seed, params, History(), val_loss, seconds=1.0, model=None)


# ---------------------------------------------------------------- summarize


def test_summarize_mean_std_sem():
    runs = [hand_run("base", 0, 2.0), hand_run("rope", 0, 1.5, params=90), hand_run("base", 1, 2.2),
            hand_run("base", 2, 2.4), hand_run("rope", 1, 1.7, params=90)]
    summaries = summarize(runs)
    assert list(summaries) == ["base", "rope"]  # in order of first appearance
    base, rope = summaries["base"], summaries["rope"]
    assert (base.variant, base.n, base.params) == ("base", 3, 100)
    assert base.mean == pytest.approx(2.2)
    assert base.std == pytest.approx(0.2)  # the sample standard deviation (n - 1)
    assert base.sem == pytest.approx(0.2 / math.sqrt(3))
    assert (rope.n, rope.params, rope.mean) == (2, 90, pytest.approx(1.6))
    assert rope.std == pytest.approx(math.sqrt(0.02))


def test_one_seed_has_no_spread_and_infinite_uncertainty():
    summary = summarize([hand_run("solo", 0, 3.0)])["solo"]
    assert (summary.mean, summary.std, summary.n) == (3.0, 0.0, 1)
    assert summary.sem == math.inf  # one seed says nothing about the noise


# ---------------------------------------------------------------- compare


def summary(mean: float, std: float, n: int = 4) -> Summary:
    return Summary("v", mean, std, n, params=1)


@pytest.mark.parametrize("candidate,baseline,verdict", [
    (summary(1.50, 0.02), summary(1.60, 0.02), "better"),        # lower loss, far beyond the noise
    (summary(1.70, 0.02), summary(1.60, 0.02), "worse"),
    (summary(1.59, 0.02), summary(1.60, 0.02), "within noise"),  # 0.01 apart, each mean uncertain by 0.01
    (summary(1.50, 0.20), summary(1.60, 0.20), "within noise"),  # the same gap, but noisy seeds
    (summary(1.50, 0.0, n=1), summary(1.60, 0.0, n=1), "within noise"),  # one seed each: no claim
])
def test_compare(candidate, baseline, verdict):
    assert compare(candidate, baseline) == verdict


@pytest.mark.parametrize("df", [1, 2, 2.7, 4, 10, 57.3, 1000])
def test_t_quantile_equals_scipys(df):
    assert t_quantile(0.975, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)
    assert t_quantile(0.9, df) == pytest.approx(stats.t.ppf(0.9, df), rel=1e-9)


@pytest.mark.parametrize("seeds", [(2, 2), (3, 3), (3, 5)])
def test_compare_is_welchs_test(seeds):
    """The verdict is 'within noise' exactly when scipy's Welch test gives p > 0.05."""
    g = np.random.default_rng(0)
    for _ in range(200):
        x, y = g.normal(1.60, 0.02, seeds[0]), g.normal(1.60 + g.uniform(-0.06, 0.06), 0.02, seeds[1])
        a, b = (Summary("v", float(v.mean()), float(v.std(ddof=1)), len(v), 1) for v in (x, y))
        p = stats.ttest_ind(x, y, equal_var=False).pvalue
        assert (compare(a, b) == "within noise") == (p > 0.05), (x, y, p)


def test_the_interval_of_a_mean_is_scipys_t_interval():
    values = np.array([1.61, 1.58, 1.64])
    s = Summary("v", float(values.mean()), float(values.std(ddof=1)), 3, 1)
    expected = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values))
    assert s.interval() == pytest.approx(expected, rel=1e-9)
    assert Summary("v", 1.6, 0.0, 1, 1).interval() == (-math.inf, math.inf)


def test_two_seeds_need_a_t_not_a_z():
    base, candidate = summary(1.60, 0.02, n=2), summary(1.56, 0.02, n=2)  # 2.8 standard errors apart
    assert compare(candidate, base) == "within noise"  # the critical t at 2 degrees of freedom is 4.3


# ---------------------------------------------------------------- a real (tiny) study


def test_run_study_trains_every_variant_from_every_seed():
    data = torch.randint(0, 7, (600,), generator=torch.Generator().manual_seed(0))
    base = GPTConfig(vocab_size=99, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0)
    schedule = TrainConfig(max_iters=2, eval_interval=2, eval_iters=1, batch_size=2, compile=False)
    runs = run_study({"learned": {}, "rope": {"position": "rope"}}, [0, 1], base, schedule, data[:500], data[500:],
                     vocab_size=7, progress=False)
    assert [(r.variant, r.seed) for r in runs] == [("learned", 0), ("learned", 1), ("rope", 0), ("rope", 1)]
    assert all(r.model.config.vocab_size == 7 for r in runs)  # the data's vocabulary, not the base's
    assert runs[2].model.config.position == "rope" and runs[0].model.config.position == "learned"
    assert runs[0].params > runs[2].params  # a learned table has parameters, RoPE none
    assert all(math.isfinite(r.val_loss) and r.history.steps == [0, 2] for r in runs)
    again = train_variant("learned", {}, base, schedule, 0, data[:500], data[500:], vocab_size=7)
    assert again.val_loss == runs[0].val_loss  # the seed decides everything
    lengths = extrapolation(runs[0].model, data[500:], [8, 16], max_tokens=64)
    assert lengths[16] is None and math.isfinite(lengths[8])  # a learned table stops at its length
    assert all(math.isfinite(v) for v in extrapolation(runs[2].model, data[500:], [8, 16], 64).values())


def test_regime_says_early_training_when_the_baseline_is_near_the_bigram():
    early = regime(2.279, 2.482, 600)
    assert "early in training" in early and "2.279" in early and "0.203" in early and "600" in early
    late = regime(1.6, 2.482, 5000)
    assert "well past" in late and "0.882" in late
