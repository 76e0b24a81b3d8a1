"""Shared fixtures: an isolated data cache, the data mirror, small texts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from buildgpt import data

# The mirror the Makefile uses (../shared/data) unless the environment names another one.
MIRROR = Path(os.environ.get(data.MIRROR_VAR) or data.PROJECT_ROOT.parent / "shared" / "data")


@pytest.fixture
def tiny_text() -> str:
    """A short text with a repeated structure, newlines and spaces."""
    return "hello world\nhello there\nthe end.\n" * 4


@pytest.fixture
def data_cache(tmp_path, monkeypatch) -> Path:
    """An empty, private dataset cache and no mirror: nothing outside tmp_path is read or written."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(data.CACHE_VAR, str(cache))
    monkeypatch.delenv(data.MIRROR_VAR, raising=False)
    return cache


@pytest.fixture
def mirror(data_cache, monkeypatch) -> Path:
    """The real data mirror, with the private cache of `data_cache` in front of it."""
    if not (MIRROR / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip(f"no data mirror at {MIRROR}")
    monkeypatch.setenv(data.MIRROR_VAR, str(MIRROR))
    return MIRROR


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """Every download attempt fails as if offline; the list records the URLs that were tried."""
    import urllib.error
    import urllib.request

    tried: list[str] = []

    def offline(url, *args, **kwargs):
        tried.append(url)
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return tried


@pytest.fixture(scope="session")
def shakespeare_text(tmp_path_factory) -> str:
    """The tinyshakespeare text, read (and verified) from the mirror through a private cache."""
    if not (MIRROR / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip(f"no data mirror at {MIRROR}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(data.CACHE_VAR, str(tmp_path_factory.mktemp("cache")))
        mp.setenv(data.MIRROR_VAR, str(MIRROR))
        return data.load_text("tinyshakespeare")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster than two fighting other processes for a small machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
