"""Every weight format measured the same way: rows in order, sizes that shrink, float32 agreeing with itself."""

from __future__ import annotations

import pytest
import torch

from buildgpt.infer.weight_formats import PYTORCH_INT8, FormatResult, agreement, measure_formats
from buildgpt.nn.model import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_measure_formats_rows_in_order_with_shrinking_sizes():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=1, n_head=2, n_embd=64))
    val = torch.randint(0, 65, (500,), generator=torch.Generator().manual_seed(0))
    rows = measure_formats(model, val, val[None, :8], new_tokens=10, repeats=1)
    assert [r.name for r in rows] == ["fp32", "int8", "q8_0", "q4_0", PYTORCH_INT8]
    fp32 = rows[0]
    assert agreement(fp32, fp32) == 10 and all(len(r.greedy_tokens) == 10 for r in rows)
    assert all(r.bytes < fp32.bytes for r in rows[1:])
    assert rows[3].bytes < rows[1].bytes  # four bits are fewer than eight
    assert all(abs(r.val_loss - fp32.val_loss) < 0.1 and r.tokens_per_second > 0 for r in rows)


@pytest.mark.parametrize("tokens, agreed", [([1, 2, 3, 4], 4), ([1, 2, 9, 4], 2), ([9, 2, 3, 4], 0)])
def test_agreement_counts_the_tokens_before_the_first_difference(tokens, agreed):
    """Tokens that agree again after a difference do not count: from there on the two decode different texts."""
    def row(greedy):
        return FormatResult("x", 0, 0.0, 0.0, torch.tensor(greedy))
    assert agreement(row(tokens), row([1, 2, 3, 4])) == agreed
