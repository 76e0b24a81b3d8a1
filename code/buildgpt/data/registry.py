"""The dataset registry: every text the book trains on, found offline first and always verified.

Lookup order for a dataset's file: the download cache (`cache_dir()`: `$BUILDGPT_DATA_DIR`, else
a checkout's `data/`, else ~/.cache/buildgpt for an installed wheel), then the folder named by
`BUILDGPT_DATA_MIRROR` (CI points it at `../shared/data`), then a download from the public
URL into the cache. Whatever is found is checked against its sha256 before it is used; a file
with the wrong hash is refused and left where it is, so nothing is lost.

Command line: `buildgpt-data list`, `buildgpt-data fetch tinyshakespeare`.
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import http.client
import lzma
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..utils.files import replacing

MIRROR_VAR = "BUILDGPT_DATA_MIRROR"
CACHE_VAR = "BUILDGPT_DATA_DIR"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
_CHUNK = 1 << 20


class DatasetError(RuntimeError):
    """A dataset could not be found, fetched or verified."""


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str  # path of the stored file inside the dataset's folder
    sha256: str  # of the stored file
    url: str | None  # public download address; None for mirror-only data
    text_sha256: str | None = None  # of the decompressed text, for compressed files
    description: str = ""
    folder: str | None = None  # the folder it is stored in, if not its name (files that belong together)

    @property
    def location(self) -> str:
        """Where the file lies below a data root: `folder/file`."""
        return f"{self.folder or self.name}/{self.file}"

    @property
    def compressed(self) -> bool:
        return self.file.endswith(".xz")


REGISTRY: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            name="tinyshakespeare",
            file="input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            description="Shakespeare's plays, 1,115,394 characters (char-rnn, MIT)",
        ),
        Dataset(
            name="gutenberg-novels",
            file="gutenberg-novels.txt.xz",
            sha256="e02b7686bc1d378a61c387882cc7ffd75abf5c38fec981b9efa3fea242a7a1d6",
            text_sha256="14075770e9cd78a59feebd59dda362691f4f7fb26d2a97b6c4e2ad8e1bdff9fb",
            url=None,
            description="167 public-domain Project Gutenberg novels, 88M characters (mirror only)",
        ),
        Dataset(
            name="gutenberg-novels-manifest",
            file="manifest.json",
            folder="gutenberg-novels",
            sha256="160f6e9f0bf8e4cac3a7de990c7de00b0def083462e8d2d30f6c81f21564b6b0",
            url=None,
            description="the novels' table of contents: each book's file name and length, in order",
        ),
    ]
}


def cache_dir() -> Path:
    """The download cache: `$BUILDGPT_DATA_DIR`, else the checkout's `data/`, else ~/.cache/buildgpt.

    Example: `cache_dir()` is `<checkout>/data` in a checkout with no `$BUILDGPT_DATA_DIR`.
    """
    if override := os.environ.get(CACHE_VAR):
        return Path(override)
    if (PROJECT_ROOT / "code" / "buildgpt").is_dir():  # an editable install in a checkout
        return PROJECT_ROOT / "data"
    return Path.home() / ".cache" / "buildgpt"


def get(name: str) -> Dataset:
    """The registry's entry for dataset `name`, or an error listing the known ones. Example: `get("tinyshakespeare").sha256`."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(REGISTRY))}") from None


