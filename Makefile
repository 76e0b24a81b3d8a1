# The two commands of the README: `make book` and `make test`. Both set up .venv first.
# Data comes from data/ (downloaded on first use), or from an offline mirror named by
# BUILDGPT_DATA_MIRROR and TIKTOKEN_CACHE_DIR when those are set (CI sets them in .ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch==2.13.0 is installed first and alone; see the README for which build pip picks.
TORCH ?= torch==2.13.0

.PHONY: book test test-fast lint check-html venv clean gpu-wheels gpu-bundle gpu-html gpu-plan

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (buildgpt)"
	touch $@

venv: $(VENV)/.installed

# Every chapter executed, several at a time (scripts/build_book.py: BOOK_JOBS=N sets how many), then
# rendered by Jupyter Book -> _build/html.
book: venv
	$(PY) scripts/build_book.py $(if $(BOOK_JOBS),--jobs $(BOOK_JOBS))
	@test -f _build/html/index.html

# Everything but the browser check (which needs a built book): unit tests and every chapter as a notebook.
test: venv
	$(PY) -m pytest -q

# Unit tests only: no chapter executed (about two minutes on 2 cores).
test-fast: venv
	$(PY) -m pytest -q -m "not slow and not browser"

lint: venv
	$(VENV)/bin/ruff check code tests benchmarks scripts

# Headless-Chromium check of the book built by `make book` (needs Debian's chromium), or of
# another build: `make check-html HTML=_build/gpu-book/_build/html` (the gpu book, below).
check-html: venv
	$(if $(HTML),BUILDGPT_HTML_DIR=$(HTML) )$(PY) -m pytest -q -m browser tests/test_browser.py

# The gpu book (DESIGN.md, "Running the gpu profile on a GPU machine"). scripts/gpu-book.sh runs
# there and needs gpu-bundle/ carried beside the tree: the pinned wheels of
# scripts/gpu-requirements.txt for CPython 3.12 on manylinux x86_64 (downloading them is the one
# step that needs a package registry; nothing else calls it) and the data mirror.
GPU_BUNDLE := gpu-bundle
GPU_WHEELS_MB := 60
GPU_PLATFORMS := $(foreach p,manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_28_x86_64,--platform $(p))

gpu-wheels:
	rm -rf $(GPU_BUNDLE)/wheels
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: $(GPU_PLATFORMS) --python-version 3.12 \
		--implementation cp -d $(GPU_BUNDLE)/wheels -r scripts/gpu-requirements.txt
	@mb=$$(du -sb $(GPU_BUNDLE)/wheels | awk '{printf "%.1f", $$1 / 1e6}'); \
		echo "$(GPU_BUNDLE)/wheels: $$(ls $(GPU_BUNDLE)/wheels | wc -l) wheels, $$mb MB"; \
		awk "BEGIN { exit !($$mb <= $(GPU_WHEELS_MB)) }" || { echo "error: over $(GPU_WHEELS_MB) MB" >&2; exit 1; }

# The wheels and the chapters' data (from BUILDGPT_DATA_MIRROR): what the `run` tool carries.
gpu-bundle: gpu-wheels
	@test -d "$$BUILDGPT_DATA_MIRROR/tinyshakespeare" || { echo "error: set BUILDGPT_DATA_MIRROR to the" \
		"offline data mirror (../shared/data): the GPU machine has no network" >&2; exit 2; }
	rm -rf $(GPU_BUNDLE)/data && mkdir -p $(GPU_BUNDLE)/data
	cp -r "$$BUILDGPT_DATA_MIRROR"/tinyshakespeare "$$BUILDGPT_DATA_MIRROR"/gutenberg-novels \
		"$$BUILDGPT_DATA_MIRROR"/tiktoken-cache $(GPU_BUNDLE)/data/
	chmod -R u+w $(GPU_BUNDLE)/data
	@du -shc $(GPU_BUNDLE)/wheels $(GPU_BUNDLE)/data

# Each chapter's planned minutes on one H100 under the gpu profile (buildgpt/settings/gpu_plan.py).
gpu-plan: venv
	$(PY) -m buildgpt.settings.gpu_plan

# The HTML book from the archive scripts/gpu-book.sh brought back, executing nothing:
# make gpu-html ARCHIVE=OUTDIR/gpu-book.tar.gz -> _build/gpu-book/_build/html
gpu-html: venv
	@test -n "$(ARCHIVE)" || { echo "usage: make gpu-html ARCHIVE=OUTDIR/gpu-book.tar.gz" >&2; exit 2; }
	$(PY) scripts/gpu_html.py $(ARCHIVE)

clean:
	rm -rf _build
