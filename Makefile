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

# Mutation testing of the crawl's core and glue, with the fast unit tests that drive it (both
# lists are [tool.mutmut] in pyproject.toml). Too slow for `make test`. Each run starts
# afresh so that its score is the whole score; MUTATION.md says why each survivor is left.
# The score is of the mutants mypy --strict accepts (one it refuses cannot pass `make
# test`); their tests' temporary files go to memory (/dev/shm) where there is one: the
# crawl's fsyncs then cost nothing, which halves the run.
MUTATION_GOAL ?= 95
MUTATION_TMP  ?= $(firstword $(wildcard /dev/shm) /tmp)

mutation: $(STAMP)
	rm -rf mutants
	@date -u +"started %T UTC"
	PATH="$(abspath $(BIN)):$$PATH" TMPDIR=$(MUTATION_TMP) $(BIN)/mutmut run --max-children 2
	@date -u +"ended %T UTC"
	$(BIN)/mutmut results
	@$(BIN)/mutmut results --all true | awk -F': ' -v goal=$(MUTATION_GOAL) ' \
	    { split($$1, name, "."); m = name[2]; total[m]++; all++ } \
	    $$2 ~ /^(killed|timeout)$$/ { killed[m]++; caught++ } \
	    $$2 == "caught by type check" { typed[m]++; types++ } \
	    END { printf "%-9s %-27s %s\n", "module", "killed by the tests", "refused by mypy"; \
	          for (m in total) { n = total[m] - typed[m]; \
	              printf "%-9s %4d of %4d (%5.1f%%)       %4d\n", m, killed[m], n, \
	                     n ? 100 * killed[m] / n : 100, typed[m] | "sort" } \
	          close("sort"); n = all - types; \
	          printf "all       %4d of %4d (%5.1f%%)       %4d   goal %d%% of the %d mypy accepts\n", \
	                 caught, n, 100 * caught / n, types, goal, n; \
	          exit 100 * caught < goal * n }'

clean:
	rm -rf $(VENV) out mutants .mypy_cache .ruff_cache .pytest_cache
