# importhub: `make run` starts the demo, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint format bench soak services browser venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,server,otel]"
	@touch $(STAMP)

venv: $(STAMP)

services:
	@bash scripts/ensure_services.sh

# The browser tests' Chromium (Debian's package; installed when missing).
browser:
	@bash scripts/ensure_browser.sh

run: venv
	@bash scripts/run.sh

# The suite runs in TEST_WORKERS processes (pytest-xdist; 0 runs it in this
# one): each has its own test database, Redis key prefix and broker queues.
TEST_WORKERS ?= 3
test: venv services browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv services
	$(BIN)/python -m bench

# Random dispatch storms and faults against real workers, about 5 minutes
# (SOAK_SECONDS); then the incremental imports' randomized fault trials,
# SOAK_TRIALS of each (2000); exits 1 on any violation.
SOAK_TRIALS ?= 2000
soak: venv services
	$(BIN)/python -m bench.soak
	IMPORTHUB_INCREMENTAL_TRIALS=$(SOAK_TRIALS) $(BIN)/pytest -q --timeout 3600 \
		tests/imports/loading/test_incremental_trials.py \
		tests/imports/loading/test_incremental_http_trials.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
