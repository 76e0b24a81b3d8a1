"""Run profiles: which one is picked, and what each one runs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from buildgpt import profiles
from buildgpt.training import TrainConfig


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture
def unset(monkeypatch):
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)


def test_default_is_cpu_without_cuda(no_cuda, unset):
    assert profiles.profile_name() == "cpu"
    p = profiles.current()
    assert (p.name, p.device) == ("cpu", "cpu")
    assert "profile 'cpu' on cpu" in p.describe()


def test_default_is_gpu_with_cuda(with_cuda, unset):
    assert profiles.profile_name() == "gpu"


def test_empty_value_means_unset(no_cuda, monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "  ")
    assert profiles.profile_name() == "cpu"


@pytest.mark.parametrize("value, expected", [("smoke", "smoke"), ("cpu", "cpu"), (" Smoke ", "smoke"),
                                             ("CPU", "cpu")])
def test_env_override(no_cuda, monkeypatch, value, expected):
    monkeypatch.setenv(profiles.ENV_VAR, value)
    assert profiles.profile_name() == expected
    assert profiles.current() == profiles.Profile(name=expected, device="cpu")


def test_invalid_name_lists_profiles(monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "turbo")
    with pytest.raises(ValueError) as e:
        profiles.profile_name()
    message = str(e.value)
    assert "'turbo'" in message and profiles.ENV_VAR in message
    assert "smoke, cpu, gpu" in message
    with pytest.raises(ValueError):
        profiles.current()


def test_gpu_without_cuda_raises(no_cuda, monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "gpu")
    assert profiles.profile_name() == "gpu"
    with pytest.raises(RuntimeError, match="CUDA"):
        profiles.current()


def test_gpu_with_cuda(with_cuda, monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "gpu")
    assert profiles.current() == profiles.Profile(name="gpu", device="cuda")


@pytest.mark.parametrize("name", profiles.PROFILES)
def test_bigram_settings_fit_train_config(name):
    settings = profiles.Profile(name=name, device="cpu").settings("bigram")
    config_keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed"}
    assert set(settings) - {"max_val_loss"} <= config_keys
    max_val_loss = settings.pop("max_val_loss")
    assert 0 < max_val_loss < 4.2  # a real claim: below the ln(65) of guessing
    config = TrainConfig(**settings)
    assert config.max_iters > 0 and config.eval_interval > 0 and config.eval_iters > 0
    assert name in profiles.CELL_TIMEOUT


def test_settings_are_a_copy():
    p = profiles.Profile(name="smoke", device="cpu")
    p.settings("bigram")["max_iters"] = -1
    assert p.settings("bigram")["max_iters"] == profiles.SETTINGS["bigram"]["smoke"]["max_iters"]


def test_profiles_grow_from_smoke_to_gpu():
    iters = [profiles.SETTINGS["bigram"][name]["max_iters"] for name in profiles.PROFILES]
    assert iters == sorted(iters)


def test_unknown_chapter_raises():
    with pytest.raises(KeyError) as e:
        profiles.Profile(name="cpu", device="cpu").settings("transformer-xl")
    assert "transformer-xl" in str(e.value) and "bigram" in str(e.value)


@pytest.mark.parametrize("name", profiles.PROFILES)
def test_gpt_settings_build_a_model_and_a_config(name):
    from buildgpt.model import GPTConfig

    settings = profiles.Profile(name=name, device="cpu").settings("gpt")
    model, train = GPTConfig(**settings["model"]), TrainConfig(**settings["train"])
    assert model.block_size == train.block_size  # the model is trained on windows it can hold
    assert 0 < settings["max_val_loss"] < 4.2


@pytest.mark.parametrize("name", profiles.PROFILES)
def test_tokenizer_lm_settings_build_a_model_and_a_config(name):
    from buildgpt.model import GPTConfig

    lm = profiles.Profile(name=name, device="cpu").settings("tokenizer")["lm"]
    model, train = GPTConfig(vocab_size=lm["vocab_size"], **lm["model"]), TrainConfig(**lm["train"], seed=lm["seed"])
    assert model.block_size == train.block_size
    assert lm["vocab_size"] > 256
    assert lm["min_bpe_margin"] is None or lm["min_bpe_margin"] > 0
