# The two commands: `make demo` and `make test`. Both create .venv when missing.
# `make wheel` builds dist/paxis_router-*.whl; `make prices` refreshes the shipped price map.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE_STAMP := $(VENV)/.core-installed
DEV_STAMP := $(VENV)/.dev-installed
# Extras the test suite exercises (torch is pinned to 2.13.0 by the [train] extra: a CPU build here).
TEST_EXTRAS := dev,litellm,proxy,otel,postgres,embed,calibrate,langchain,train,bench,reports

.PHONY: demo test check lint typecheck format bench clean wheel prices

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[$(TEST_EXTRAS)]"
	touch $(CORE_STAMP) $@

demo: $(CORE_STAMP)
	$(BIN)/paxis demo

# The wheel (and sdist) users install with pip; tests/test_wheel.py installs it in a fresh venv.
wheel: | $(BIN)/python
	rm -rf dist
	$(BIN)/python -m pip wheel -q --no-deps -w dist .
	@ls dist/*.whl

# Refresh paxis_router/data/prices/model_prices.json from the installed litellm's map.
prices: $(DEV_STAMP)
	$(BIN)/python scripts/refresh_prices.py

lint: $(DEV_STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# The suite runs on up to 4 processes (pytest-xdist; a file's tests stay in one process).
test: lint typecheck
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile --cov=paxis_router --cov-report=term --cov-fail-under=80 -p no:cacheprovider

check: test

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/ledger_bench.py

clean:
	rm -rf $(VENV) dist .mypy_cache .ruff_cache .pytest_cache .coverage
