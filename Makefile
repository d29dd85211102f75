# featurefate: `make test` and `make reproduce` each work as the first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-all lint reproduce bench docs clean browser-deps screenshot

venv: $(STAMP)

# Re-installs whenever pyproject.toml changes; otherwise does nothing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Headless Chromium and its WebDriver for the explorer's browser test (Debian packages); does
# nothing when both are installed.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver are installed"; \
	else \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi

# Re-take docs/explorer.png, the explorer as the browser test leaves it.
screenshot: venv
	FEATUREFATE_SCREENSHOT=docs/explorer.png $(BIN)/python -m pytest tests/test_explore_browser.py -q

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

# The documentation site (mkdocs.yml, docs/) into site/, failing on any warning.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

$(VENV)/.docs-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $@

bench: venv
	$(BIN)/python benchmarks/theory_bench.py

clean:
	rm -rf $(VENV) results site .pytest_cache
