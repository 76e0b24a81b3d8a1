"""A corpus prepared into token files: split by book, one vocabulary, reused, and rebuilt when stale or damaged."""

from __future__ import annotations

import hashlib
import json
import lzma
import multiprocessing
import os

import numpy as np
import pytest
import torch

from buildgpt.data import prepared, registry
from buildgpt.data.batches import get_batch
from buildgpt.data.prepared import SEPARATOR, FileBatches, PreparedCorpusError, book_splits, prepare_corpus
from buildgpt.data.registry import Dataset, DatasetError

BOOKS = [f"Book {i}: " + "abcdefghij"[i % 10] * (30 + i) + f" the end of {i}.\n" for i in range(23)]
FINETUNE_TEXT = "Zounds! Quoth XYZ.\n"  # Z, Q, X, Y, ! and ' ' are added to the vocabulary by this text


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def register_corpus(monkeypatch, root, books=BOOKS, manifest_chars=None):
    """A small corpus in the registry's layout: name/corpus.txt.xz, its manifest, and a finetuning text."""
    raw = SEPARATOR.join(books).encode()
    folder = root / "tiny-novels"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.txt.xz").write_bytes(lzma.compress(raw))
    manifest = {"books": [{"file": f"book{i}.txt", "chars": n}
                          for i, n in enumerate(manifest_chars or [len(b) for b in books])]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (root / "tiny-plays").mkdir(exist_ok=True)
    (root / "tiny-plays" / "plays.txt").write_text(FINETUNE_TEXT)
    for d in [Dataset("tiny-novels", "corpus.txt.xz", sha((folder / "corpus.txt.xz").read_bytes()), None,
                      text_sha256=sha(raw)),
              Dataset("tiny-novels-manifest", "manifest.json", sha((folder / "manifest.json").read_bytes()), None,
                      folder="tiny-novels"),
              Dataset("tiny-plays", "plays.txt", sha(FINETUNE_TEXT.encode()), None)]:
        monkeypatch.setitem(registry.REGISTRY, d.name, d)


@pytest.fixture
def corpus(data_cache, monkeypatch):
    register_corpus(monkeypatch, data_cache)
    return lambda **kw: prepare_corpus("tiny-novels", ("tiny-plays",), progress=False, **kw)


def decode(prepared_corpus, split):
    return "".join(prepared_corpus.chars[i] for i in getattr(prepared_corpus, split))


def test_every_book_is_in_exactly_one_split_whole(corpus):
    c = corpus()
    train, val = decode(c, "train"), decode(c, "val")
    assert c.val_books == ["book9.txt", "book19.txt"]
    assert len(c.train_books) == 21
    for i, book in enumerate(BOOKS):
        assert (book in val) == (f"book{i}.txt" in c.val_books)
        assert (book in train) != (book in val)
    assert len(train) + len(val) == len(SEPARATOR.join(BOOKS))


def test_the_vocabulary_covers_the_finetuning_text_and_is_sorted(corpus):
    c = corpus()
    assert c.chars == sorted(set("".join(BOOKS)) | set(FINETUNE_TEXT))
    assert c.train.dtype == np.uint8 and isinstance(c.train, np.memmap)


def test_book_lengths_add_up_to_the_file():
    manifest = {"books": [{"file": "a", "chars": 5}, {"file": "b", "chars": 7}]}
    assert book_splits(manifest) == [("a", 5 + len(SEPARATOR), "train"), ("b", 7, "train")]


def test_a_second_preparation_reuses_the_files(corpus):
    first = corpus()
    stamp = (first.folder / "train.bin").stat().st_mtime_ns
    again = corpus()
    assert (again.folder / "train.bin").stat().st_mtime_ns == stamp
    assert first.built and not again.built  # the corpus says which it did
    assert np.array_equal(first.train, again.train)


@pytest.mark.parametrize("damage", ["truncate", "flip", "stale", "no-meta"])
def test_damaged_or_stale_files_are_rebuilt_never_used(corpus, damage):
    good = np.array(corpus().train)
    folder = corpus().folder
    if damage == "truncate":
        (folder / "train.bin").write_bytes((folder / "train.bin").read_bytes()[:-3])
    elif damage == "flip":
        data = bytearray((folder / "train.bin").read_bytes())
        data[7] ^= 1
        (folder / "train.bin").write_bytes(bytes(data))
    elif damage == "stale":
        meta = json.loads((folder / "meta.json").read_text())
        meta["key"]["text_sha256"] = "0" * 64  # prepared from another version of the corpus
        (folder / "meta.json").write_text(json.dumps(meta))
    else:
        (folder / "meta.json").unlink()  # what an interrupted preparation leaves
    rebuilt = corpus()
    assert rebuilt.built and np.array_equal(rebuilt.train, good)


def test_an_interrupted_preparation_leaves_nothing_that_counts_as_prepared(corpus, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepared, "_file_sha256", interrupted)  # dies after the streaming, before meta.json
    with pytest.raises(KeyboardInterrupt):
        corpus()
    folder = registry.cache_dir() / "prepared" / "tiny-novels-char"
    assert not (folder / "meta.json").exists()
    monkeypatch.setattr(prepared, "_file_sha256", lambda path: sha(path.read_bytes()))
    assert decode(corpus(), "val").startswith("Book 9:")


def test_a_manifest_that_does_not_fit_the_text_is_a_clear_error(data_cache, monkeypatch):
    register_corpus(monkeypatch, data_cache, manifest_chars=[len(b) - 1 for b in BOOKS])
    with pytest.raises(PreparedCorpusError, match="longer than its manifest"):
        prepare_corpus("tiny-novels", ("tiny-plays",), progress=False)


def test_a_new_manifest_for_the_same_text_prepares_again(corpus, data_cache, monkeypatch):
    """The manifest decides where books end, so which are val: the same text with other book ends is not reusable."""
    before = corpus()
    merged = [BOOKS[0] + SEPARATOR + BOOKS[1], *BOOKS[2:]]  # the same characters, books 0 and 1 as one
    register_corpus(monkeypatch, data_cache, books=merged)
    after = corpus()
    assert after.built and decode(after, "val").startswith("Book 10:") and decode(before, "val").startswith("Book 9:")


def test_a_corpus_of_too_few_books_for_a_val_split_is_refused(data_cache, monkeypatch):
    register_corpus(monkeypatch, data_cache, books=BOOKS[:prepared.VAL_EVERY - 1])
    with pytest.raises(PreparedCorpusError, match=f"has {prepared.VAL_EVERY - 1} books; every {prepared.VAL_EVERY}th"):
        prepare_corpus("tiny-novels", ("tiny-plays",), progress=False)


def test_a_missing_corpus_gets_the_registry_error(data_cache):
    with pytest.raises(DatasetError, match="gutenberg-novels"):
        prepare_corpus("gutenberg-novels", progress=False)


def test_the_real_novels_split_by_book_with_one_vocabulary(mirror, tmp_path):
    c = prepare_corpus(folder=tmp_path / "novels", progress=False)
    manifest = json.loads(registry.path("gutenberg-novels-manifest").read_text())
    assert len(c.train) + len(c.val) == sum(b["chars"] for b in manifest["books"]) + 2 * (len(manifest["books"]) - 1)
    assert len(c.val_books) == 16 and not set(c.val_books) & set(c.train_books)
    assert set(registry.load_text("tinyshakespeare")) <= set(c.chars)
    first_val = manifest["books"][9]
    text = "".join(c.chars[i] for i in c.val[:first_val["chars"]])
    assert sha(text.encode()) == first_val["sha256"]  # the tenth book, whole and exact


def test_processes_preparing_at_once_prepare_once_and_all_get_the_files(corpus, monkeypatch, tmp_path):
    """As torchrun's ranks do on a first run: one prepares while the others wait, then reuse its files."""
    log = tmp_path / "prepared-by"
    real = prepared._prepare

    def logged(*args, **kwargs):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(prepared, "_prepare", logged)
    def rank():
        with open(tmp_path / f"length-{os.getpid()}", "w") as f:
            f.write(str(len(corpus().train)))

    context = multiprocessing.get_context("fork")  # the children inherit the test's registry; nothing is pickled
    ranks = [context.Process(target=rank) for _ in range(3)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(60)
    assert [p.exitcode for p in ranks] == [0, 0, 0]
    lengths = {f.read_text() for f in tmp_path.glob("length-*")}
    assert len(lengths) == 1 and int(lengths.pop()) > 0
    assert len(log.read_text().split()) == 1


def test_file_batches_from_a_memory_mapped_file_equal_get_batch_on_a_tensor(tmp_path):
    """The page's plain `get_batch` and the file reader draw the same windows from the same ids and seed."""
    data = torch.randint(0, 185, (5000,), generator=torch.Generator().manual_seed(0))
    file = tmp_path / "tokens.bin"
    data.numpy().astype(np.uint8).tofile(file)
    mapped = np.memmap(file, dtype=np.uint8, mode="r")
    source = FileBatches(mapped, mapped[:100], block_size=16)
    for split, ids in (("train", data), ("val", data[:100])):
        x, y = get_batch(ids, 8, 16, generator=torch.Generator().manual_seed(3))
        mx, my = source.batch(split, 8, torch.Generator().manual_seed(3))
        assert mx.dtype == torch.long and mx.is_contiguous()
        assert torch.equal(x, mx) and torch.equal(y, my)
    with pytest.raises(ValueError, match="block_size=16 needs 17"):
        FileBatches(mapped, mapped[:10], block_size=16).batch("val", 2)
