"""Execute every chapter of the book as a notebook and pack what came out: the GPU half of the
`gpu` book (DESIGN.md, "Running the gpu profile on a GPU machine").

scripts/gpu-book.sh calls it on the GPU machine once the wheels are installed; the tests call it
on the CPU under `smoke`. scripts/gpu_html.py turns its archive into the HTML book here.

    python scripts/gpu_book.py check-wheels WHEELS REQUIREMENTS
    python scripts/gpu_book.py run OUTDIR [--profile gpu] [--chapters book/01-bigram ...] [--minutes 9] [--jobs 4]
    python scripts/gpu_book.py cells ARCHIVE [--at-least 2]   # the slowest cells of each chapter it holds

Chapters that time the GPU itself run first, alone; the rest run `--jobs` at a time, longest planned
first, each kernel with its share of the cores (buildgpt.settings.gpu_plan explains why and plans it).

`run` writes into OUTDIR, after every chapter so that a run cut short still leaves its files:
  gpu-book.tar.gz  manifest.json and book/<chapter>.ipynb, each executed notebook with its outputs
  gpu-book.json    the stamp (profile, commit, device, jobs), and per chapter: status, when it started
                   and its minutes (and the minutes buildgpt.settings.gpu_plan planned), the failing
                   cell, the glued scalars (its headline numbers)
  gpu.json         what chapters recorded for the CPU book's results box (also in the archive)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
ARCHIVE = "gpu-book.tar.gz"
SUMMARY = "gpu-book.json"
RESULTS = "gpu.json"  # committed as results/gpu.json once `make gpu-html` accepts the archive
TAKEAWAY = "_build/gpt/gpt"  # the executed takeaway's place in the archive and in the book (.ipynb)
ARCHIVE_LIMIT_MB = 16
# What the chapters and their runner import: the machine's own (torch ... regex), then the wheels'.
NEEDED = ("torch", "numpy", "tqdm", "safetensors", "tiktoken", "regex", "buildgpt", "ipykernel", "jupytext",
          "nbclient", "nbformat", "plotly", "myst_nb.ext.glue", "sentencepiece")
GLUE_PREFIX = "application/papermill.record/"  # how myst-nb's glue(..., display=False) stores a value
# A glued scalar as its text/plain form shows it: 1.47, 10_788_929, np.float64(1.47), tensor(1.4700)
NUMBER = re.compile(r"^(?:[\w.]+\()?\s*(-?[\d_]*\.?\d+(?:[eE][-+]?\d+)?)\s*\)?$")


# ----------------------------------------------------------------------- what was run


def toc_chapters() -> list[str]:
    """The book's pages in `_toc.yml` order (`book/intro`, `book/01-bigram`, ...)."""
    text = (ROOT / "_toc.yml").read_text()
    return re.findall(r"^root:\s*(\S+)", text, re.M) + re.findall(r"^\s*-\s*file:\s*(\S+)", text, re.M)


