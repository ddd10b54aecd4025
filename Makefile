# `make run` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Set up, migrate the SQLite database under instance/, and serve on 127.0.0.1:8000,
## with `scim-server worker` (queued jobs) beside it; stopping the server stops both.
run: $(STAMP)
	$(BIN)/scim-server serve --with-worker

## Set up and run the whole test suite (PostgreSQL too when SCIM_TEST_DATABASE_URL is set).
test: $(STAMP)
	@test -x /usr/bin/chromium || echo "Browser tests will be skipped: /usr/bin/chromium is missing (sudo apt-get install chromium)."
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
