"""Abacus embeddings: digit indices within each number, a causal model, and the uncached decoding path."""

from __future__ import annotations

import pytest
import torch

from buildgpt.data import arithmetic
from buildgpt.infer.arithmetic import greedy_decode, greedy_reference
from buildgpt.infer.kv_cache import supports_cache
from buildgpt.nn.abacus import AbacusGPT, digit_indices
from buildgpt.nn.model import GPTConfig

DIGITS = [arithmetic.STOI[c] for c in "0123456789"]


def tiny(max_offset: int = 3) -> AbacusGPT:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=len(arithmetic.VOCAB), block_size=24, n_layer=1, n_head=2, n_embd=16, dropout=0.0,
                       position="none")
    return AbacusGPT(config, DIGITS, max_digits=8, max_offset=max_offset)


def test_digit_indices_count_within_each_number():
    ids = torch.tensor([arithmetic.encode("12+345=7530")])
    is_digit = torch.isin(ids, torch.tensor(DIGITS))
    assert digit_indices(is_digit).tolist() == [[1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]]


def test_offsets_only_in_training_and_only_on_digits():
    model = tiny()
    ids = torch.tensor([arithmetic.encode("12+345=")] * 64)
    table = model.abacus.table.weight
    index = torch.tensor([1, 2, 0, 1, 2, 3, 0])  # each digit's place in its number, written out
    model.eval()
    assert torch.equal(model.abacus(ids), table[index].expand(64, -1, -1))  # eval: no offset
    model.train()
    torch.manual_seed(1)
    shifted = model.abacus(ids)
    matches = (shifted[:, :, None] == table).all(dim=-1)  # (B, T, rows): which table row each vector is
    assert (matches.sum(dim=-1) == 1).all()  # random rows are distinct: each vector names one row
    rows = matches.int().argmax(dim=-1)
    digit = index > 0
    assert (rows[:, ~digit] == 0).all()  # non-digits: row 0, never shifted
    offsets = rows[:, digit] - index[digit]
    assert (offsets == offsets[:, :1]).all()  # one offset for all of a sequence's digits
    assert set(offsets[:, 0].tolist()) == set(range(model.abacus.max_offset + 1))  # each of 0..max_offset drawn


def test_abacus_gpt_is_causal_and_has_no_kv_cache_path():
    model = tiny().eval()
    ids = torch.tensor([arithmetic.encode("12+345=753")])
    changed = ids.clone()
    changed[0, -1] = arithmetic.STOI["9"]
    assert torch.equal(model(ids)[0][:, :-1], model(changed)[0][:, :-1])
    assert not supports_cache(model)  # its forward is its own: the cached path would skip the Abacus


def test_batched_greedy_decode_of_an_abacus_model_equals_the_reference():
    model = tiny().eval()
    prompts = ["12+345=", "99+999=", "1+2=000"][:2]
    batch = torch.tensor([arithmetic.encode(p) for p in prompts])
    ours = greedy_decode(model, batch, 6)
    for prompt, row in zip(prompts, ours):
        assert row == greedy_reference(model, arithmetic.encode(prompt), 6)


def test_errors_say_what_to_change():
    with pytest.raises(ValueError, match="position='none'"):
        AbacusGPT(GPTConfig(vocab_size=19, block_size=8, n_layer=1, n_head=1, n_embd=8), DIGITS, 4, 0)
    model = tiny(max_offset=0).eval()
    with pytest.raises(ValueError, match="longer than the Abacus table"):
        model(torch.tensor([arithmetic.encode("123456789+1=")]))


def test_a_number_too_long_to_train_on_is_refused_every_time_and_longer_test_numbers_use_the_offset_rows():
    model = tiny(max_offset=3).train()  # 8 digits trained, 11 rows for testing
    nine = torch.tensor([arithmetic.encode("123456789+1=")])
    for _ in range(20):  # not only when the random offset happens to push it past the table
        with pytest.raises(ValueError, match=r"a number of 9 digits .* in training \(8\)"):
            model(nine)
    model.eval()
    assert model(nine)[0].shape == (1, 12, len(arithmetic.VOCAB))  # rows 9.. were trained by the offsets
    with pytest.raises(ValueError, match=r"a number of 12 digits .* \(11\)"):
        model(torch.tensor([arithmetic.encode("123456789012+1=")]))
