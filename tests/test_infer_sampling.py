"""Choosing the next token: greedy, temperature, top-k, top-p, seeded reproducibility."""

from __future__ import annotations

import pytest
import torch

from buildgpt.infer.sampling import MIN_TEMPERATURE, check_sampling_args, sample_next

PROBS = torch.tensor([0.5, 0.3, 0.15, 0.05])
N = 4000  # samples per check: rows of one batch, so a single call draws them all


pytestmark = pytest.mark.usefixtures("one_thread")


def counts(logits: torch.Tensor, seed: int = 0, **kwargs) -> list[int]:
    """How often each id is drawn when the same row of logits is sampled N times."""
    ids = sample_next(logits.expand(N, -1), generator=torch.Generator().manual_seed(seed), **kwargs)
    assert ids.shape == (N, 1) and ids.dtype == torch.long
    return torch.bincount(ids.flatten(), minlength=logits.size(-1)).tolist()


def test_temperature_zero_is_argmax():
    logits = torch.randn(16, 50, generator=torch.Generator().manual_seed(0))
    ids = sample_next(logits, temperature=0)
    assert ids.shape == (16, 1)
    assert torch.equal(ids[:, 0], logits.argmax(-1))
    # greedy ignores top-k, top-p and the generator
    assert torch.equal(sample_next(logits, temperature=0, top_k=3, top_p=0.2), ids)


def test_plain_sampling_follows_the_probabilities():
    c = counts(PROBS.log())
    for observed, p in zip(c, PROBS.tolist()):
        assert abs(observed / N - p) < 0.03


def test_low_temperature_sharpens_high_temperature_flattens():
    cold = counts(PROBS.log(), temperature=0.1)
    hot = counts(PROBS.log(), temperature=10.0)
    assert cold[0] > 0.99 * N
    assert all(abs(c / N - 0.25) < 0.05 for c in hot)


def test_top_k_never_leaves_the_top_k():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 100, generator=g)
    for k in (1, 3, 10):
        allowed = torch.topk(logits, k, dim=-1).indices
        for _ in range(5):
            ids = sample_next(logits, top_k=k, generator=g)
            assert (ids == allowed).any(dim=-1).all(), f"top_k={k} drew a token outside the top {k}"
    # one row, many samples: exactly the top 3 appear, in proportion to their probabilities
    c = counts(PROBS.log(), top_k=3)
    assert c[3] == 0 and all(c[i] > 0 for i in range(3))
    assert abs(c[0] / N - 0.5 / 0.95) < 0.03


def kept(logits: torch.Tensor, **kwargs) -> torch.Tensor:
    """Which tokens `sample_next` may draw: the nonzero probabilities it hands to torch.multinomial."""
    seen = []
    multinomial = torch.multinomial

    def spy(probs, *args, **kw):
        seen.append(probs)
        return multinomial(probs, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "multinomial", spy)
        sample_next(logits, generator=torch.Generator().manual_seed(0), **kwargs)
    return seen[0] > 0


