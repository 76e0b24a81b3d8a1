"""The GPU run's results box: recorded only when a GPU run asks, shown with its origin, and
without a single number before a run exists."""

from __future__ import annotations

import json
import re

from buildgpt.settings.profiles import Profile
from buildgpt.viz import gpu_results

CPU = Profile(name="cpu", device="cpu")
RUN = {"gpu": "NVIDIA H100 80GB HBM3", "commit": "0123abcd4567", "date": "2026-11-26T11:00:00+00:00", "profile": "gpu"}
GPT = {"params": 10788929, "steps": [0, 250, 5000], "train": [4.3, 2.1, 1.2], "val": [4.3, 2.2, 1.47],
       "best_val": 1.4697, "full_val": 1.4712, "minutes": 3.25, "sample": "ROMEO:\nSoft!"}


def test_record_does_nothing_unless_a_gpu_run_asks(tmp_path, monkeypatch):
    monkeypatch.delenv(gpu_results.ENV_VAR, raising=False)
    gpu_results.record("gpt", best_val=1.5)
    target = tmp_path / "gpu.json"
    target.write_text(json.dumps({"run": RUN}))
    monkeypatch.setenv(gpu_results.ENV_VAR, str(target))
    gpu_results.record("gpt", best_val=1.5)
    gpu_results.record("gpt", full_val=1.6)
    assert json.loads(target.read_text()) == {"run": RUN, "gpt": {"best_val": 1.5, "full_val": 1.6}}


def test_before_a_gpu_run_the_box_says_so_and_shows_no_number(tmp_path):
    results = gpu_results.load(tmp_path / "missing.json")
    assert results is None
    text = gpu_results.box(results, CPU)
    assert text.startswith(":::{admonition} Measured on a GPU: no run yet") and "scripts/gpu-book.sh" in text
    assert not re.search(r"\d", text)
    assert gpu_results.curve(results, CPU) is None


def test_the_box_shows_the_run_with_its_origin(tmp_path):
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"run": RUN, "gpt": GPT}))
    results = gpu_results.load(path)
    text = gpu_results.box(results, CPU)
    assert "Measured on one NVIDIA H100 80GB HBM3 by `scripts/gpu-book.sh` at commit 0123abcd4567" in text
    for shown in ("10,788,929 parameters", "5,000 steps", "3.2 minutes", "**1.470**", "**1.471**", "ROMEO:\nSoft!"):
        assert shown in text
    assert "sharing the GPU" not in text  # a run of one chapter at a time
    figure = gpu_results.curve(results, CPU)
    assert [list(trace.y) for trace in figure.data] == [GPT["train"], GPT["val"]]


def test_the_box_says_when_other_chapters_shared_the_gpu():
    text = gpu_results.box({"run": {**RUN, "jobs": 4}, "gpt": GPT}, CPU)
    assert "3.2 minutes, with up to 3 other chapters sharing the GPU, on 2026-11-26" in text


def test_on_the_gpu_the_page_is_its_own_result():
    gpu = Profile(name="gpu", device="cuda")
    results = {"run": RUN, "gpt": GPT}
    assert "This page itself ran on the GPU" in gpu_results.box(results, gpu)
    assert gpu_results.curve(results, gpu) is None
