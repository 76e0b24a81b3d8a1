"""Shared fixtures: an isolated data cache, the data mirror, the tiktoken cache, small texts."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch

from buildgpt.data import registry

# The offline mirror and tiktoken's cache are named by the environment (.ci/run sets both); where
# they are not set, the tests that need them are skipped rather than reaching for the network.
TIKTOKEN_CACHE_VAR = "TIKTOKEN_CACHE_DIR"  # tiktoken's own name, as buildgpt.tokenizers.gpt4.TIKTOKEN_CACHE_VAR


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """The folder of the offline data mirror, from BUILDGPT_DATA_MIRROR (skips the test where there is none)."""
    mirror = Path(os.environ.get(registry.MIRROR_VAR, ""))
    if not os.environ.get(registry.MIRROR_VAR) or not (mirror / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip(f"no data mirror: set {registry.MIRROR_VAR} to a folder holding tinyshakespeare/input.txt")
    return mirror


@pytest.fixture(scope="session")
def tiktoken_cache() -> Path:
    """tiktoken's cache of the GPT-2 and GPT-4 vocabularies, from TIKTOKEN_CACHE_DIR (or the mirror's),
    named in the environment for the whole session so that no test downloads them."""
    named = os.environ.get(TIKTOKEN_CACHE_VAR) or (
        str(Path(os.environ[registry.MIRROR_VAR]) / "tiktoken-cache") if os.environ.get(registry.MIRROR_VAR) else "")
    if not named or not Path(named).is_dir():
        pytest.skip(f"no tiktoken cache: set {TIKTOKEN_CACHE_VAR} (or {registry.MIRROR_VAR})")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TIKTOKEN_CACHE_VAR, named)
        yield Path(named)


@pytest.fixture(autouse=True, scope="session")
def _no_hypothesis_database():
    """Hypothesis keeps no example database in the repository (.hypothesis/)."""
    from hypothesis import settings

    settings.register_profile("buildgpt", database=None)
    settings.load_profile("buildgpt")


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


@pytest.fixture(scope="session")
def smoke_cli(mirror_dir):
    """A context for module-scoped command-line runs: the smoke profile, a private data cache in front
    of the mirror, one thread. Example: `with smoke_cli(tmp_path_factory.mktemp("cache")): main([...])`."""
    from buildgpt.settings import profiles

    @contextlib.contextmanager
    def context(cache: Path):
        before = torch.get_num_threads()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(profiles.ENV_VAR, "smoke")
            mp.setenv(registry.CACHE_VAR, str(cache))
            mp.setenv(registry.MIRROR_VAR, str(mirror_dir))
            torch.set_num_threads(1)
            try:
                yield
            finally:
                torch.set_num_threads(before)

    return context