def sha256_of(path: Path) -> str:
    """The file's SHA-256 as hex, read in blocks. Example: `sha256_of(path("tinyshakespeare"))`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, dataset: Dataset) -> Path:
    actual = sha256_of(path)
    if actual != dataset.sha256:
        raise DatasetError(
            f"{path} does not match dataset {dataset.name!r}: expected sha256 {dataset.sha256}, "
            f"got {actual}. The file was left in place; delete or replace it, then retry."
        )
    return path


def _roots() -> list[Path]:
    """The folders searched, in order: the cache, then the mirror if one is set."""
    roots = [cache_dir()]
    if mirror := os.environ.get(MIRROR_VAR):
        roots.append(Path(mirror))
    return roots


def _download(dataset: Dataset, target: Path) -> Path:
    with urllib.request.urlopen(dataset.url, timeout=30) as response:
        target.parent.mkdir(parents=True, exist_ok=True)  # only once there is something to put in it
        with replacing(target) as tmp:  # its own file: two downloads at once never write into each other's
            with open(tmp, "wb") as out:
                while block := response.read(_CHUNK):
                    out.write(block)
            if sha256_of(tmp) != dataset.sha256:  # kept to look at, as .part: never taken for the dataset
                partial = target.with_name(target.name + ".part")
                os.replace(tmp, partial)
                _verified(partial, dataset)
    return target


def path(name: str) -> Path:
    """The verified local file of dataset `name`, downloading it into the cache (`cache_dir()`) if need be.

    Example: `path("tinyshakespeare").name` is `'input.txt'`.
    """
    dataset = get(name)
    roots = _roots()
    places = [root / dataset.location for root in roots]
    for place in places:
        if place.is_file():
            return _verified(place, dataset)
    problem = "it is mirror-only (no public download)"
    if dataset.url:
        try:
            return _download(dataset, places[0])
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # HTTPException: a broken transfer
            problem = f"downloading {dataset.url} failed ({e})"
    mirror = os.environ.get(MIRROR_VAR)
    raise DatasetError(
        f"dataset {name!r} not found: looked for {dataset.location} in "
        f"{' and '.join(str(root) for root in roots)}"
        f"{'' if mirror else f' ({MIRROR_VAR} is not set)'}, and {problem}. "
        f"Put the file {dataset.file} (sha256 {dataset.sha256}) into {places[0].parent}, "
        f"or set {MIRROR_VAR} to a folder that holds {dataset.location}"
        f"{f', or connect to the network to fetch {dataset.url}' if dataset.url else ''}."
    )


def iter_text(name: str, chunk_chars: int = 1 << 22) -> Iterator[str]:
    """The dataset's text in pieces of about `chunk_chars` characters, never all at once.

    For compressed datasets the decompressed bytes are hashed as they stream by and a
    mismatch raises at the end, after which no further piece is produced.
    Example: `sum(len(piece) for piece in iter_text("gutenberg-novels"))` counts its characters.
    """
    dataset = get(name)
    file = path(name)
    if not dataset.compressed:
        with open(file, encoding="utf-8", newline="") as f:
            while piece := f.read(chunk_chars):
                yield piece
        return
    digest = hashlib.sha256()
    with lzma.open(file, "rb") as raw:
        decoder = codecs.getincrementaldecoder("utf-8")()
        while block := raw.read(chunk_chars):
            digest.update(block)
            if piece := decoder.decode(block):
                yield piece
        if tail := decoder.decode(b"", final=True):
            yield tail
    _check_text_hash(dataset, file, digest.hexdigest())


def load_text(name: str) -> str:
    """The whole text of dataset `name`, verified.

    Compressed data is decompressed once into bytes, hashed, and decoded; only the bytes and
    the final string are ever held, never a list of pieces plus their join.
    Example: `load_text("tinyshakespeare")[:14]` is `'First Citizen:'`.
    """
    dataset = get(name)
    file = path(name)
    if not dataset.compressed:
        return file.read_bytes().decode("utf-8")  # exactly the verified bytes, line endings kept
    with lzma.open(file, "rb") as raw:
        data = raw.read()
    _check_text_hash(dataset, file, hashlib.sha256(data).hexdigest())
    return data.decode("utf-8")


def _check_text_hash(dataset: Dataset, file: Path, actual: str) -> None:
    if actual != dataset.text_sha256:
        raise DatasetError(
            f"the text decompressed from {file} does not match dataset {dataset.name!r}: "
            f"expected sha256 {dataset.text_sha256}, got {actual}. The file was left in place."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="buildgpt-data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the known datasets")
    fetch = commands.add_parser("fetch", help="find or download a dataset, verify it, print its path")
    fetch.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "list":
        width = max(map(len, REGISTRY))
        for d in REGISTRY.values():
            print(f"{d.name:{width}}  {d.description}")
        return 0
    try:
        print(path(args.name))
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2  # as `buildgpt` does for input it cannot use
    return 0


if __name__ == "__main__":
    sys.exit(main())
