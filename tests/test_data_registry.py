"""The dataset registry: lookup order, verification, downloads, compressed data, the CLI."""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import io
import lzma
import shutil
import time
import urllib.request

import pytest

from buildgpt.data import registry
from buildgpt.data.registry import Dataset, DatasetError

TINY_LEN = 1_115_394
TINY = registry.REGISTRY["tinyshakespeare"]


@pytest.fixture(autouse=True)
def _offline(no_network):
    """No test in this module may touch the network; a test that needs a download fakes one."""
    return no_network


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def fake_urlopen(payload: bytes, calls: list):
    def urlopen(url, *args, **kwargs):
        calls.append(url)
        return io.BytesIO(payload)

    return urlopen


# ---------------------------------------------------------------- lookup order


def test_tinyshakespeare_found_in_mirror(mirror, data_cache, _offline):
    found = registry.path("tinyshakespeare")
    assert found == mirror / "tinyshakespeare" / "input.txt"
    assert registry.sha256_of(found) == TINY.sha256
    text = registry.load_text("tinyshakespeare")
    assert len(text) == TINY_LEN
    assert text.startswith("First Citizen:")
    assert _offline == []  # found offline, no download tried
    assert not (data_cache / "tinyshakespeare").exists()  # the mirror is read, not copied


def test_iter_text_uncompressed_matches_load_text(mirror):
    pieces = list(registry.iter_text("tinyshakespeare", chunk_chars=100_000))
    assert len(pieces) == 12
    assert all(len(p) == 100_000 for p in pieces[:-1])
    assert "".join(pieces) == registry.load_text("tinyshakespeare")


def test_cache_has_priority_over_mirror(mirror, data_cache):
    cached = data_cache / "tinyshakespeare" / "input.txt"
    cached.parent.mkdir(parents=True)
    shutil.copyfile(mirror / "tinyshakespeare" / "input.txt", cached)
    assert registry.path("tinyshakespeare") == cached


def test_corrupt_cache_is_refused_not_skipped(mirror, data_cache):
    """A bad file in the cache is reported, even though the mirror holds a good one."""
    cached = data_cache / "tinyshakespeare" / "input.txt"
    cached.parent.mkdir(parents=True)
    cached.write_text("not shakespeare\n")
    with pytest.raises(DatasetError) as e:
        registry.path("tinyshakespeare")
    assert str(cached) in str(e.value)


def test_wrong_sha256_names_both_hashes_and_keeps_file(data_cache):
    bad = data_cache / "tinyshakespeare" / "input.txt"
    bad.parent.mkdir(parents=True)
    content = b"To be, or not to be\n"
    bad.write_bytes(content)
    with pytest.raises(DatasetError) as e:
        registry.path("tinyshakespeare")
    message = str(e.value)
    assert TINY.sha256 in message
    assert sha(content) in message
    assert "tinyshakespeare" in message
    assert bad.read_bytes() == content  # left in place, not deleted


def test_not_found_offline_explains_everything(data_cache, _offline):
    with pytest.raises(DatasetError) as e:
        registry.path("tinyshakespeare")
    message = str(e.value)
    assert "'tinyshakespeare'" in message
    assert TINY.url in message
    assert registry.MIRROR_VAR in message
    assert "input.txt" in message
    assert str(data_cache) in message
    assert "network is unreachable" in message  # the cause of the failed download
    assert _offline == [TINY.url]  # exactly one download attempt, at the registry URL
    assert not (data_cache / "tinyshakespeare").exists()  # not even an empty folder is left behind


def test_not_found_names_an_empty_mirror(data_cache, tmp_path, monkeypatch):
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv(registry.MIRROR_VAR, str(empty))
    with pytest.raises(DatasetError) as e:
        registry.path("tinyshakespeare")
    assert str(empty) in str(e.value)
    assert f"{registry.MIRROR_VAR} is not set" not in str(e.value)


def test_mirror_only_dataset_is_never_downloaded(data_cache, _offline):
    with pytest.raises(DatasetError) as e:
        registry.path("gutenberg-novels")
    message = str(e.value)
    assert "mirror-only" in message
    assert "gutenberg-novels.txt.xz" in message
    assert registry.MIRROR_VAR in message
    assert _offline == []


