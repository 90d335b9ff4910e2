# The project's front door: `make demo` and `make test` work on a fresh machine
# with only Python (>= 3.11) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv test lint imports typecheck pytest demo bench mutation clean

help:
	@echo "make demo   crawl configs/ against the bundled emulator into out/"
	@echo "make test   ruff + import-linter + mypy --strict + pytest"
	@echo "make bench  benchmarks against the emulator (writes bench/results.json)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint imports typecheck pytest

demo: $(STAMP)
	$(BIN)/python -m intersect_batch.demo

# Benchmarks run in their own environment: the project plus the peers it is measured
# against (dataforseo-client) and a profiler, none of which the project depends on.
BENCH_VENV  := bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . 'dataforseo-client==2.1.10' 'pyinstrument>=4.6'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
