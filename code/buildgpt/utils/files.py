"""Writing files so that a crash never leaves half of one."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, then rename it over `path` in one step.

    Example: `write_text_atomically("out/notes.txt", "hi\\n")` writes the file and returns `Path("out/notes.txt")`.
    """
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside `path` to write, its own, so two writers never share one. When the block ends
    without an error it takes `path`'s place in one step, with the mode a new file gets; otherwise it is removed.

    Example: `with replacing("run/last.safetensors") as tmp: save_file(tensors, tmp)`.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        give_default_mode(tmp)  # as any new file gets, not mkstemp's owner-only 0600
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_durably(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename the finished file `tmp` over `path` once its bytes are synced to disk, then sync the rename too: so
    that after a crash of the machine (on Linux), not only of the process, `path` is the old file or the new one,
    never an empty one.

    Example: `replace_durably(".last.safetensors.tmp", "last.safetensors")`.
    """
    with open(tmp, "r+b") as f:  # writable: Windows syncs only a handle that may write
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if os.name == "posix":  # a folder's entries are synced through the folder itself (not possible on Windows)
        folder = os.open(Path(path).parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def give_default_mode(path: str | os.PathLike) -> None:
    """Give `path` (and, for a folder, all it holds) the mode a new file or folder gets under the umask, instead
    of the owner-only one `tempfile` creates with. Example: `give_default_mode(tmp)` makes 0600 0644 under umask 022.
    """
    umask = _umask()
    path = Path(path)
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux), since setting it and
    setting it back leaves a moment in which another thread, or an interrupted one, sees the wrong one."""
    try:
        if match := re.search(r"^Umask:\s*([0-7]+)", Path("/proc/self/status").read_text(), re.MULTILINE):
            return int(match[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)  # elsewhere (macOS) reading it means setting it: put it straight back
    os.umask(umask)
    return umask
