"""The learner's takeaway, gpt.py and gpt.ipynb (buildgpt_book/takeaway.py): short, torch only,
runs on its own, and its model is the package's model: the same logits for the same weights."""

from __future__ import annotations

import ast
import io
import os
import runpy
import subprocess
import sys
import time
import tokenize
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
import torch

from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.settings.chapters import settings_for
from buildgpt_book import takeaway


@pytest.fixture(scope="module")
def gpt_py(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("takeaway")
    takeaway.write(folder)
    return folder / "gpt.py"


def lines_of_code(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not a docstring (as cloc counts Python)."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    code = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            code.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(code)


def test_it_is_short_and_imports_only_torch(gpt_py):
    source = gpt_py.read_text()
    assert lines_of_code(source) <= 265  # 250 before the download got its checksum and offline message
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported - sys.stdlib_module_names - {"__future__"} == {"torch"}


@pytest.mark.skipif(not os.environ.get("BUILDGPT_DATA_MIRROR"), reason="BUILDGPT_DATA_MIRROR is not set")
@pytest.mark.slow  # trains and samples, as the notebook does
def test_it_runs_alone_under_smoke_to_a_sample(gpt_py):
    # -I: no PYTHONPATH, no user site; and buildgpt made unimportable, as on a machine without it.
    code = "import runpy, sys; sys.modules['buildgpt'] = None; runpy.run_path('gpt.py', run_name='__main__')"
    env = {**os.environ, "BUILDGPT_PROFILE": "smoke"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=gpt_py.parent, env=env,
                            capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert seconds < 30, f"gpt.py took {seconds:.0f} s under smoke"
    steps = settings_for("gpt", "smoke").train.max_iters
    before, _, sample = result.stdout.partition(f"step {steps}: ")
    assert "profile smoke on" in before and "val loss" in sample
    assert len(sample.split("\n", 1)[1].strip()) > 100  # the 500 sampled characters, after the last step's line


@pytest.mark.skipif(not os.environ.get("BUILDGPT_DATA_MIRROR"), reason="BUILDGPT_DATA_MIRROR is not set")
def test_the_notebook_is_the_script_with_its_sample_at_the_bottom(gpt_py, tmp_path, monkeypatch):
    monkeypatch.setenv("BUILDGPT_PROFILE", "smoke")
    takeaway.write(tmp_path, execute=True, timeout=120)
    book = nbformat.read(tmp_path / "gpt.ipynb", as_version=4)
    nbformat.validate(book)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    script = gpt_py.read_text().split('"""\n\n', 1)[1]  # after the docstring, which is the title cell
    kept = [line for line in script.splitlines() if not line.startswith(("# ---- ", "if __name__"))]  # headings
    assert "\n".join(cell.source for cell in code).split() == "\n".join(kept).split()
    last = "".join(output.get("text", "") for output in code[-1].outputs)
    assert "profile smoke on" in last and len(last.rsplit("val loss", 1)[1]) > 100


@pytest.mark.parametrize("profile", ["smoke", "gpu"])
def test_its_model_gives_the_package_models_logits(gpt_py, profile):
    ours_module = runpy.run_path(str(gpt_py))  # not as __main__: defines, does not train
    # gpt.py's attention is the lecture's per-head one; the package's default is the fused path.
    config = replace(settings_for("gpt", profile).model, attention="per_head")
    torch.manual_seed(0)
    package = GPT(config).eval()
    ours = ours_module["GPT"](ours_module["GPTConfig"](**{name: getattr(config, name) for name in takeaway.MODEL_FIELDS}))
    ours.load_state_dict(package.state_dict(), strict=True)
    ours.eval()
    idx = torch.randint(config.vocab_size, (2, config.block_size))
    targets = torch.randint(config.vocab_size, (2, config.block_size))
    with torch.no_grad():
        (theirs_logits, theirs_loss), (our_logits, our_loss) = package(idx, targets), ours(idx, targets)
    torch.testing.assert_close(our_logits, theirs_logits, rtol=0, atol=0)
    torch.testing.assert_close(our_loss, theirs_loss, rtol=0, atol=0)
    assert ours_module["GPTConfig"]() == ours_module["GPTConfig"](**{n: getattr(GPTConfig(), n) for n in takeaway.MODEL_FIELDS})


def test_its_download_is_checked_and_says_what_to_do_offline(gpt_py, tmp_path, monkeypatch):
    ours = runpy.run_path(str(gpt_py))  # defines, does not train
    monkeypatch.delenv("BUILDGPT_DATA_MIRROR", raising=False)
    monkeypatch.chdir(tmp_path)

    def offline(url, filename):
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(SystemExit, match="could not download .*save it by hand as"):
        ours["load_text"]()

    def wrong_file(url, filename):
        Path(filename).write_text("not tinyshakespeare")

    monkeypatch.setattr(urllib.request, "urlretrieve", wrong_file)
    with pytest.raises(SystemExit, match="is not the expected file"):
        ours["load_text"]()
    assert not (tmp_path / "input.txt").exists()  # a bad download never becomes the data


def test_its_profile_is_read_as_the_package_reads_it(gpt_py, monkeypatch):
    ours = runpy.run_path(str(gpt_py))  # defines, does not train
    monkeypatch.setenv("BUILDGPT_PROFILE", "fast")
    with pytest.raises(SystemExit, match="BUILDGPT_PROFILE is 'fast': use one of smoke, cpu, gpu"):
        ours["main"]()
