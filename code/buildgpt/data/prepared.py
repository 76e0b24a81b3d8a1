"""A large corpus prepared once into token files on disk: character ids, split by book, memory-mapped.

88 million characters as a Python list of ints would take most of a gigabyte; as one byte per character
in a file they take 88 MB, and `numpy.memmap` reads only the windows a batch needs. The text is
streamed from the compressed file (never held whole), each book goes to train or val whole, so
no book is in both. The result is reused while the corpus and the vocabulary stay the same; a
missing, truncated, stale or damaged file is detected and rebuilt, never silently used.

Example: `corpus = prepare_corpus("gutenberg-novels")`, then `corpus.batches(block_size=64)`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..utils.files import write_text_atomically
from ..utils.progress import tqdm
from . import registry
from .batches import TokenBatches, check_fits_one_window

FORMAT = "buildgpt-prepared-1"
SEPARATOR = "\n\n"  # between two books in the corpus file
VAL_EVERY = 10  # every tenth book (in the file's order, by author) is a val book


class PreparedCorpusError(RuntimeError):
    """The corpus and its table of contents do not fit together."""


@dataclass(frozen=True)
class PreparedCorpus:
    """The token files of one corpus: `train` and `val` are read-only memory maps of uint8 ids."""

    folder: Path
    chars: list[str]  # the character vocabulary: id i is chars[i]
    train: np.ndarray
    val: np.ndarray
    train_books: list[str]
    val_books: list[str]
    built: bool = False  # True when this call wrote the files; False when it found them valid and reused them

    def batches(self, block_size: int) -> FileBatches:
        """Random windows of `block_size` tokens, read straight from the files."""
        return FileBatches(self.train, self.val, block_size)


class FileBatches(TokenBatches):
    """`TokenBatches` over numpy arrays such as memory maps: a batch reads only its windows' bytes.

    Draws the same windows as `get_batch` on the same ids and generator.
    Example: `FileBatches(np.memmap("train.bin", np.uint8), val, block_size=64).batch("train", 32)`.
    """

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None):
        data = self.splits[split]
        check_fits_one_window(len(data), self.block_size)
        starts = torch.randint(len(data) - self.block_size, (batch_size,), generator=generator)  # (B,)
        rows = starts.numpy()[:, None] + np.arange(self.block_size + 1)  # (B, T+1) positions in the file
        windows = torch.from_numpy(data[rows].astype(np.int64))  # (B, T+1), ids widened from uint8
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def book_splits(manifest: dict) -> list[tuple[str, int, str]]:
    """(book, characters it takes in the corpus file, split) for each book, in file order.

    Each book but the last owns the separator after it, so the lengths add up to the file's.
    Example: `book_splits({"books": [{"file": "a.txt", "chars": 5}]})` is `[("a.txt", 5, "train")]`.
    """
    books = manifest["books"]
    return [(b["file"], b["chars"] + (len(SEPARATOR) if i < len(books) - 1 else 0),
             "val" if i % VAL_EVERY == VAL_EVERY - 1 else "train") for i, b in enumerate(books)]


def _key(corpus: str, extra_texts: tuple[str, ...]) -> dict:
    """What the prepared files depend on: the corpus text, its manifest (where each book ends, so which books are
    val), how often a book is val, and the texts whose characters the vocabulary adds."""
    return {"format": FORMAT, "corpus": corpus, "text_sha256": registry.get(corpus).text_sha256,
            "manifest_sha256": registry.get(f"{corpus}-manifest").sha256, "val_every": VAL_EVERY,
            "extra_texts": {name: registry.get(name).sha256 for name in extra_texts}}


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _load_if_valid(folder: Path, key: dict) -> PreparedCorpus | None:
    """The prepared corpus in `folder`, or None if anything about it is missing, stale or damaged."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("key") != key:
        return None
    arrays = {}
    for split in ("train", "val"):
        file = folder / f"{split}.bin"
        if not file.is_file() or file.stat().st_size != meta[split]["tokens"]:
            return None
        if _file_sha256(file) != meta[split]["sha256"]:
            return None
        arrays[split] = np.memmap(file, dtype=np.uint8, mode="r")
    return PreparedCorpus(folder, meta["chars"], arrays["train"], arrays["val"],
                          meta["train"]["books"], meta["val"]["books"])


