# Every target bootstraps .venv from a clean clone by itself; re-running is quick when
# pyproject.toml has not changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench clean

# The runtime dependencies install at the versions requirements.lock pins (the container image's
# own set), so tests run what the image runs; the dev tools resolve freely.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/closedloop demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The timing-sensitive end-to-end tests (crash recovery, replicas) run alone after the rest, so
# the other worker's load does not skew their lease periods and kill timings.
pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not slow"
	$(BIN)/python -m pytest -q -m slow

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
