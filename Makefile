# The two commands a new user runs; .ci/run calls `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: quickstart test lint clean

$(BIN)/prescore: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

quickstart: $(BIN)/prescore  ## set up, then run the main job on the bundled sample
	$(BIN)/prescore quickstart

test: $(BIN)/prescore  ## set up, then run the whole test suite on CPU
	$(BIN)/pytest

lint: $(BIN)/prescore
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy prescore data training models eval serving

clean:
	rm -rf $(VENV) mlruns mlflow.db .pytest_cache
