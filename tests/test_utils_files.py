"""Writing files so that a crash never leaves half of one: the rename comes after the bytes are on disk."""

from __future__ import annotations

import os
import sys

import pytest

from buildgpt.utils import files


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tells a file from a folder through /proc")
def test_replace_durably_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    target, tmp = tmp_path / "last.safetensors", tmp_path / ".last.tmp"
    target.write_bytes(b"old")
    tmp.write_bytes(b"new")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file", target.read_bytes()))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace",))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    files.replace_durably(tmp, target)
    # the new bytes were synced while the old file was still in place; then the rename, then the folder
    assert events == [("fsync", "file", b"old"), ("replace",), ("fsync", "folder", b"new")]
    assert target.read_bytes() == b"new" and not tmp.exists()


def test_write_text_atomically_leaves_only_the_file(tmp_path):
    path = files.write_text_atomically(tmp_path / "notes.txt", "hi\n")
    assert path.read_text() == "hi\n" and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_replacing_keeps_the_old_file_when_the_writing_fails(tmp_path):
    target = tmp_path / "last.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with files.replacing(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt  # the writer stopped halfway
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]
    with files.replacing(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o666 & ~files._umask()  # a new file's mode, not mkstemp's 0600
