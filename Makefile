# The two commands of the README: `make book` and `make test`. Both set up .venv first.
# Data comes from data/ (downloaded on first use), or from an offline mirror named by
# BUILDGPT_DATA_MIRROR and TIKTOKEN_CACHE_DIR when those are set (CI sets them in .ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch==2.13.0 is installed first and alone; see the README for which build pip picks.
TORCH ?= torch==2.13.0

.PHONY: book test test-fast lint check-html venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (buildgpt)"
	touch $@

venv: $(VENV)/.installed

book: venv
	$(VENV)/bin/jupyter-book build . --path-output . --all
	@test -f _build/html/index.html

# Everything but the browser check (which needs a built book): unit tests and every chapter as a notebook.
test: venv
	$(PY) -m pytest -q

# Unit tests only: no chapter executed (about a minute).
test-fast: venv
	$(PY) -m pytest -q -m "not slow and not browser"

lint: venv
	$(VENV)/bin/ruff check code tests benchmarks

# Headless-Chromium check of the book built by `make book` (needs Debian's chromium).
check-html: venv
	$(PY) -m pytest -q -m browser tests/test_browser.py

clean:
	rm -rf _build
