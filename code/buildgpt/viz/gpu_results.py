"""The GPU run's results, shown in the CPU book: the lecture-scale numbers a laptop cannot reach.

On the GPU machine, scripts/gpu-book.sh points `BUILDGPT_RESULTS` at a JSON file and chapters
`record` what they measured there (chapter 3: the 10.8M model's losses, its curve, a sample);
the script adds where and when it ran. That file is committed as `results/gpu.json`, and a
chapter built anywhere else shows it in a labelled `box`, every number read from the file.
Until a GPU run exists, the box says so and shows no number at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from buildgpt.settings.profiles import Profile
from buildgpt.train.loop import History
from buildgpt.utils.files import write_text_atomically
from buildgpt.viz import figures

ENV_VAR = "BUILDGPT_RESULTS"


def record(section: str, **values) -> None:
    """Merge `values` (JSON-able) into `section` of the results file, when a GPU run asks for one.

    Everywhere else (`BUILDGPT_RESULTS` unset) it does nothing, so chapters call it unconditionally.
    Example: `record("gpt", best_val=1.47)` turns a missing results file into `{"gpt": {"best_val": 1.47}}`.
    """
    if not (target := os.environ.get(ENV_VAR)):
        return
    path = Path(target)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault(section, {}).update(values)
    write_text_atomically(path, json.dumps(results, indent=1) + "\n")


def load(path: str | Path) -> dict | None:
    """The committed results, or None before there are any. Example: `load("no/such.json")` is None."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def box(results: dict | None, profile: Profile) -> str:
    """Chapter 3's box (MyST Markdown, for `glue:md`): the GPU run's headline, labelled with its origin.

    Example: `box(None, Profile("cpu", "cpu"))` is the admonition "Measured on a GPU: no run yet".
    """
    if profile.name == "gpu":
        body = "This page itself ran on the GPU, under the `gpu` profile: the numbers above are that run's."
        return _admonition("Measured on the GPU: this page", body)
    gpt = (results or {}).get("gpt")
    if not gpt:
        body = ("No GPU run of this book has been recorded yet, so there is no number to show here. "
                "When `scripts/gpu-book.sh` runs on a GPU machine, it writes `results/gpu.json`, and this box "
                "shows the lecture model's validation loss, its loss curve and a sample from that run.")
        return _admonition("Measured on a GPU: no run yet", body)
    stamp = results["run"]
    title = f"Measured on one {stamp['gpu']} by `scripts/gpu-book.sh` at commit {stamp['commit']}"
    shared = f", with up to {stamp['jobs'] - 1} other chapters sharing the GPU," if stamp.get("jobs", 1) > 1 else ""
    body = (f"The lecture's model ({gpt['params']:,} parameters) trained for {gpt['steps'][-1]:,} steps in "
            f"{gpt['minutes']:.1f} minutes{shared} on {stamp['date'][:10]}. Its best validation loss was "
            f"**{gpt['best_val']:.3f}**, and over the whole validation split **{gpt['full_val']:.3f}**; "
            f"the curve is below the box. Its sample:\n\n```text\n{gpt['sample']}\n```")
    return _admonition(title, body)


def curve(results: dict | None, profile: Profile):
    """The GPU run's loss curve (a Plotly figure); None before there is a run, or on the GPU itself.

    Example: `curve(None, Profile("cpu", "cpu"))` is None.
    """
    gpt = (results or {}).get("gpt")
    if not gpt or profile.name == "gpu":
        return None
    history = History(steps=gpt["steps"], train=gpt["train"], val=gpt["val"])
    return figures.loss_curves(history, title=f"Measured on one {results['run']['gpu']}: the lecture's model")


def _admonition(title: str, body: str) -> str:
    return f":::{{admonition}} {title}\n:class: note\n\n{body}\n:::\n"
