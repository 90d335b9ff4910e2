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
	@echo "make mutation  mutmut over the crawl's core and glue (fails under 95% killed)"

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

# Mutation testing of the crawl's core, with the fast unit tests that drive it (both lists
# are [tool.mutmut] in pyproject.toml). Too slow for `make test`. Each run starts afresh so
# that its score is the whole score; MUTATION.md says why each survivor is left.
MUTATION_GOAL ?= 95

mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results
	@$(BIN)/mutmut results --all true | awk -F': ' -v goal=$(MUTATION_GOAL) ' \
	    { split($$1, name, "."); total[name[2]]++; all++ } \
	    $$2 ~ /^(killed|timeout)$$/ { killed[name[2]]++; caught++ } \
	    END { for (m in total) printf "%-9s %4d of %4d mutants killed (%.1f%%)\n", \
	                                  m, killed[m], total[m], 100 * killed[m] / total[m] | "sort"; \
	          close("sort"); \
	          printf "all       %4d of %4d mutants killed (%.1f%%), goal %d%%\n", \
	                 caught, all, 100 * caught / all, goal; \
	          exit 100 * caught < goal * all }'

clean:
	rm -rf $(VENV) out mutants .mypy_cache .ruff_cache .pytest_cache
