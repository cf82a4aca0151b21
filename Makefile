# Quick start:  make run   (set up, create a demo organisation and token, serve on SQLite)
#               make test  (set up, lint, type-check, run the whole suite on SQLite and PostgreSQL)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# one pytest worker per core; PYTEST_WORKERS=0 runs the suite in this process
PYTEST_WORKERS ?= auto
# make run's port: make run PORT=8001 when 8000 is taken
PORT ?= 8000
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck pytest install clean

$(STAMP): pyproject.toml setup.py constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/scim-server demo --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check scim_server tests deploy setup.py $(wildcard bench)

# bench/'s scripts import each other by file name (python bench/load.py): a run of their own
typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy $(wildcard bench/*.py)

pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
