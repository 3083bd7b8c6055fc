# Two commands do everything on a fresh machine: `make demo` and `make test`; `make check`
# is the inner loop: lint, types and the tests that need no broker, process or browser.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo run test check lint bench bench-api clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,embedded]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/livesales demo

run: $(STAMP)
	$(VENV)/bin/livesales run

test: $(STAMP)
	bash tests/install-system-deps.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(PY) -m pytest -q -p no:cacheprovider -n auto --dist worksteal

# The markers are set in tests/conftest.py; no test selected fails (pytest's exit code 5).
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(PY) -m pytest -q -p no:cacheprovider -m "not needs_services and not browser and not slow" -n auto --dist worksteal

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

bench: $(STAMP)
	$(VENV)/bin/livesales bench ingest

bench-api: $(STAMP)
	$(VENV)/bin/livesales bench api

clean:
	rm -rf $(VENV) data .pytest_cache