def test_top_k_and_top_p_drop_exactly_the_tokens_transformers_drops():
    """The filters equal transformers' TopK/TopPLogitsWarper (what `generate` applies, in that order), token by token."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    sharpness = torch.linspace(0.5, 4.0, 64)[:, None]  # rows from flat to peaked: nuclei of many sizes
    logits = sharpness * torch.randn(64, 100, generator=torch.Generator().manual_seed(0))

    def theirs(*warpers) -> torch.Tensor:
        scores = logits
        for warper in warpers:
            scores = warper(None, scores)
        return scores > float("-inf")

    for k in (1, 5, 50):
        assert torch.equal(kept(logits, top_k=k), theirs(TopKLogitsWarper(k)))
        assert (kept(logits, top_k=k).sum(-1) == k).all()  # random logits have no ties
    for p in (0.1, 0.5, 0.9, 0.99):
        ours = kept(logits, top_p=p)
        assert torch.equal(ours, theirs(TopPLogitsWarper(p)))
        assert len(set(ours.sum(-1).tolist())) > 1  # the nucleus size varies by row: the cut is per row
    assert torch.equal(kept(logits, temperature=0.7, top_k=50, top_p=0.9),
                       theirs(TemperatureLogitsWarper(0.7), TopKLogitsWarper(50), TopPLogitsWarper(0.9)))


def test_top_k_at_least_vocabulary_keeps_everything():
    assert counts(PROBS.log(), seed=3, top_k=4) == counts(PROBS.log(), seed=3) == counts(PROBS.log(), seed=3, top_k=99)


@pytest.mark.parametrize("top_p,kept", [(0.5, {0}), (0.7, {0, 1}), (0.45, {0}), (0.85, {0, 1, 2}),
                                        (0.99, {0, 1, 2, 3}), (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    c = counts(PROBS.log(), top_p=top_p)
    assert {i for i, n in enumerate(c) if n > 0} == kept
    # the kept tokens keep their relative probabilities
    mass = sum(PROBS[i].item() for i in kept)
    assert abs(c[0] / N - 0.5 / mass) < 0.03


def test_top_p_follows_the_probabilities_not_the_positions():
    """The ids are not sorted by probability: the nucleus must be mapped back to the right ids."""
    order = [2, 0, 3, 1]  # id 0 has probability 0.15, id 1 0.5, id 2 0.05, id 3 0.3
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])
    c = counts(probs.log(), top_p=0.7)
    assert {i for i, n in enumerate(c) if n > 0} == {1, 3}
    # rows of a batch are cut independently
    logits = torch.stack([PROBS.log(), PROBS.log()[order]])
    ids = torch.cat([sample_next(logits, top_p=0.7, generator=torch.Generator().manual_seed(s)) for s in range(300)], 1)
    assert set(ids[0].tolist()) == {0, 1}
    assert set(ids[1].tolist()) == {1, 3}


def test_top_k_and_top_p_together():
    c = counts(PROBS.log(), top_k=2, top_p=0.99)
    assert {i for i, n in enumerate(c) if n > 0} == {0, 1}
    c = counts(PROBS.log(), top_k=3, top_p=0.5)
    assert {i for i, n in enumerate(c) if n > 0} == {0}


def test_seeded_generator_is_reproducible():
    logits = torch.randn(32, 40, generator=torch.Generator().manual_seed(2))
    for kwargs in ({}, {"temperature": 0.7}, {"top_k": 5}, {"top_p": 0.9}):
        a = sample_next(logits, generator=torch.Generator().manual_seed(7), **kwargs)
        b = sample_next(logits, generator=torch.Generator().manual_seed(7), **kwargs)
        c = sample_next(logits, generator=torch.Generator().manual_seed(8), **kwargs)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_sampling_does_not_modify_the_logits():
    logits = torch.randn(4, 10)
    before = logits.clone()
    sample_next(logits, temperature=0.5, top_k=3, top_p=0.5)
    assert torch.equal(logits, before)


@pytest.mark.parametrize("args,match", [((-1, 1.0, None, None), "max_new_tokens"),
                                        ((1, -0.1, None, None), "temperature"),
                                        ((1, float("nan"), None, None), "temperature"),
                                        ((1, float("inf"), None, None), "temperature"),
                                        ((1, 1e-40, None, None), "too small"),
                                        ((1, 5e-324, 5, None), "too small"),
                                        ((1, 1.0, None, float("nan")), "top_p"),
                                        ((1, 1.0, 0, None), "top_k"),
                                        ((1, 1.0, None, 0.0), "top_p"),
                                        ((1, 1.0, None, 1.01), "top_p")])
def test_check_sampling_args_rejects(args, match):
    with pytest.raises(ValueError, match=match):
        check_sampling_args(*args)


def test_check_sampling_args_accepts_edges():
    check_sampling_args(0, 0.0, 1, 1.0)
    check_sampling_args(10, 2.0, 10**6, 1e-9)
    check_sampling_args(10, 1.0, None, None)


def test_the_smallest_allowed_temperature_samples_the_largest_logit():
    logits = torch.randn(64, 65, generator=torch.Generator().manual_seed(0)) * 20
    check_sampling_args(1, MIN_TEMPERATURE, None, None)
    assert torch.equal(sample_next(logits, MIN_TEMPERATURE), logits.argmax(-1, keepdim=True))
