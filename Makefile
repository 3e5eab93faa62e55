# teachdiff — two commands: `make book` and `make test` (see README.md).
# Both create .venv on first use. torch==2.13.0 (CPU build) is installed first when the venv
# has no torch, so no requirement can pull a multi-GB CUDA build.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
BOOK_FLAGS ?=

.PHONY: install test test-full-mode book book-strict student clean sync

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml requirements.txt
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[test,book,bmz]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

## CI: every chapter's .ipynb in full mode with capped counts (TEACHDIFF_CAPPED=1), about 10 min.
test-full-mode: $(STAMP)
	$(PY) -m pytest -q -m full_notebooks --durations=0 tests/test_notebooks_full_mode.py

## Execute every chapter in quick mode (TEACHDIFF_QUICK=1) and build the HTML book.
book: $(STAMP)
	$(PY) -m jupytext --sync notebooks/*.md >/dev/null
	TEACHDIFF_QUICK=1 $(VENV)/bin/jupyter-book build . $(BOOK_FLAGS)
	@echo ""
	@echo "The book is built. Open: file://$(CURDIR)/_build/html/index.html"

## CI: warnings are errors, so a failing cell or a broken reference fails the build.
book-strict:
	$(MAKE) book BOOK_FLAGS="-W -n --keep-going"

## A student version of the notebooks: solution cells removed (written to _student/).
student: $(STAMP)
	$(PY) -m teachdiff.cli.book student notebooks _student

sync: $(STAMP)
	$(PY) -m jupytext --sync notebooks/*.md

clean:
	rm -rf _build _student