def prepare_corpus(corpus: str = "gutenberg-novels", extra_texts: tuple[str, ...] = ("tinyshakespeare",),
                   folder: str | os.PathLike | None = None, progress: bool = True) -> PreparedCorpus:
    """Prepare `corpus` into token files (or reuse them), with one vocabulary that also covers `extra_texts`.

    The vocabulary is every character of the corpus and of `extra_texts` (the text a model
    pretrained here will be finetuned on), so both are encoded with the same ids.
    Example: `corpus = prepare_corpus()`, then `corpus.batches(256)` draws training windows from its files.
    """
    folder = Path(folder) if folder else registry.cache_dir() / "prepared" / f"{corpus}-char"
    key = _key(corpus, extra_texts)
    registry.path(corpus)  # the corpus is present and matches its sha256, or a clear error
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Several processes (torchrun's ranks) may ask at once: one prepares, the others wait and reuse.
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (prepared := _load_if_valid(folder, key)) is not None:
            return prepared
        return _prepare(corpus, extra_texts, folder, key, progress)


def _prepare(corpus: str, extra_texts: tuple[str, ...], folder: Path, key: dict, progress: bool) -> PreparedCorpus:
    shutil.rmtree(folder, ignore_errors=True)  # stale or damaged: nothing in it is reused
    folder.mkdir(parents=True)
    manifest = json.loads(registry.path(f"{corpus}-manifest").read_text(encoding="utf-8"))
    if len(manifest["books"]) < VAL_EVERY:
        raise PreparedCorpusError(f"{corpus} has {len(manifest['books'])} books; every {VAL_EVERY}th is val, so it "
                                  f"needs at least {VAL_EVERY} to have a val split")
    order, split_books = _encode(corpus, book_splits(manifest), folder, progress)
    chars = sorted(set(order) | {c for name in extra_texts for c in registry.load_text(name)})
    if len(chars) > 256:
        raise PreparedCorpusError(f"the vocabulary has {len(chars)} characters; one byte per token holds 256")
    # Ids were given in order of first appearance; renumber them in sorted order, as CharTokenizer does.
    renumber = np.zeros(256, dtype=np.uint8)
    renumber[:len(order)] = [chars.index(c) for c in order]
    meta = {"key": key, "chars": chars}
    for split in ("train", "val"):
        part = folder / f"{split}.bin.part"
        ids = np.memmap(part, dtype=np.uint8, mode="r+")
        ids[:] = renumber[ids]
        ids.flush()
        del ids
        meta[split] = {"tokens": part.stat().st_size, "sha256": _file_sha256(part), "books": split_books[split]}
        part.replace(folder / f"{split}.bin")
    write_text_atomically(folder / "meta.json", json.dumps(meta, ensure_ascii=False))  # last: marks it complete
    return replace(_load_if_valid(folder, key), built=True)


def _encode(corpus: str, books: list[tuple[str, int, str]], folder: Path, progress: bool):
    """Stream the corpus into `train.bin.part` and `val.bin.part`, one byte per character."""
    table = np.full(0x110000, -1, dtype=np.int16)  # code point -> id, given on first appearance
    order: list[str] = []
    total = sum(n for _, n, _ in books)
    book, left = -1, 0  # the book being read, and how many of its characters are still to come
    done = 0
    with (open(folder / "train.bin.part", "wb") as train_out, open(folder / "val.bin.part", "wb") as val_out,
          tqdm(total=total, desc=f"preparing {corpus}", unit="char", unit_scale=True, disable=not progress) as bar):
        outputs = {"train": train_out, "val": val_out}  # closed on any error too
        for piece in registry.iter_text(corpus):
            codes = np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32)
            ids = table[codes]
            if (ids < 0).any():
                for code in np.unique(codes[ids < 0]):
                    if len(order) == 256:
                        raise PreparedCorpusError(f"{corpus} has more than 256 distinct characters; "
                                                  "one byte per token cannot hold them")
                    table[code] = len(order)
                    order.append(chr(code))
                ids = table[codes]
            ids = ids.astype(np.uint8)
            start = 0
            while start < len(ids):
                if left == 0:
                    book += 1
                    if book == len(books):
                        raise PreparedCorpusError(f"{corpus} is longer than its manifest says ({total} characters)")
                    left = books[book][1]
                take = min(left, len(ids) - start)
                outputs[books[book][2]].write(ids[start:start + take].tobytes())
                start, left = start + take, left - take
            done += len(ids)
            bar.update(len(ids))
    if done != total:
        raise PreparedCorpusError(f"{corpus} has {done} characters; its manifest says {total}")
    return order, {split: [name for name, _, s in books if s == split] for split in outputs}
