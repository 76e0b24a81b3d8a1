"""Every chapter runs as a notebook (the reader's "run a chapter" path), under the smoke profile.

Each MyST chapter is converted with jupytext and executed with nbclient in a fresh kernel whose
working directory is book/, as Jupyter Book runs it. The chapter's own asserts are its checks.
A last test proves that a chapter cell that raises fails the book build and names the chapter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from buildgpt_book import notebook_chapters

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = notebook_chapters(BOOK)


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_runs_as_notebook(chapter, monkeypatch):
    monkeypatch.setenv("BUILDGPT_PROFILE", "smoke")
    notebook = jupytext.read(chapter)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(BOOK)}}).execute()
    nbformat.validate(notebook)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert code_cells, f"{chapter.name} has no code cells"
    assert any(c.outputs for c in code_cells), f"{chapter.name} produced no output"


def test_a_failing_cell_fails_the_build(tmp_path):
    """With raise_on_error the build exits non-zero and its log names the failing chapter."""
    shutil.copy(ROOT / "_config.yml", tmp_path)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: broken-chapter\n")
    header = (CHAPTERS[0].read_text().split("---", 2)[1])
    (tmp_path / "broken-chapter.md").write_text(
        f"---{header}---\n# Broken\n\n```{{code-cell}} ipython3\nraise RuntimeError('this cell fails')\n```\n")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jupyter_book), "build", str(tmp_path)], capture_output=True, text=True,
                            timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode != 0, "a failing cell gave a green build"
    assert "broken-chapter.md" in log and "this cell fails" in log
