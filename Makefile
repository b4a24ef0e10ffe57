# Set-up, demo, the paper's grid, the benchmark and tests. Every target works on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pytest processes for `make test` (CI has 2 cores; TensorFlow tests trace in one thread).
TEST_WORKERS ?= 2

.PHONY: setup demo reproduce bench bench-quick results test lint format clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

demo: setup
	$(PY) demo.py --output_dir=demo_out

reproduce: setup
	$(PY) reproduce.py --output_dir=reproduce_out

bench: setup
	$(PY) benchmark.py --output_dir=benchmark_out

bench-quick: setup
	$(PY) benchmark.py --quick --output_dir=benchmark_out/quick

# README's result sections and plots from the measurements committed in results/.
results: setup
	$(PY) results_report.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup tests

clean:
	rm -rf demo_out reproduce_out benchmark_out .pytest_cache .ruff_cache
