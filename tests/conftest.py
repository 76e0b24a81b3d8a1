"""Shared fixtures: an isolated data cache, the data mirror, the tiktoken cache, small texts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from buildgpt.data import registry

# The mirror the Makefile uses (../shared/data) unless the environment names another one.
# Tests take it through the `mirror_dir` fixture; the module-level name stays for files not yet on it.
MIRROR = Path(os.environ.get(registry.MIRROR_VAR) or registry.PROJECT_ROOT.parent / "shared" / "data")
TIKTOKEN_CACHE_VAR = "TIKTOKEN_CACHE_DIR"  # as buildgpt.tokenizers.bpe.TIKTOKEN_CACHE_VAR (tiktoken's own name)


def _has_mirror() -> bool:
    return (MIRROR / "tinyshakespeare" / "input.txt").is_file()


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """The folder of the offline data mirror (skips the test where there is none). Reads nothing."""
    if not _has_mirror():
        pytest.skip(f"no data mirror at {MIRROR}")
    return MIRROR


@pytest.fixture
def tiktoken_cache(monkeypatch) -> Path:
    """tiktoken's cache of GPT-2 and GPT-4 vocabularies, named by TIKTOKEN_CACHE_DIR for this test:
    the one the environment names, else the one inside the data mirror."""
    cache = Path(os.environ.get(TIKTOKEN_CACHE_VAR) or MIRROR / "tiktoken-cache")
    if not cache.is_dir():
        pytest.skip(f"no tiktoken cache at {cache}")
    monkeypatch.setenv(TIKTOKEN_CACHE_VAR, str(cache))
    return cache


@pytest.fixture
def tiny_text() -> str:
    """A short text with a repeated structure, newlines and spaces."""
    return "hello world\nhello there\nthe end.\n" * 4


@pytest.fixture
def data_cache(tmp_path, monkeypatch) -> Path:
    """An empty, private dataset cache and no mirror: nothing outside tmp_path is read or written."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(registry.CACHE_VAR, str(cache))
    monkeypatch.delenv(registry.MIRROR_VAR, raising=False)
    return cache


@pytest.fixture
def mirror(data_cache, mirror_dir, monkeypatch) -> Path:
    """The real data mirror, with the private cache of `data_cache` in front of it."""
    monkeypatch.setenv(registry.MIRROR_VAR, str(mirror_dir))
    return mirror_dir


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
def shakespeare_text(tmp_path_factory, mirror_dir) -> str:
    """The tinyshakespeare text, read (and verified) from the mirror through a private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry.CACHE_VAR, str(tmp_path_factory.mktemp("cache")))
        mp.setenv(registry.MIRROR_VAR, str(mirror_dir))
        return registry.load_text("tinyshakespeare")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster than two fighting other processes for a small machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
