# featurefate: `make test` and `make reproduce` each work as the first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-all lint reproduce bench clean

venv: $(STAMP)

# Re-installs whenever pyproject.toml changes; otherwise does nothing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-all: venv
	$(BIN)/python -m pytest -m ''

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

reproduce: venv
	$(BIN)/featurefate reproduce --out results

bench: venv
	$(BIN)/python benchmarks/theory_bench.py

clean:
	rm -rf $(VENV) results .pytest_cache
