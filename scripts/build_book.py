"""Build the HTML book with every chapter executed: `make book` (the README's command).

Jupyter Book runs the chapters one after another, and on CI's two cores that leaves a core idle
whenever a chapter is not doing arithmetic: a kernel starting, a tokenizer training, a figure,
a decoding loop. So this script executes the chapters itself, two at a time (scripts/gpu_book.py,
the runner of the gpu book), then has Jupyter Book render the executed notebooks without running
anything (scripts/gpu_html.py). The pages and the downloads are laid out as a plain
`jupyter-book build` lays them out.

- Each kernel gets its share of the cores (OMP_NUM_THREADS = cores / jobs: one thread each on CI's
  two). Side by side, one thread each does 1.23x the work of one chapter at a time with both threads;
  both threads each would do only 1.06x, since the second core already serves the one chapter's
  arithmetic. The thread count changes how sums are rounded, so the glued numbers differ in their
  last digits from a one-after-another build, and every chapter's claims hold either way (its
  asserts run here). The assistant chapter, once short of its SFT bar at one thread (75.3%), now
  meets 83.7% there: its base model pretrains on shorter windows.
- The chapters that time the machine itself (`ALONE`: the efficiency chapter, and the distributed
  chapter, whose two ranks need both cores) run first, one by one.
- The rest run `--jobs` at a time, longest first by `MINUTES`; the learner's takeaway, gpt.ipynb,
  runs among them.
- A chapter that fails stops the build once the others have run, and its traceback is printed.
- Chapter 3's box shows the committed GPU results (results/gpu.json): nothing here records into them.

Measured on CI's 2 cores (AMD EPYC): chapters 4 and exercise 4 take 5.23 min one after another with
two threads, and 4.26 min side by side with one thread each (numbers off in the 7th digit).

    python scripts/build_book.py [--jobs N] [--chapters book/01-bigram ...] [--build DIR]

It writes _build/executed/ (the archive, and gpu-book.json with each chapter's minutes and when it
started) and the HTML in _build/html. The profile is BUILDGPT_PROFILE's (buildgpt.settings.profiles).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gpu_book
import gpu_html

BUILD = gpu_book.ROOT / "_build"  # under it: executed/ (the runner's files), staged/ (the book rendered), html/
ALONE = ("efficiency", "distributed")
# Each page's minutes in the CPU book of CI's fresh-clone run at 034e283 (2 cores, one after another). Only the
# order uses them: the longest start first, so that no long chapter starts last; a page not measured yet runs last.
MINUTES = {"book/intro": 0.1, "book/01-bigram": 0.23, "book/02-attention": 0.25, "book/03-gpt": 3.5,
           "book/nanogpt": 0.15, "book/04-positions": 2.35, "book/05-tokenizer": 0.77, "book/06-bits-per-byte": 1.55,
           "book/ex1-batched-heads": 0.3, "book/ex2-addition": 3.0, "book/ex2-calculator": 6.13,
           "book/ex3-pretrain-finetune": 4.2, "book/ex4-researcher": 2.42, "book/distributed": 1.63,
           "book/fast": 3.07, "book/assistant": 5.68, "book/references": 0.0}
RUN_MINUTES = 80  # no cell starts after this: CI allows 90 minutes for everything


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="chapters at once (default 2)")
    parser.add_argument("--chapters", nargs="+", help="pages as in _toc.yml (default: all of them)")
    parser.add_argument("--build", type=Path, default=BUILD, help="where to write (default: _build)")
    args = parser.parse_args(argv)
    from buildgpt.settings.profiles import profile_name

    profile = profile_name()
    chapters = args.chapters or gpu_book.toc_chapters()
    executed = args.build / "executed"
    code = gpu_book.run(executed, profile, chapters, RUN_MINUTES, args.jobs, alone=ALONE, plan=MINUTES.get,
                        record=False, takeaway=True)
    if code:
        return code
    return gpu_html.main([str(executed / gpu_book.ARCHIVE), "--profile", profile, "--stage",
                          str(args.build / "staged"), "--html", str(args.build / "html"), *(["--partial"] if args.chapters else [])])


if __name__ == "__main__":
    sys.exit(main())
