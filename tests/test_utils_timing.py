"""`timing.seconds_per_call`: warmup calls are not timed, and the median of the timed ones is returned."""

from __future__ import annotations

import pytest

from buildgpt.utils import timing


def test_calls_warmup_then_repeats_and_returns_the_median(monkeypatch):
    calls = []
    clock = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # three timed calls: 1 s, 3 s, 2 s
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    seconds = timing.seconds_per_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5  # 2 untimed + 3 timed
    assert seconds == pytest.approx(2.0)  # the median, not the mean of a skewed set
