"""Build the HTML book from the archive of executed notebooks that scripts/gpu-book.sh brought
back, without executing anything: `make gpu-html ARCHIVE=OUT/gpu-book.tar.gz`.

The archive must come from this very tree (same chapters, same package: its fingerprint), under
the profile asked for (`gpu`), with no chapter failed; anything else is refused by name. The
chapters' .md sources are replaced by their executed notebooks in a staging copy of the book,
and Jupyter Book renders their stored outputs (`execute_notebooks: off`), glue included. A `gpu`
archive's results become results/gpu.json, which the CPU book's chapter 3 shows.

    python scripts/gpu_html.py ARCHIVE [--profile gpu] [--partial] [--stage DIR] [--html DIR]

The HTML lands in _build/gpu-book/_build/html (or is moved to --html); `make check-html
HTML=_build/gpu-book/_build/html` checks it. scripts/build_book.py, which `make book` runs, builds the
CPU book the same way from the archive it has just executed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import gpu_book

from buildgpt_book import wheel

ROOT = gpu_book.ROOT
STAGE = ROOT / "_build" / "gpu-book"  # its HTML: STAGE/_build/html
RESULTS = ROOT / "results" / "gpu.json"  # what chapter 3's box shows in the CPU book


class RefusedArchive(Exception):
    pass


def read_archive(path: Path) -> tuple[dict, dict[str, bytes]]:
    """The archive's manifest and its notebooks by chapter (`book/01-bigram` -> bytes)."""
    try:
        with tarfile.open(path) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        manifest = json.loads(files.pop("manifest.json"))
        manifest["results"] = json.loads(files.pop("results.json", b"null"))
    except (OSError, tarfile.TarError, KeyError, ValueError) as error:
        raise RefusedArchive(f"{path} is not an archive of scripts/gpu-book.sh ({error})") from error
    return manifest, {name.removesuffix(".ipynb"): data for name, data in files.items() if name.endswith(".ipynb")}


def check(path: Path, manifest: dict, profile: str, partial: bool) -> list[str]:
    """The chapters to build, once the archive is shown to belong to this tree and profile."""
    origin = (f"{path} was executed under profile '{manifest.get('profile')}' at commit "
              f"{manifest.get('commit')} (source fingerprint {manifest.get('fingerprint')})")
    if manifest.get("profile") != profile:
        raise RefusedArchive(f"{origin}; this book wants profile '{profile}'.")
    statuses = manifest.get("chapters", {})
    chapters = list(statuses)
    toc = gpu_book.toc_chapters()
    if missing := [c for c in toc if c not in statuses and not partial]:
        raise RefusedArchive(f"{origin}; it lacks chapters of this _toc.yml: {', '.join(missing)}.")
    if unknown := [c for c in chapters if c not in toc]:
        raise RefusedArchive(f"{origin}; its chapters {', '.join(unknown)} are not in this _toc.yml.")
    here = gpu_book.source_fingerprint(chapters)
    if manifest.get("fingerprint") != here:
        raise RefusedArchive(f"{origin}; this tree is at commit {gpu_book.git_commit()} and its chapters or "
                             f"package differ (fingerprint {here}): stale. Run scripts/gpu-book.sh again.")
    failed = [c for c, status in statuses.items() if status != "ok"]
    failed += [f"{gpu_book.TAKEAWAY}.ipynb"] if manifest.get("takeaway", "ok") != "ok" else []
    if failed:
        raise RefusedArchive(f"{origin}; these chapters failed there: {', '.join(failed)} "
                             "(gpu-book.json names the cell). Fix them and run it again.")
    return chapters


