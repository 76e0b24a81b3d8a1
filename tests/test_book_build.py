"""`make book`'s runner (scripts/build_book.py): the chapters executed several at a time, the learner's takeaway
among them, then rendered by Jupyter Book from the stored outputs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import build_book  # noqa: E402
import gpu_book  # noqa: E402

from buildgpt_book import takeaway  # noqa: E402


def last_code_cell(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"][-1]


def test_every_page_has_its_measured_minutes():
    assert set(build_book.MINUTES) == set(gpu_book.toc_chapters())


def test_the_chapters_that_time_the_machine_run_first_then_the_longest():
    first, rest = gpu_book.schedule(gpu_book.toc_chapters(), build_book.ALONE, build_book.MINUTES.get)
    assert first == ["book/distributed", "book/fast"]
    assert [build_book.MINUTES[c] for c in rest] == sorted((build_book.MINUTES[c] for c in rest), reverse=True)


def test_the_takeaway_keeps_an_executed_copy_of_its_own_code_only(tmp_path):
    takeaway.write(tmp_path)
    target = tmp_path / "gpt.ipynb"
    executed = nbformat.read(target, as_version=4)
    assert not last_code_cell(executed).outputs
    last_code_cell(executed).outputs = [nbformat.v4.new_output("stream", text="a sample\n")]
    nbformat.write(executed, target)
    takeaway.write(tmp_path)  # what the book's extension does when it executes nothing
    assert last_code_cell(nbformat.read(target, as_version=4)).outputs[0].text == "a sample\n"
    executed.cells[1].source += "\n# an older version of the code"
    nbformat.write(executed, target)
    takeaway.write(tmp_path)
    rewritten = nbformat.read(target, as_version=4)
    assert not last_code_cell(rewritten).outputs and "an older version" not in rewritten.cells[1].source


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("BUILDGPT_DATA_MIRROR"), reason="BUILDGPT_DATA_MIRROR is not set")
def test_the_book_is_rendered_from_the_chapters_it_ran(tmp_path, monkeypatch):
    """Under smoke: two pages, 2 at a time, and the takeaway; the HTML offers the wheel and the executed gpt.ipynb."""
    monkeypatch.setenv("BUILDGPT_PROFILE", "smoke")
    assert build_book.main(["--chapters", "book/intro", "book/01-bigram", "--jobs", "2", "--build", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "executed" / gpu_book.SUMMARY).read_text())
    assert [c["status"] for c in summary["chapters"]] == ["ok", "ok"] and summary["takeaway"]["status"] == "ok"
    html = tmp_path / "html"
    assert 'The file holds <span class="pasted-text">1,115,394</span>' in (html / "book" / "01-bigram.html").read_text()
    assert list(html.rglob("buildgpt-*.whl")), "the intro's wheel download is missing"
    [gpt] = html.rglob("gpt.ipynb")
    assert last_code_cell(nbformat.read(gpt, as_version=4)).outputs, "the takeaway was published unexecuted"