def test_unknown_dataset_lists_known_names(data_cache):
    for call in (registry.get, registry.path, registry.load_text):
        with pytest.raises(DatasetError) as e:
            call("no-such-data")
        message = str(e.value)
        assert "'no-such-data'" in message
        assert "gutenberg-novels, gutenberg-novels-manifest, tinyshakespeare" in message
    with pytest.raises(DatasetError, match="no-such-data"):
        next(registry.iter_text("no-such-data"))


# ---------------------------------------------------------------- downloads


def test_download_lands_in_cache_and_is_verified(mirror, data_cache, monkeypatch):
    monkeypatch.delenv(registry.MIRROR_VAR)  # force the download
    payload = (mirror / "tinyshakespeare" / "input.txt").read_bytes()
    calls: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(payload, calls))
    target = data_cache / "tinyshakespeare" / "input.txt"
    assert registry.path("tinyshakespeare") == target
    assert calls == [TINY.url]
    assert target.read_bytes() == payload
    assert not target.with_name("input.txt.part").exists()
    # the second lookup finds the cached copy and does not download again
    assert registry.path("tinyshakespeare") == target
    assert calls == [TINY.url]
    assert len(registry.load_text("tinyshakespeare")) == TINY_LEN


def test_corrupt_download_is_refused_and_left_as_part(data_cache, monkeypatch):
    payload = b"this is not what the registry promised\n"
    calls: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(payload, calls))
    target = data_cache / "tinyshakespeare" / "input.txt"
    with pytest.raises(DatasetError) as e:
        registry.path("tinyshakespeare")
    assert TINY.sha256 in str(e.value) and sha(payload) in str(e.value)
    assert calls == [TINY.url]
    assert not target.exists()
    partial = target.with_name("input.txt.part")
    assert partial.read_bytes() == payload


class SlowResponse(io.BytesIO):
    """A download that arrives in small pieces, with a pause before each: long enough for others to start."""

    def read(self, size=-1):
        time.sleep(0.01)
        return super().read(min(size, 100_000) if size and size > 0 else 100_000)


def test_downloads_of_one_dataset_at_once_all_succeed(mirror, data_cache, monkeypatch):
    monkeypatch.delenv(registry.MIRROR_VAR)
    payload = (mirror / "tinyshakespeare" / "input.txt").read_bytes()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, *args, **kwargs: SlowResponse(payload))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        found = list(pool.map(lambda _: registry.path("tinyshakespeare"), range(3)))
    target = data_cache / "tinyshakespeare" / "input.txt"
    assert found == [target] * 3 and target.read_bytes() == payload
    assert [p.name for p in target.parent.iterdir()] == ["input.txt"]  # no download file left


def test_a_transfer_that_breaks_off_is_an_error_that_leaves_nothing(data_cache, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise http.client.IncompleteRead(b"", 1000)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, *args, **kwargs: Broken())
    with pytest.raises(DatasetError, match=r"downloading .* failed \(IncompleteRead\(0 bytes read, 1000 more"):
        registry.path("tinyshakespeare")
    assert list((data_cache / "tinyshakespeare").iterdir()) == []


# ---------------------------------------------------------------- compressed datasets

# Two-, three- and four-byte UTF-8 characters, so small byte chunks split characters.
XZ_TEXT = "Ünïcødé — 日本語 🙂 café\nplain ascii line\n" * 40


def register_xz(monkeypatch, folder, text: str, name: str = "fake-xz", text_sha256: str | None = None):
    """Write `text` as folder/name/fake.txt.xz and register it with correct (or given) hashes."""
    raw = text.encode("utf-8")
    compressed = lzma.compress(raw)
    file = folder / name / "fake.txt.xz"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(compressed)
    dataset = Dataset(name=name, file="fake.txt.xz", sha256=sha(compressed), url=None,
                      text_sha256=text_sha256 or sha(raw), description="a test dataset")
    monkeypatch.setitem(registry.REGISTRY, name, dataset)
    return file