def source_fingerprint(chapters: list[str]) -> str:
    """A hash of everything that decides the chapters' outputs: the toc, the chapters, the package.

    It works without git (the GPU machine may get the files alone), and two trees that differ in
    any of those files differ here, committed or not.
    """
    package = sorted((ROOT / "code" / "buildgpt").rglob("*.py"))
    files = {"_toc.yml": ROOT / "_toc.yml", **{c: chapter_source(c) for c in chapters},
             **{p.relative_to(ROOT).as_posix(): p for p in package}}
    digest = hashlib.sha256()
    for label, path in files.items():
        digest.update(label.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def chapter_source(chapter: str) -> Path:
    """`book/01-bigram` -> its MyST file (a path outside the repository is taken as it is: the tests)."""
    return ROOT / f"{chapter}.md"


SETTINGS_CALL = re.compile(r'settings\("(\w+)"\)')


def settings_name(chapter: str) -> str | None:
    """The settings a page names first, e.g. "gpt" for `settings("gpt")` (None for a page without: the intro)."""
    named = SETTINGS_CALL.search(chapter_source(chapter).read_text())
    return named[1] if named else None


def planned_minutes(chapter: str) -> float | None:
    """The H100 minutes `gpu_plan` plans for a page's settings (None for a page without settings)."""
    from buildgpt.settings import gpu_plan
    from buildgpt.settings.chapters import settings_for

    name = settings_name(chapter)
    return round(gpu_plan.chapter_minutes(name, settings_for(name, "gpu")), 2) if name else None


def schedule(chapters: list[str], alone: tuple[str, ...] | None = None, plan=planned_minutes
             ) -> tuple[list[str], list[str]]:
    """The pages to run first, alone (those whose settings are in `alone`, default `gpu_plan.ALONE`), and the
    rest, longest first as `plan(chapter)` counts its minutes (default: the gpu plan's)."""
    from buildgpt.settings import gpu_plan

    alone = gpu_plan.ALONE if alone is None else alone
    first = [c for c in chapters if settings_name(c) in alone]
    rest = [c for c in chapters if c not in first]
    return first, sorted(rest, key=lambda c: plan(c) or 0.0, reverse=True)


def git_commit() -> str:
    """The checked-out commit, with `+changes` when the book or the package differ from it.

    Without git (a machine handed the files alone) it is whatever GPU_BOOK_COMMIT says.
    """
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--", "book", "code", "_toc.yml")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("GPU_BOOK_COMMIT", "unknown (no git here; set GPU_BOOK_COMMIT)")
    return commit + ("+changes" if dirty else "")


# ------------------------------------------------------------------------ the wheels


def check_wheels(folder: Path, requirements: Path) -> list[str]:
    """Each pinned package with no installable wheel of exactly its version in `folder`, explained."""
    try:
        from packaging.tags import sys_tags
        from packaging.utils import canonicalize_name, parse_wheel_filename
    except ImportError:  # pip always carries a copy
        from pip._vendor.packaging.tags import sys_tags
        from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
    pins = {}
    for line in requirements.read_text().splitlines():
        if line := line.split("#")[0].strip():
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    supported, fits, other = set(sys_tags()), {}, {}
    for wheel in sorted(folder.glob("*.whl")):
        name, version, _, tags = parse_wheel_filename(wheel.name)
        (fits if tags & supported else other).setdefault(name, []).append(f"{version} ({wheel.name})")
    problems = []
    for name, version in pins.items():
        if any(found.startswith(f"{version} ") for found in fits.get(name, [])):
            continue
        if found := fits.get(name, []) + other.get(name, []):
            problems.append(f"{name}=={version}: wrong wheel, {folder} holds {', '.join(found)}"
                            f"{'' if fits.get(name) else ' (for another Python or platform)'}")
        else:
            problems.append(f"{name}=={version}: no wheel in {folder}")
    return problems


def missing_modules() -> list[str]:
    """The modules of NEEDED that do not import here, each with its error."""
    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except ImportError as error:
            missing.append(f"{name} ({error})")
    return missing


# -------------------------------------------------------------------- one chapter run


def glued_numbers(notebook) -> dict[str, float | int]:
    """The notebook's glued scalars by name: the numbers its prose quotes."""
    numbers = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook")
            if record is None:
                continue
            text = output.get("data", {}).get(record.get("mime_prefix", "") + "text/plain", "")
            if match := NUMBER.match(str(text).strip()):
                value = float(match.group(1).replace("_", ""))
                numbers[record["name"]] = int(value) if value.is_integer() and "." not in match.group(1) else value
    return numbers


def execute(chapter: str, cell_timeout: int, deadline: float, env: dict[str, str] | None = None):
    """Run one chapter in a fresh kernel (working directory book/, as Jupyter Book runs it), with `env`
    (default: this process's environment).

    Returns the notebook, executed as far as it went, and its entry for the summary.
    """
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = jupytext.read(chapter_source(chapter))
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(BOOK)}})
    at = {"cell": None}

    def before_cell(cell, cell_index, **_):
        at["cell"] = cell_index  # first: a failure below is this cell's, not the one before
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the run's time was up before this cell")
        client.timeout = max(1, min(cell_timeout, int(left)))  # no cell may outlast the run

    client.on_cell_execute = before_cell
    start = time.monotonic()
    entry = {"chapter": chapter, "status": "ok", "began": start}
    if start >= deadline:  # no kernel started for nothing: each costs seconds
        return notebook, {**entry, "status": "failed", "error": "not started: the run's time was up",
                          "minutes": 0.0, "numbers": {}}
    try:
        client.execute(env=env or dict(os.environ))
    except CellExecutionError as error:
        entry.update(status="failed", error=f"{error.ename}: {error.evalue}", traceback=str(error))
    except Exception as error:  # a cell timeout, a dead kernel, the run's deadline
        entry.update(status="failed", error=f"{type(error).__name__}: {error}".strip())
    entry["minutes"] = round((time.monotonic() - start) / 60, 3)
    if entry["status"] == "failed" and at["cell"] is not None:
        source = notebook.cells[at["cell"]].source.strip().splitlines()
        entry.update(cell=at["cell"], cell_first_line=source[0] if source else "")
    entry["numbers"] = glued_numbers(notebook)
    return notebook, entry


