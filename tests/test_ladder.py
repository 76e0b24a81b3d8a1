"""The lecture's ladder (chapter 3): each rung's shape, the top rung is the GPT, every profile's rungs train."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from buildgpt.data.batches import TokenBatches
from buildgpt.nn.attention import Head, MultiHeadAttention
from buildgpt.nn.ladder import LECTURE_RUNGS, LadderModel, Pieces, make_layer
from buildgpt.nn.model import GPT, Block, GPTConfig
from buildgpt.settings.chapters import settings_for
from buildgpt.settings.profiles import PROFILES
from buildgpt.train.ladder import climb
from buildgpt.train.loop import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = GPTConfig(vocab_size=65, block_size=16, n_layer=3, n_head=4, n_embd=32, dropout=0.0, attention="per_head")


@pytest.mark.parametrize("name,pieces", LECTURE_RUNGS, ids=[name for name, _ in LECTURE_RUNGS])
def test_every_rung_maps_tokens_to_logits(name, pieces):
    torch.manual_seed(0)
    model = LadderModel(SMALL, pieces)
    idx, targets = torch.randint(0, 65, (2, 16)), torch.randint(0, 65, (2, 16))
    logits, loss = model(idx, targets)
    assert logits.shape == (2, 16, 65) and loss.shape == ()
    assert model(idx[:, :5])[0].shape == (2, 5, 65)  # shorter than the context
    loss.backward()
    assert all(p.grad is not None for p in model.parameters()), name


def test_rungs_switch_on_the_package_modules_in_the_lecture_order():
    layers = [LadderModel(SMALL, pieces).blocks for _, pieces in LECTURE_RUNGS]
    assert len(layers[0]) == 0  # the bigram: embeddings straight to the head
    assert isinstance(layers[1][0], Head) and layers[1][0].key.out_features == SMALL.n_embd  # one head, full width
    assert isinstance(layers[2][0], MultiHeadAttention) and len(layers[2]) == 1
    assert isinstance(layers[3][0], nn.Sequential) and len(layers[3]) == 1
    assert len(layers[4]) == SMALL.n_layer and not isinstance(layers[4][0], Block)
    assert isinstance(layers[5][0], Block) and isinstance(layers[5][0].ln1, nn.Identity)
    assert isinstance(layers[6][0], Block) and not isinstance(layers[6][0].ln1, nn.Identity)
    sizes = [LadderModel(SMALL, pieces).num_params() for _, pieces in LECTURE_RUNGS]
    assert sizes[1:] == sorted(sizes[1:])  # each rung adds parameters (the bigram's table aside)


@pytest.mark.parametrize("attention", ["per_head", "fused"])
def test_the_top_rung_is_the_gpt(attention):
    """Every piece on: the package's GPT, parameter for parameter and logit for logit."""
    config = replace(SMALL, attention=attention, dropout=0.1)
    torch.manual_seed(0)
    gpt = GPT(config).eval()
    rung = LadderModel(config, Pieces()).eval()
    assert rung.state_dict().keys() == gpt.state_dict().keys()
    rung.load_state_dict(gpt.state_dict())
    idx, targets = torch.randint(0, 65, (3, 16)), torch.randint(0, 65, (3, 16))
    (ours, our_loss), (theirs, their_loss) = rung(idx, targets), gpt(idx, targets)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    torch.testing.assert_close(our_loss, their_loss, rtol=0, atol=0)


@pytest.mark.parametrize("pieces,missing", [
    (("none", True, False, False, False), "feed_forward needs multi_head"),
    (("head", True, False, False, False), "feed_forward needs multi_head"),
    (("multi_head", True, False, True, False), "residual needs stacked"),
    (("multi_head", True, True, False, True), "layer_norm needs residual"),
])
def test_a_rung_out_of_order_says_which_piece_it_lacks(pieces, missing):
    with pytest.raises(ValueError, match=missing):
        Pieces(*pieces)


def test_unknown_attention_names_the_choices():
    with pytest.raises(ValueError, match="multi_head"):
        Pieces("flash")


def test_make_layer_without_residual_is_attention_then_feed_forward():
    layer = make_layer(SMALL, Pieces("multi_head", True, True, False, False))
    assert isinstance(layer[0], MultiHeadAttention) and len(layer) == 2


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profiles_rungs_and_dropout_runs_take_a_step(profile):
    """The dry run of test_settings_chapters, for the ladder and the dropout experiment (gpu included)."""
    settings = settings_for("gpt", profile)
    assert [name for name, _, _ in settings.ladder.rungs()][:-1] == [name for name, _ in LECTURE_RUNGS]
    one_step = dict(batch_size=2, max_iters=1, eval_iters=1, eval_interval=1)
    for name, pieces, config in settings.ladder.rungs():
        data = torch.randint(0, 65, (2 * config.block_size + 2,), generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        model = LadderModel(replace(config, vocab_size=65), pieces)
        history = train(model, TokenBatches(data[: config.block_size + 1], data[config.block_size + 1:],
                                            config.block_size), replace(settings.ladder.train, **one_step), progress=False)
        assert all(math.isfinite(v) for v in history.train + history.val), name
    study = settings.overfitting
    assert 0 < study.dropout < 1 and study.model.dropout == 0 and study.train_chars > study.model.block_size
    for dropout in (0.0, study.dropout):
        data = torch.randint(0, 65, (2 * study.model.block_size + 2,), generator=torch.Generator().manual_seed(0))
        model = GPT(replace(study.model, vocab_size=65, dropout=dropout))
        history = train(model, TokenBatches(data[: study.model.block_size + 1], data[study.model.block_size + 1:],
                                            study.model.block_size), replace(study.train, **one_step), progress=False)
        assert all(math.isfinite(v) for v in history.train + history.val)


def test_climb_trains_and_scores_every_rung():
    data = torch.randint(0, 65, (600,), generator=torch.Generator().manual_seed(0))
    rungs = [(name, pieces, SMALL) for name, pieces in LECTURE_RUNGS[:2]]
    schedule = TrainConfig(max_iters=3, eval_interval=3, eval_iters=1, batch_size=4, learning_rate=1e-3)
    runs = climb(rungs, schedule, data[:500], data[500:], vocab_size=65, progress=False)
    assert [r.name for r in runs] == ["bigram", "one head"]
    assert all(r.history.steps == [0, 3] and math.isfinite(r.val_loss) and r.params > 0 for r in runs)
