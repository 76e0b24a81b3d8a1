# The two commands of the README: `make book` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch==2.13.0 resolves to the local CPU wheel here; an unpinned torch would pull CUDA wheels.
TORCH ?= torch==2.13.0
export BUILDGPT_DATA_MIRROR ?= $(abspath ../shared/data)
export TIKTOKEN_CACHE_DIR ?= $(abspath ../shared/data/tiktoken-cache)

.PHONY: book test check-html venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (buildgpt)"
	touch $@

venv: $(VENV)/.installed

book: venv
	$(VENV)/bin/jupyter-book build . --path-output . --all
	@test -f _build/html/index.html

test: venv
	$(PY) -m pytest -q

# Headless-Chromium check of the book built by `make book` (needs Debian's chromium).
check-html: venv
	$(PY) -m pytest -q -m browser tests/test_browser.py

clean:
	rm -rf _build
