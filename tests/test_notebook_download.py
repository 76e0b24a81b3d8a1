"""A chapter downloaded from the book runs outside the repository.

The book publishes the package as a wheel (`buildgpt_book/wheel.py`); every chapter's first cell,
hidden on the page, installs it from beside the notebook when `buildgpt` is missing. The slow test
runs chapter 1, as a learner would download it, in a fresh venv that starts with only torch and
Jupyter: the first cell must install the wheel (with its `notebook` extra) and the chapter must run
under the smoke profile, finding its data the usual way (`BUILDGPT_DATA_MIRROR` where set).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jupytext
import nbformat
import pytest
import torch

import buildgpt
from buildgpt_book import notebook_chapters
from buildgpt_book.wheel import INSTALL_CELL, WHEEL_NAME, build_wheel

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = notebook_chapters(BOOK)
EXTRAS = {"assistant": "notebook,assistant"}  # chapters that need more than the `notebook` extra


def install_cell(chapter: Path) -> str:
    return INSTALL_CELL.format(extras=EXTRAS.get(chapter.stem, "notebook"))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_every_chapter_starts_with_the_install_cell(chapter):
    first = next(cell for cell in jupytext.read(chapter).cells if cell.cell_type == "code")
    assert first.source.strip() == install_cell(chapter).strip(), (
        f"{chapter.name}'s first code cell is not buildgpt_book.wheel.INSTALL_CELL with extras "
        f"{EXTRAS.get(chapter.stem, 'notebook')!r}")
    assert "remove-cell" in first.metadata.get("tags", []), f"{chapter.name}: the install cell must be hidden"


def test_the_intro_offers_this_version_of_the_wheel():
    assert f"/_build/wheel/{WHEEL_NAME}>" in (BOOK / "intro.md").read_text(), (
        f"book/intro.md must link /_build/wheel/{WHEEL_NAME} (buildgpt.__version__ is {buildgpt.__version__})")


def test_the_install_cell_names_the_wheel_when_it_is_missing(tmp_path):
    code = INSTALL_CELL.format(extras="notebook").replace('find_spec("buildgpt")', 'find_spec("not_buildgpt")')
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "download its wheel" in result.stderr, result.stderr[-500:]


@pytest.mark.slow
def test_a_downloaded_chapter_runs_in_a_fresh_venv(tmp_path):
    folder = tmp_path / "downloads"
    wheel = build_wheel(ROOT, folder)
    with zipfile.ZipFile(wheel) as files:
        assert "buildgpt_book/static/buildgpt.css" in files.namelist()  # package data, not only modules
    chapter = BOOK / "01-bigram.md"
    notebook = jupytext.read(chapter)
    nbformat.write(notebook, folder / "01-bigram.ipynb")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    torch_version = torch.__version__.split("+")[0]
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"torch=={torch_version}", "nbclient",
                    "ipykernel"], check=True)
    assert subprocess.run([str(python), "-c", "import buildgpt"], capture_output=True).returncode != 0

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(BUILDGPT_PROFILE="smoke", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    run = subprocess.run([str(venv / "bin" / "jupyter-execute"), "--inplace", "--timeout=600", "01-bigram.ipynb"],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, f"the downloaded chapter failed in a fresh venv:\n{run.stderr[-3000:]}"
    executed = nbformat.read(folder / "01-bigram.ipynb", as_version=4)
    assert any(cell.get("outputs") for cell in executed.cells if cell.cell_type == "code")
    installed = subprocess.run([str(python), "-c", "import buildgpt; print(buildgpt.__file__)"],
                               capture_output=True, text=True, check=True).stdout
    assert str(venv) in installed, f"buildgpt was not installed into the fresh venv: {installed}"
    shutil.rmtree(venv)
