#!/usr/bin/env bash
# The `gpu` book in one command, on a machine with CUDA, Python 3.12 and torch, no network and
# none of the book's execution packages (DESIGN.md, "Running the gpu profile on a GPU machine").
#
#   scripts/gpu-book.sh OUTDIR
#
# Needs gpu-bundle/ beside it (`make gpu-bundle`: the pinned wheels and the data mirror). It
# installs the wheels and the package into a folder of its own (torch stays the machine's),
# executes every chapter of _toc.yml under BUILDGPT_PROFILE=gpu, and writes into OUTDIR the
# executed notebooks (gpu-book.tar.gz), each chapter's minutes, status and numbers
# (gpu-book.json), what chapter 3 recorded for the CPU book's results box (gpu.json) and this log
# (gpu-book.log). Back on the CPU machine, `make gpu-html ARCHIVE=OUTDIR/gpu-book.tar.gz` builds
# the HTML book from the archive and turns gpu.json into results/gpu.json.
#
# Where the tree has no .git, GPU_BOOK_COMMIT=<hash> names the commit for the results' label.
# GPU_BOOK_JOBS=N runs N chapters at once (default: buildgpt.settings.gpu_plan.JOBS).
# For a dry run on a CPU machine: GPU_BOOK_PROFILE=smoke (or cpu) runs the same path, and
# GPU_BOOK_INSTALL=0 with PYTHON=.venv/bin/python uses an environment that has the packages.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: scripts/gpu-book.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
python=${PYTHON:-python3}
profile=${GPU_BOOK_PROFILE:-gpu}
bundle=${GPU_BUNDLE:-$repo/gpu-bundle}
site=${GPU_SITE:-/tmp/buildgpt-gpu-site}

main() {
    cd "$repo"
    echo "== $(date -u +%FT%TZ) gpu book, profile $profile, into $out"
    if [ "$profile" = gpu ] && ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
        echo "error: torch.cuda.is_available() is false on $(hostname): the gpu profile needs a CUDA" \
             "device. Run this on the GPU machine, or set GPU_BOOK_PROFILE=smoke for a dry run." >&2
        return 3
    fi
    if [ "${GPU_BOOK_INSTALL:-1}" = 1 ]; then
        "$python" scripts/gpu_book.py check-wheels "$bundle/wheels" scripts/gpu-requirements.txt
        echo "== installing the wheels and buildgpt into $site (no index, no dependencies: torch stays)"
        rm -rf "$site"
        local pip=("$python" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check
                   --find-links "$bundle/wheels" --target "$site")
        "${pip[@]}" -r scripts/gpu-requirements.txt .  # one call: a second would skip an existing bin/
        rm -rf build  # setuptools' scratch folder from building the package
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
    fi
    export BUILDGPT_DATA_MIRROR="${BUILDGPT_DATA_MIRROR:-$bundle/data}"
    export TIKTOKEN_CACHE_DIR="${TIKTOKEN_CACHE_DIR:-$BUILDGPT_DATA_MIRROR/tiktoken-cache}"
    if [ ! -d "$BUILDGPT_DATA_MIRROR/tinyshakespeare" ]; then
        echo "error: no data mirror at $BUILDGPT_DATA_MIRROR (tinyshakespeare/ missing); run" \
             "\`make gpu-bundle\` here and carry gpu-bundle/, or set BUILDGPT_DATA_MIRROR" >&2
        return 4
    fi
    PYTHONUNBUFFERED=1 "$python" scripts/gpu_book.py run "$out" --profile "$profile" ${GPU_BOOK_CHAPTERS:+--chapters $GPU_BOOK_CHAPTERS} \
        ${GPU_BOOK_JOBS:+--jobs $GPU_BOOK_JOBS}
}

main 2>&1 | tee "$out/gpu-book.log"
exit "${PIPESTATUS[0]}"
