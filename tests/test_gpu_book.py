"""The prepared gpu book (scripts/gpu-book.sh, scripts/gpu_book.py, scripts/gpu_html.py), run here
on the CPU: the same path under `smoke` with one real chapter and one that fails, its refusals
(no CUDA, a missing or wrong wheel, a foreign or stale archive), and the HTML rebuilt from the
archive without executing anything, glue included.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-book.sh"
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_book  # noqa: E402
import gpu_html  # noqa: E402

needs_data = pytest.mark.skipif(not os.environ.get("BUILDGPT_DATA_MIRROR"), reason="BUILDGPT_DATA_MIRROR is not set")
BROKEN = """---
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
# Broken

```{code-cell} ipython3
import os
print("threads", os.environ.get("OMP_NUM_THREADS"))
```

```{code-cell} ipython3
raise RuntimeError("this cell fails")
```
"""


def gpu_book_sh(out: Path, **env) -> subprocess.CompletedProcess:
    """scripts/gpu-book.sh OUT with this test's Python, its packages already installed."""
    env = {**os.environ, "PYTHON": sys.executable, "GPU_BOOK_INSTALL": "0", **env}
    return subprocess.run(["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=300)


def make_archive(path: Path, manifest: dict, notebooks: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in {"manifest.json": json.dumps(manifest), **notebooks}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The whole command under smoke: chapters 1 and 3, then a chapter whose second cell raises, 2 at a time."""
    if not os.environ.get("BUILDGPT_DATA_MIRROR"):
        pytest.skip("BUILDGPT_DATA_MIRROR is not set")
    tmp = tmp_path_factory.mktemp("gpu-book")
    (tmp / "broken.md").write_text(BROKEN)
    out = tmp / "out"
    chapters = f"book/01-bigram book/03-gpt {tmp / 'broken'}"
    result = gpu_book_sh(out, GPU_BOOK_PROFILE="smoke", GPU_BOOK_CHAPTERS=chapters, GPU_BOOK_JOBS="2")
    return result, out, tmp / "broken"


def test_check_wheels_names_missing_and_mismatched(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("good-1.0-py3-none-any.whl", "old-1.9-py3-none-any.whl", "alien-2.0-cp27-cp27m-win32.whl"):
        (wheels / name).touch()
    requirements = tmp_path / "req.txt"
    requirements.write_text("# pins\ngood==1.0\nold==2.0  # newer\nalien==2.0\nabsent==3.1\n")
    problems = gpu_book.check_wheels(wheels, requirements)
    assert len(problems) == 3
    old, alien, absent = problems
    assert old.startswith("old==2.0: wrong wheel") and "old-1.9-py3-none-any.whl" in old
    assert alien.startswith("alien==2.0: wrong wheel") and "another Python or platform" in alien
    assert absent == f"absent==3.1: no wheel in {wheels}"


def test_a_missing_wheel_stops_the_command_before_any_chapter(tmp_path):
    (tmp_path / "bundle" / "wheels").mkdir(parents=True)
    result = gpu_book_sh(tmp_path / "out", GPU_BOOK_PROFILE="smoke", GPU_BOOK_INSTALL="1",
                         GPU_BUNDLE=str(tmp_path / "bundle"))
    assert result.returncode == 2
    assert "plotly==" in result.stdout and "no wheel in" in result.stdout  # the log is stdout and stderr
    assert not (tmp_path / "out" / gpu_book.SUMMARY).exists()
    assert "no wheel in" in (tmp_path / "out" / "gpu-book.log").read_text()


def test_chapters_after_the_runs_time_are_recorded_without_starting(tmp_path):
    assert gpu_book.run(tmp_path, "smoke", ["book/01-bigram", "book/02-attention"], minutes=0) == 1
    summary = json.loads((tmp_path / gpu_book.SUMMARY).read_text())
    assert [(c["chapter"], c["status"], c["error"]) for c in summary["chapters"]] == [
        (chapter, "failed", "not started: the run's time was up") for chapter in ("book/01-bigram", "book/02-attention")]


def test_a_module_that_does_not_import_stops_the_run_before_any_chapter(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_book, "NEEDED", ("nbclient", "no_such_module_here"))
    assert gpu_book.run(tmp_path, "smoke", ["book/01-bigram"], minutes=1) == 2
    assert "no_such_module_here (No module named 'no_such_module_here')" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_the_gpu_command_stops_at_once(tmp_path):
    result = gpu_book_sh(tmp_path / "out")
    assert result.returncode == 3
    assert "torch.cuda.is_available() is false" in result.stdout and "GPU_BOOK_PROFILE=smoke" in result.stdout
    assert not (tmp_path / "out" / gpu_book.SUMMARY).exists()


@pytest.mark.slow  # runs chapters
def test_dry_run_records_each_chapter(dry_run):
    result, out, broken = dry_run
    assert result.returncode == 1, result.stdout + result.stderr  # one chapter failed, the other ran
    summary = json.loads((out / gpu_book.SUMMARY).read_text())
    assert summary["profile"] == "smoke" and summary["fingerprint"]
    bigram, gpt, failed = summary["chapters"]
    assert gpt["status"] == "ok" and gpt["numbers"]["best_val"] > 0
    assert gpt["planned_minutes"] == gpu_book.planned_minutes("book/03-gpt") > 0  # the gpu plan, to compare with
    assert failed["planned_minutes"] is None  # a page that names no settings
    assert bigram["chapter"] == "book/01-bigram" and bigram["status"] == "ok" and bigram["minutes"] > 0
    assert bigram["numbers"]["n_chars"] == 1115394 and 2 < bigram["numbers"]["bigram_val"] < 5
    assert failed == {**failed, "chapter": str(broken), "status": "failed", "cell": 2,
                      "cell_first_line": 'raise RuntimeError("this cell fails")',
                      "error": "RuntimeError: this cell fails"}
    assert summary["jobs"] == 2 and summary["minutes"] > 0
    assert all(0 <= c["started"] and c["started"] + c["minutes"] <= summary["minutes"] + 0.01 for c in summary["chapters"])
    log = (out / "gpu-book.log").read_text()
    assert "book/01-bigram: ok in" in log and "(planned " in log and "failed in" in log and "at cell 2: RuntimeError" in log
    assert "Traceback" in log and "this cell fails" in failed["traceback"]  # the whole error, not its last line


@pytest.mark.slow  # runs chapters
def test_chapters_run_together_share_the_cores(dry_run):
    _, out, broken = dry_run
    _, notebooks = gpu_html.read_archive(out / gpu_book.ARCHIVE)
    first = nbformat.reads(notebooks[str(broken)].decode(), as_version=4).cells[1]
    assert first.outputs[0]["text"] == f"threads {max(1, (os.cpu_count() or 1) // 2)}\n"


def test_the_chapters_that_time_the_gpu_run_first_and_the_rest_longest_first():
    chapters = gpu_book.toc_chapters()
    alone, together = gpu_book.schedule(chapters)
    assert alone == ["book/fast"] and sorted(alone + together) == sorted(chapters)
    planned = [gpu_book.planned_minutes(c) or 0.0 for c in together]
    assert planned == sorted(planned, reverse=True) and planned[-1] == 0.0  # the intro and nanoGPT pages: no settings


@pytest.mark.slow  # runs chapters
def test_dry_run_archive_holds_the_executed_notebooks(dry_run):
    _, out, broken = dry_run
    archive = out / gpu_book.ARCHIVE
    assert archive.stat().st_size < gpu_book.ARCHIVE_LIMIT_MB * 1e6
    manifest, notebooks = gpu_html.read_archive(archive)
    assert manifest["chapters"] == {"book/01-bigram": "ok", "book/03-gpt": "ok", str(broken): "failed"}
    bigram = nbformat.reads(notebooks["book/01-bigram"].decode(), as_version=4)
    nbformat.validate(bigram)
    assert bigram.metadata["buildgpt"]["profile"] == "smoke"
    assert all(cell.outputs for cell in bigram.cells if cell.cell_type == "code" and "glue(" in cell.source)


@pytest.mark.slow  # runs chapters
def test_dry_run_results_hold_chapter_3s_run_and_its_origin(dry_run):
    """What the CPU book's results box reads: chapter 3's numbers, curve and sample, and where it ran."""
    _, out, _ = dry_run
    results = json.loads((out / gpu_book.RESULTS).read_text())
    assert results["run"]["gpu"] == "CPU (a dry run)" and results["run"]["profile"] == "smoke"
    gpt = results["gpt"]
    assert len(gpt["steps"]) == len(gpt["train"]) == len(gpt["val"]) > 1 and gpt["sample"]
    manifest, _ = gpu_html.read_archive(out / gpu_book.ARCHIVE)
    assert manifest["results"] == results


def test_gpu_html_refuses_foreign_stale_and_failed_archives(tmp_path):
    fingerprint = gpu_book.source_fingerprint(gpu_book.toc_chapters())
    good = {"profile": "gpu", "commit": "abc123", "fingerprint": fingerprint,
            "chapters": dict.fromkeys(gpu_book.toc_chapters(), "ok")}
    cases = {
        "foreign": ({**good, "profile": "smoke"}, "under profile 'smoke' at commit abc123"),
        "stale": ({**good, "fingerprint": "0" * 16}, "stale"),
        "failed": ({**good, "chapters": {**good["chapters"], "book/03-gpt": "failed"}}, "failed there: book/03-gpt"),
        "short": ({**good, "chapters": {"book/intro": "ok"}}, "lacks chapters of this _toc.yml"),
        "takeaway": ({**good, "takeaway": "failed"}, "failed there: _build/gpt/gpt.ipynb"),
    }
    for name, (manifest, expected) in cases.items():
        archive = make_archive(tmp_path / f"{name}.tar.gz", manifest, {})
        with pytest.raises(gpu_html.RefusedArchive, match=expected) as refused:
            gpu_html.check(archive, manifest, "gpu", partial=False)
        assert str(archive) in str(refused.value) and "abc123" in str(refused.value)
    assert gpu_html.main([str(tmp_path / "stale.tar.gz")]) == 2
    (tmp_path / "junk.tar.gz").write_text("not an archive")
    with pytest.raises(gpu_html.RefusedArchive, match="not an archive of scripts/gpu-book.sh"):
        gpu_html.read_archive(tmp_path / "junk.tar.gz")


def test_a_glued_value_that_did_not_render_is_found_in_the_warnings():
    log = ("building [html]: targets for 17 source files\n"
           "/s/book/ex3.md:190: WARNING: Failed to format text/plain data: could not convert string to float: "
           "'np.float64(1.5)' [mystnb.glue]\n"
           "/s/book/03-gpt.md:12: WARNING: undefined label: 'x' [ref.ref]\n")
    assert gpu_html.unpasted_glue(log) == [log.splitlines()[1]]
    assert gpu_html.unpasted_glue("build succeeded.\n") == []


def test_only_a_gpu_runs_results_become_results_gpu_json(tmp_path):
    results = {"run": {"gpu": "NVIDIA H100 80GB HBM3", "commit": "abc123"}, "gpt": {"best_val": 1.47}}
    target = tmp_path / "results" / "gpu.json"
    assert gpu_html.write_results({"profile": "smoke", "results": results}, target) is None
    assert not target.exists()
    assert gpu_html.write_results({"profile": "gpu", "results": results}, target) == target
    assert json.loads(target.read_text()) == results
    # a run of some chapters only, or one that measured nothing but its stamp, keeps the last whole run's file
    assert gpu_html.write_results({"profile": "gpu", "results": results}, target, partial=True) is None
    assert gpu_html.write_results({"profile": "gpu", "results": {"run": results["run"]}}, target) is None
    assert json.loads(target.read_text()) == results


@needs_data
@pytest.mark.slow  # runs chapters
def test_gpu_html_renders_the_archive_glue_included(dry_run, tmp_path):
    """The HTML comes from the stored outputs (no kernel runs), with the glued numbers in the prose."""
    _, out, _ = dry_run
    _, notebooks = gpu_html.read_archive(out / gpu_book.ARCHIVE)
    chapters = ["book/01-bigram"]
    manifest = {"profile": "smoke", "commit": "test", "device": "cpu",
                "fingerprint": gpu_book.source_fingerprint(chapters), "chapters": {"book/01-bigram": "ok"}}
    archive = make_archive(tmp_path / "bigram.tar.gz", manifest,
                           {"book/01-bigram.ipynb": notebooks["book/01-bigram"].decode()})
    stage = tmp_path / "stage"
    assert gpu_html.main([str(archive), "--profile", "smoke", "--partial", "--stage", str(stage)]) == 0
    html = (stage / "_build" / "html" / "book" / "01-bigram.html").read_text()
    assert 'The file holds <span class="pasted-text">1,115,394</span> characters' in html  # as the CPU book has it
    assert (stage / "_build" / "html" / "_sources" / "book" / "01-bigram.ipynb").is_file()
    assert list((stage / "_build" / "wheel").glob("buildgpt-*.whl")), "no wheel for the intro to offer"


def test_glue_needs_no_sphinx():
    """The GPU machine gets myst-nb without its Sphinx stack: glue() must not import it."""
    code = ("import sys\n"
            "for name in ('sphinx', 'myst_parser', 'jupyter_cache', 'markdown_it', 'yaml'): sys.modules[name] = None\n"
            "from myst_nb import glue\n"
            "glue('x', 1.5, display=False)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_cells_lists_each_chapters_slow_cells_slowest_first(tmp_path, capsys):
    def cell(source: str, start: str, end: str):
        code = nbformat.v4.new_code_cell(source)
        code.metadata["execution"] = {"iopub.execute_input": start, "shell.execute_reply": end}
        return code

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("prose has no timing"),
        cell("\nquick = 1", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.500Z"),
        cell("train(model)", "2026-01-01T00:00:01Z", "2026-01-01T00:01:31Z"),
        cell("evaluate(model)", "2026-01-01T00:01:31Z", "2026-01-01T00:01:43Z"),
        nbformat.v4.new_code_cell("never_ran()")])
    archive = make_archive(tmp_path / "a.tar.gz", {}, {"book/x.ipynb": nbformat.writes(notebook)})
    assert gpu_book.cell_seconds(notebook) == [(0.5, "quick = 1"), (90.0, "train(model)"), (12.0, "evaluate(model)")]
    assert gpu_book.main(["cells", str(archive), "--at-least", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "book/x.ipynb: 1.71 min in 3 cells"
    assert [line.split("s  ", 1)[1] for line in lines[1:]] == ["train(model)", "evaluate(model)"]