def execute_takeaway(cell_timeout: int, deadline: float, env: dict[str, str]):
    """Assemble and run the learner's takeaway (buildgpt_book.takeaway) in a fresh kernel, as a book build
    that executes its chapters does. Returns the notebook (None if it failed) and its entry for the summary."""
    import nbformat

    from buildgpt_book import takeaway

    start = time.monotonic()
    entry = {"status": "ok"}
    with tempfile.TemporaryDirectory() as folder:  # its working directory, as `_build/gpt/` is in the book
        try:
            takeaway.write(Path(folder), execute=True, env=env,
                           timeout=max(1, min(cell_timeout, int(deadline - start))))
            notebook = nbformat.read(Path(folder) / "gpt.ipynb", as_version=4)
        except Exception as error:  # a failing cell, a timeout, a dead kernel
            entry.update(status="failed", error=f"{type(error).__name__}: {error}".strip())
            notebook = None
    entry["minutes"] = round((time.monotonic() - start) / 60, 3)
    return notebook, entry


# ------------------------------------------------------------------------- the files


def cell_seconds(notebook) -> list[tuple[float, str]]:
    """(seconds, first line) of each code cell that recorded its timing (nbclient does), in order."""
    timed = []
    for cell in notebook.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type == "code" and "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start, end = (datetime.fromisoformat(timing[key].replace("Z", "+00:00"))
                          for key in ("iopub.execute_input", "shell.execute_reply"))
            first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
            timed.append(((end - start).total_seconds(), first_line))
    return timed


def slowest_cells(archive: Path, at_least: float = 2.0) -> str:
    """Per chapter in `archive`, its cells that took `at_least` seconds, slowest first: where a page's time goes."""
    import nbformat

    report = []
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getnames()):
            if member.endswith(".ipynb"):
                notebook = nbformat.reads(tar.extractfile(member).read().decode(), as_version=4)
                timed = cell_seconds(notebook)
                slow = sorted((t for t in timed if t[0] >= at_least), reverse=True)
                report.append(f"{member}: {sum(t for t, _ in timed) / 60:.2f} min in {len(timed)} cells")
                report += [f"  {seconds:7.1f} s  {line[:100]}" for seconds, line in slow]
    return "\n".join(report)


def write_archive(path: Path, manifest: dict, notebooks: dict, results: Path) -> float:
    """Write the archive atomically and return its size in MB: `notebooks` by their name without .ipynb
    (`book/01-bigram`, and `TAKEAWAY` when it was run)."""
    import nbformat

    partial = path.with_name(path.name + ".part")
    with tarfile.open(partial, "w:gz") as tar:
        members = {"manifest.json": json.dumps(manifest, indent=1), "results.json": results.read_text()}
        members |= {f"{chapter}.ipynb": nbformat.writes(nb) for chapter, nb in notebooks.items()}
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    partial.replace(path)
    return path.stat().st_size / 1e6


def write_json(path: Path, data: dict) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(path)