def test_compressed_load_text_and_iter_text_agree(data_cache, monkeypatch):
    file = register_xz(monkeypatch, data_cache, XZ_TEXT)
    assert registry.REGISTRY["fake-xz"].compressed
    assert registry.path("fake-xz") == file
    assert registry.load_text("fake-xz") == XZ_TEXT
    chunk = 7
    raw = XZ_TEXT.encode("utf-8")
    # some chunk borders really do fall inside a multi-byte character
    assert any(raw[i] & 0xC0 == 0x80 for i in range(chunk, len(raw), chunk))
    pieces = list(registry.iter_text("fake-xz", chunk_chars=chunk))
    assert "".join(pieces) == XZ_TEXT
    assert len(pieces) > 100  # streamed in small pieces, not all at once
    assert all(len(p) <= chunk for p in pieces)


def test_compressed_dataset_from_mirror(data_cache, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    file = register_xz(monkeypatch, mirror, "short text\n")
    monkeypatch.setenv(registry.MIRROR_VAR, str(mirror))
    assert registry.path("fake-xz") == file
    assert "".join(registry.iter_text("fake-xz")) == registry.load_text("fake-xz") == "short text\n"


def test_compressed_wrong_text_sha256_raises(data_cache, monkeypatch):
    wrong = "0" * 64
    file = register_xz(monkeypatch, data_cache, XZ_TEXT, text_sha256=wrong)
    actual = sha(XZ_TEXT.encode("utf-8"))
    with pytest.raises(DatasetError) as e:
        registry.load_text("fake-xz")
    assert wrong in str(e.value) and actual in str(e.value)
    assert str(file) in str(e.value)
    with pytest.raises(DatasetError) as e:
        list(registry.iter_text("fake-xz", chunk_chars=64))
    assert wrong in str(e.value) and actual in str(e.value)
    assert file.exists()  # the file is left in place


def test_compressed_wrong_file_sha256_raises(data_cache, monkeypatch):
    file = register_xz(monkeypatch, data_cache, XZ_TEXT)
    monkeypatch.setitem(registry.REGISTRY, "fake-xz",
                        Dataset(name="fake-xz", file="fake.txt.xz", sha256="f" * 64, url=None,
                                text_sha256=sha(XZ_TEXT.encode("utf-8"))))
    with pytest.raises(DatasetError, match="f" * 64):
        registry.load_text("fake-xz")
    assert file.exists()


def test_uncompressed_text_is_returned_as_stored(data_cache, monkeypatch):
    """load_text and iter_text return the verified bytes, decoded, with line endings untouched.

    The compressed path decodes bytes as they are; the uncompressed path must agree, or the
    same text gives different tokens depending on how it was stored.
    """
    raw = b"line one\r\nline two\rline three\n"
    file = data_cache / "fake-txt" / "fake.txt"
    file.parent.mkdir(parents=True)
    file.write_bytes(raw)
    monkeypatch.setitem(registry.REGISTRY, "fake-txt",
                        Dataset(name="fake-txt", file="fake.txt", sha256=sha(raw), url=None))
    streamed = "".join(registry.iter_text("fake-txt", chunk_chars=4))
    assert streamed == raw.decode("utf-8")
    assert registry.load_text("fake-txt") == streamed


def test_real_gutenberg_mirror_file_verifies(mirror):
    file = mirror / "gutenberg-novels" / "gutenberg-novels.txt.xz"
    if not file.is_file():
        pytest.skip("the mirror has no gutenberg-novels")
    assert registry.path("gutenberg-novels") == file
    assert registry.REGISTRY["gutenberg-novels"].compressed


# ---------------------------------------------------------------- command line


def test_cli_list(capsys):
    assert registry.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == len(registry.REGISTRY)
    for name, dataset in registry.REGISTRY.items():
        assert any(line.startswith(name) and dataset.description in line for line in lines)


def test_cli_fetch_prints_path(mirror, capsys):
    assert registry.main(["fetch", "tinyshakespeare"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(mirror / "tinyshakespeare" / "input.txt")
    assert captured.err == ""


def test_cli_fetch_unknown_name(data_cache, capsys):
    assert registry.main(["fetch", "no-such-data"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert "no-such-data" in captured.err and "tinyshakespeare" in captured.err


def test_cli_fetch_not_found_offline(data_cache, capsys):
    assert registry.main(["fetch", "tinyshakespeare"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and TINY.url in err


def test_cli_needs_a_command(capsys):
    with pytest.raises(SystemExit) as e:
        registry.main([])
    assert e.value.code == 2