def stage(notebooks: dict[str, bytes], chapters: list[str], partial: bool, into: Path) -> None:
    """A copy of the book with each chapter's .md replaced by its executed notebook, and the executed takeaway
    where the book's extension keeps it (`gpu_book.TAKEAWAY`)."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(ROOT / "book", into / "book", ignore=shutil.ignore_patterns("*.ipynb"))
    for name in (*wheel.SOURCE_FILES, wheel.SOURCE_FOLDER):  # without them the staged book would offer no wheel on its first page
        (into / name).symlink_to(ROOT / name)
    for chapter in chapters:
        (into / f"{chapter}.md").unlink()
        (into / f"{chapter}.ipynb").write_bytes(notebooks[chapter])
    if gpu_book.TAKEAWAY in notebooks:
        takeaway = into / f"{gpu_book.TAKEAWAY}.ipynb"
        takeaway.parent.mkdir(parents=True)
        takeaway.write_bytes(notebooks[gpu_book.TAKEAWAY])
    config = (ROOT / "_config.yml").read_text()
    if "execute_notebooks: force" not in config:
        raise RuntimeError("_config.yml no longer says `execute_notebooks: force`; update scripts/gpu_html.py")
    (into / "_config.yml").write_text(config.replace("execute_notebooks: force", "execute_notebooks: 'off'"))
    toc = (ROOT / "_toc.yml").read_text()
    if partial:  # only the archive's chapters, in their order (the tests' dry run)
        toc = f"format: jb-book\nroot: {chapters[0]}\n" + (
            "parts:\n  - caption: Chapters\n    chapters:\n" + "".join(f"      - file: {c}\n" for c in chapters[1:])
            if chapters[1:] else "")
    (into / "_toc.yml").write_text(toc)


def unpasted_glue(warnings: str) -> list[str]:
    """The warnings of a book build about glued values it could not paste (a missing key, a format that does not
    fit the value): each leaves a hole where the prose quotes a number. Sphinx only warns about them."""
    return [line for line in warnings.splitlines() if "[mystnb.glue]" in line]


def write_results(manifest: dict, path: Path, partial: bool = False) -> Path | None:
    """A whole `gpu` run's results into `path` (results/gpu.json). A dry run's, a partial run's and one that
    measured nothing beyond its stamp never replace them: the file would lose what chapter 3's box shows."""
    if manifest["profile"] != "gpu" or partial or set(manifest.get("results", {})) <= {"run"}:
        return None
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(manifest["results"], indent=1) + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archive", type=Path)
    parser.add_argument("--profile", default="gpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--partial", action="store_true", help="build the archive's chapters only")
    parser.add_argument("--stage", type=Path, default=STAGE, help="where the book is staged and built")
    parser.add_argument("--html", type=Path, help="move the built HTML here (default: leave it in the stage)")
    args = parser.parse_args(argv)
    try:
        manifest, notebooks = read_archive(args.archive)
        chapters = check(args.archive, manifest, args.profile, args.partial)
    except RefusedArchive as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stage(notebooks, chapters, args.partial, args.stage)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    built = subprocess.run([str(jupyter_book), "build", str(args.stage), "--all"], cwd=ROOT, stderr=subprocess.PIPE,
                           text=True)
    sys.stderr.write(built.stderr)  # Sphinx's warnings, read below
    html = args.stage / "_build" / "html"
    if built.returncode or not (html / "index.html").is_file():
        print(f"error: jupyter-book failed on the staged book in {args.stage}", file=sys.stderr)
        return 1
    if holes := unpasted_glue(built.stderr):
        print(f"error: {len(holes)} glued value(s) did not reach the prose, which shows nothing in their place:\n"
              + "\n".join(holes), file=sys.stderr)
        return 1
    if args.html:
        shutil.rmtree(args.html, ignore_errors=True)
        args.html.parent.mkdir(parents=True, exist_ok=True)
        html = Path(shutil.move(html, args.html))
    print(f"book ({manifest['profile']}, commit {manifest['commit']}, {manifest['device']}): {html}")
    if written := write_results(manifest, RESULTS, args.partial):
        print(f"{written} now holds this run's results: commit it, and the CPU book's chapter 3 shows them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
