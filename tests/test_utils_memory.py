"""Peak memory measured in a fresh process: a known allocation is seen at its size, a failure is reported."""

from __future__ import annotations

import pytest
import torch

from buildgpt.utils.memory import peak_memory


def test_a_known_allocation_is_measured_at_its_size():
    size = 4 * 2**25  # 128 MiB of float32
    grown = peak_memory("y = x * 2", setup="x = torch.ones(2**25)")
    assert 0.9 * size < grown < 1.25 * size
    assert peak_memory("y = x[:10] * 2", setup="x = torch.ones(2**25)") < 0.05 * size


def test_a_big_parent_process_does_not_hide_the_childs_peak():
    """A child inherits its parent's ru_maxrss; the measurement must not (a Jupyter kernel is big)."""
    ballast = torch.ones(2**26)  # 256 MiB held by this process while it measures
    grown = peak_memory("y = x * 2", setup="x = torch.ones(2**25)")
    assert grown > 0.9 * 4 * 2**25
    del ballast


def test_a_failing_statement_is_an_error_with_its_message():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        peak_memory("1 / 0")
