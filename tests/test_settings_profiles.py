"""Run profiles: which one is picked, and the typed settings each one gives a chapter."""

from __future__ import annotations

import pytest
import torch

from buildgpt.settings import chapters, profiles


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
def test_every_profile_has_a_cell_timeout_and_settings_for_every_chapter(name):
    assert profiles.CELL_TIMEOUT[name] > 0
    profile = profiles.Profile(name=name, device="cpu")
    for chapter in chapters.SETTINGS:
        assert profile.settings(chapter) is chapters.SETTINGS[chapter][name]


def test_profile_settings_are_the_frozen_table_entries():
    settings = profiles.Profile(name="smoke", device="cpu").settings("bigram")
    with pytest.raises(AttributeError):
        settings.block_size = 99
    assert profiles.Profile(name="smoke", device="cpu").settings("bigram").block_size != 99


def test_unknown_chapter_raises():
    with pytest.raises(KeyError) as e:
        profiles.Profile(name="cpu", device="cpu").settings("transformer-xl")
    assert "transformer-xl" in str(e.value) and "bigram" in str(e.value)
