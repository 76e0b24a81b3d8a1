"""Each chapter's settings under each profile: typed, frozen, built from the presets, and every run
they describe takes a training step on the CPU (the dry run of the gpu profile on machines without a GPU)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace

import pytest
import torch

from buildgpt.data.batches import TokenBatches
from buildgpt.nn.attention import MultiHeadAttention
from buildgpt.nn.batched_attention import BatchedSelfAttention
from buildgpt.nn.bigram import BigramLanguageModel
from buildgpt.nn.causal_attention import CausalSelfAttention
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.settings import chapters
from buildgpt.settings.chapters import (
    LECTURE_MODEL,
    BatchedHeadsSettings,
    BigramSettings,
    TrainingRun,
    all_settings,
    settings_for,
)
from buildgpt.settings.presets import NANOGPT_SCHEDULE
from buildgpt.settings.profiles import PROFILES
from buildgpt.train.loop import TrainConfig, train

VOCAB = 65
ALL = all_settings()
IDS = [f"{chapter}-{profile}" for chapter, profile, _ in ALL]

pytestmark = pytest.mark.usefixtures("one_thread")


def walk(value):
    """Every dataclass instance inside a settings object, itself included."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield value
        for f in dataclasses.fields(value):
            yield from walk(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from walk(item)


def tiny_schedule(schedule: TrainConfig) -> TrainConfig:
    """The run's own schedule (optimizer, warmup, clipping), cut to one step at batch 2."""
    return replace(schedule, batch_size=2, max_iters=1, eval_iters=1, eval_interval=1, grad_accum_steps=1,
                   out_dir=None, resume=False, compile=False)


def random_tokens(block_size: int, seed: int = 0) -> TokenBatches:
    data = torch.randint(0, VOCAB, (2 * block_size + 2,), generator=torch.Generator().manual_seed(seed))
    return TokenBatches(data[: block_size + 1], data[block_size + 1:], block_size)


# ---------------------------------------------------------------- the table


def test_the_table_covers_every_profile():
    assert sorted({profile for _, profile, _ in ALL}) == sorted(PROFILES)
    for chapter, by_profile in chapters.SETTINGS.items():
        assert set(by_profile) == set(PROFILES), chapter
    assert len(ALL) == len(chapters.SETTINGS) * len(PROFILES)


@pytest.mark.parametrize("chapter,profile,settings", ALL, ids=IDS)
def test_every_settings_object_is_frozen(chapter, profile, settings):
    assert dataclasses.is_dataclass(settings) and type(settings).__dataclass_params__.frozen
    name = dataclasses.fields(settings)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(settings, name, None)
    assert settings_for(chapter, profile) is settings


def test_no_train_config_has_a_block_size():
    """A model's block_size is its context and its training windows: stated once, in the model."""
    assert "block_size" not in {f.name for f in dataclasses.fields(TrainConfig)}
    configs = [c for _, _, s in ALL for c in walk(s) if isinstance(c, TrainConfig)]
    assert configs and all(not hasattr(c, "block_size") for c in configs)


def test_gpu_gpt_is_the_lecture_model_with_the_nanogpt_schedule():
    """nanoGPT's steps, batches and learning rates; a tenth of its evaluation batches (still three times the
    val split per evaluation), and uncompiled (buildgpt.settings.gpu_plan: compiling pays only for longer runs)."""
    gpu = settings_for("gpt", "gpu")
    assert gpu.model == LECTURE_MODEL and gpu.train.eval_iters == NANOGPT_SCHEDULE.eval_iters // 10
    assert replace(gpu.train, eval_iters=NANOGPT_SCHEDULE.eval_iters, compile=None) == NANOGPT_SCHEDULE
    assert gpu.runs() == {"model": TrainingRun(LECTURE_MODEL, gpu.train)}
    with torch.device("meta"):
        assert GPT(LECTURE_MODEL).num_params() == 10_788_929


@pytest.mark.parametrize("chapter", ["bigram", "gpt"])
def test_claims_are_real_and_profiles_grow_from_smoke_to_gpu(chapter):
    by_profile = [settings_for(chapter, p) for p in PROFILES]
    iters = [s.train.max_iters for s in by_profile]
    assert iters == sorted(iters)
    assert all(0 < s.max_val_loss < math.log(VOCAB) for s in by_profile)  # below the ln(65) of guessing


@pytest.mark.parametrize("profile", PROFILES)
def test_bits_per_byte_compares_like_with_like(profile):
    s = settings_for("bits_per_byte", profile)
    assert s.vocab_size > 256  # a BPE vocabulary: bytes plus merges
    assert s.min_bpe_margin is None or s.min_bpe_margin > 0
    assert set(s.runs()) == {"lm"}


@pytest.mark.parametrize("profile", PROFILES)
def test_the_assistant_pretrains_within_its_window(profile):
    s = settings_for("assistant", profile)
    assert 0 < s.pretrain_block_size <= s.model.block_size
    assert s.runs()["pretrain"].model.block_size == s.pretrain_block_size  # what the dry run trains and the plan costs


def test_unknown_chapter_names_the_known_ones():
    with pytest.raises(KeyError, match="bigram"):
        settings_for("transformer-xl", "cpu")


# ---------------------------------------------------------------- the dry run: one step of everything


@pytest.mark.parametrize("chapter,profile,settings", ALL, ids=IDS)
def test_every_configuration_takes_a_training_step(chapter, profile, settings):
    if isinstance(settings, BigramSettings):
        torch.manual_seed(0)
        model = BigramLanguageModel(VOCAB)
        history = train(model, random_tokens(settings.block_size), tiny_schedule(settings.train), progress=False)
        assert history.steps == [0, 1] and all(math.isfinite(v) for v in history.train + history.val)
        return
    if isinstance(settings, BatchedHeadsSettings):
        for n_head in settings.head_counts:
            modules = [MultiHeadAttention(settings.n_embd, n_head), BatchedSelfAttention(settings.n_embd, n_head),
                       CausalSelfAttention(settings.n_embd, n_head, fused=False),
                       CausalSelfAttention(settings.n_embd, n_head, fused=True)]
            x = torch.randn(1, settings.block_size, settings.n_embd, requires_grad=True)
            for module in modules:
                module(x).square().mean().backward()
                assert all(p.grad is not None for p in module.parameters())
        return
    for name, run in settings.runs().items():
        assert isinstance(run, TrainingRun) and isinstance(run.model, GPTConfig), name
        torch.manual_seed(0)
        model = GPT(replace(run.model, vocab_size=VOCAB))
        before = model.lm_head.weight.detach().clone()
        history = train(model, random_tokens(run.model.block_size), tiny_schedule(run.train), progress=False)
        assert history.steps == [0, 1], name
        assert all(math.isfinite(v) for v in history.train + history.val), name
        assert not torch.equal(model.lm_head.weight, before), f"{name}: the step changed nothing"
