# The two commands a new user runs; .ci/run calls `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: quickstart test test-fast lint bento clean

$(BIN)/prescore: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

quickstart: $(BIN)/prescore  ## set up, run the main job on the bundled sample, then serve it
	$(BIN)/prescore quickstart

test: $(BIN)/prescore  ## set up, then run the whole test suite on CPU
	$(BIN)/pytest

test-fast: $(BIN)/prescore  ## the tests that need no service, browser or Postgres (a minute or two)
	$(BIN)/pytest -m "not slow and not browser and not postgres"

lint: $(BIN)/prescore
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy -p prescore -p bench

bento: $(BIN)/prescore  ## a deployable Bento (then: bentoml containerize prescore:latest)
	rm -rf build dist && $(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w dist . && rm -rf build
	$(BIN)/bentoml build

clean:
	rm -rf $(VENV) mlruns mlflow.db .pytest_cache dist build