def run(out: Path, profile: str, chapters: list[str], minutes: float, jobs: int | None = None, *,
        alone: tuple[str, ...] | None = None, plan=planned_minutes, record: bool = True,
        takeaway: bool = False) -> int:
    """Execute `chapters` into OUT: those whose settings are in `alone` first, one by one, then the rest `jobs`
    at a time, longest first as `plan(chapter)` counts its minutes (see `schedule`); with `record`, chapters record their results for the CPU book's box (RESULTS); with `takeaway`,
    the learner's takeaway notebook runs beside the chapters and goes into the archive (`TAKEAWAY`). The chapters
    run together get their share of the cores' threads each."""
    if missing := missing_modules():
        print("error: before any chapter, these do not import: " + "; ".join(missing), file=sys.stderr)
        return 2
    from buildgpt.settings.gpu_plan import JOBS

    jobs = jobs or JOBS
    os.environ["BUILDGPT_PROFILE"] = profile  # every kernel inherits it
    import torch

    from buildgpt.settings.profiles import CELL_TIMEOUT, current
    from buildgpt.viz import gpu_results

    active = current()  # refuses `gpu` without CUDA, before any chapter runs
    start = time.monotonic()
    deadline = start + minutes * 60
    stamp = {"profile": profile, "commit": git_commit(), "fingerprint": source_fingerprint(chapters),
             "device": active.describe(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "jobs": jobs}
    summary = {**stamp, "chapters": []}
    notebooks = {}
    out.mkdir(parents=True, exist_ok=True)
    # What chapters record for the CPU book's results box (buildgpt.viz.gpu_results), and where from.
    gpu = torch.cuda.get_device_name() if active.device == "cuda" else "CPU (a dry run)"
    write_json(out / RESULTS, {"run": {"gpu": gpu, **stamp}})
    if record:
        os.environ[gpu_results.ENV_VAR] = str(out / RESULTS)
    print(f"chapters: {len(chapters)} of them under {active.describe()}, {jobs} at a time, "
          f"at most {minutes:g} minutes", flush=True)

    def finished(chapter: str, notebook, entry: dict) -> None:
        """Record one chapter, and rewrite the archive and the summary (in the given order) with it."""
        entry["planned_minutes"] = plan(chapter)
        entry["started"] = round((entry.pop("began") - start) / 60, 3)  # minutes into the run: the schedule
        notebook.metadata["buildgpt"] = {**stamp, "status": entry["status"]}
        notebooks[chapter] = notebook
        summary["chapters"] = sorted([*summary["chapters"], entry], key=lambda c: chapters.index(c["chapter"]))
        where = f" at cell {entry['cell']}" if "cell" in entry else ""
        failure = "" if entry["status"] == "ok" else f"{where}: {entry['error']}"
        planned = f" (planned {entry['planned_minutes']:.2f})" if entry["planned_minutes"] is not None else ""
        print(f"{chapter}: {entry['status']} in {entry['minutes']:.2f} min{planned}{failure}", flush=True)
        if "traceback" in entry:
            print(entry["traceback"], file=sys.stderr, flush=True)
        summary["minutes"] = round((time.monotonic() - start) / 60, 3)  # the run's, start to this file
        write_files()

    def write_files() -> None:
        manifest = {**stamp, "chapters": {c["chapter"]: c["status"] for c in summary["chapters"]}}
        if "takeaway" in summary:
            manifest["takeaway"] = summary["takeaway"]["status"]
        summary["archive_mb"] = round(write_archive(out / ARCHIVE, manifest, notebooks, out / RESULTS), 2)
        write_json(out / SUMMARY, summary)

    first, together = schedule(chapters, alone, plan)
    for chapter in first:  # every core, and the GPU to itself
        finished(chapter, *execute(chapter, CELL_TIMEOUT[profile], deadline))
    cores = os.cpu_count() or 1
    shared = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // jobs))}
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each thread waits on its own kernel process
        if takeaway:  # first: it trains chapter 3's model, among the longest jobs
            ran = pool.submit(execute_takeaway, CELL_TIMEOUT[profile], deadline, shared)
        running = {pool.submit(execute, chapter, CELL_TIMEOUT[profile], deadline, shared): chapter
                   for chapter in together}
        for future in as_completed(running):
            finished(running[future], *future.result())
        if takeaway:
            notebook, summary["takeaway"] = ran.result()
            if notebook is not None:
                notebooks[TAKEAWAY] = notebook
            print(f"takeaway {TAKEAWAY}.ipynb: {summary['takeaway']['status']} in "
                  f"{summary['takeaway']['minutes']:.2f} min {summary['takeaway'].get('error', '')}", flush=True)
            summary["minutes"] = round((time.monotonic() - start) / 60, 3)  # it may have ended after every chapter
            write_files()
    failed = [c["chapter"] for c in summary["chapters"] if c["status"] != "ok"]
    failed += [TAKEAWAY] if summary.get("takeaway", {}).get("status", "ok") != "ok" else []
    print(f"chapters: {len(chapters) - len(failed)} of {len(chapters)} ran, "
          f"{summary['minutes']:.2f} min; archive {summary['archive_mb']} MB", flush=True)
    if summary["archive_mb"] > ARCHIVE_LIMIT_MB:
        print(f"error: the archive is over {ARCHIVE_LIMIT_MB} MB and will not come back whole", file=sys.stderr)
        return 1
    if failed:
        print(f"error: failed chapters: {', '.join(failed)} (see {out / SUMMARY})", file=sys.stderr)
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    wheels = commands.add_parser("check-wheels", help="is every pinned wheel there, for this Python?")
    wheels.add_argument("folder", type=Path)
    wheels.add_argument("requirements", type=Path)
    book = commands.add_parser("run", help="execute the chapters and write the archive and the JSON")
    book.add_argument("out", type=Path)
    book.add_argument("--profile", default="gpu", choices=("smoke", "cpu", "gpu"))
    book.add_argument("--chapters", nargs="+", help="pages as in _toc.yml (default: all of them)")
    book.add_argument("--minutes", type=float, default=8.5,
                      help="stop starting cells after this long (the GPU machine allows 10 minutes a command)")
    book.add_argument("--jobs", type=int, help="chapters at once, besides those run alone (default: the gpu plan's)")
    cells = commands.add_parser("cells", help="the slowest cells of each chapter in an archive")
    cells.add_argument("archive", type=Path)
    cells.add_argument("--at-least", type=float, default=2.0, help="list cells that took this many seconds or more")
    args = parser.parse_args(argv)
    if args.command == "cells":
        print(slowest_cells(args.archive, args.at_least))
        return 0
    if args.command == "check-wheels":
        if problems := check_wheels(args.folder, args.requirements):
            print("error: the wheels do not match scripts/gpu-requirements.txt (run `make gpu-wheels`):\n  "
                  + "\n  ".join(problems), file=sys.stderr)
            return 2
        print(f"wheels: all {args.requirements.name} pins found in {args.folder}")
        return 0
    return run(args.out, args.profile, args.chapters or toc_chapters(), args.minutes, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
