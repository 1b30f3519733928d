# tradewind: `make up` runs the platform, `make test` runs every test. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FRONTEND_STAMP := src/tradewind/web/static/app/index.html
PYTEST_ARGS ?=
# The end-to-end tests (whole platforms, a browser) run one at a time; the others in this many processes
# (pytest-xdist, a test file per process at a time). Each run prints its slowest tests (--durations): the
# suite is meant to stay well under 15 minutes on CI's 2 cores.
TEST_WORKERS ?= 2

.PHONY: install up test test-money-nightly lint frontend api-client browser clean migration

install: $(STAMP) frontend

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The single-page app, built into the package so that `tradewind up` serves it.
frontend: $(FRONTEND_STAMP)

$(FRONTEND_STAMP): $(shell find frontend/src frontend/index.html frontend/package.json frontend/package-lock.json frontend/vite.config.ts frontend/tsconfig.json -type f 2>/dev/null)
	@if [ -f frontend/package.json ]; then \
		cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build; \
	else echo "no frontend/ yet"; fi

# Regenerate the typed API client from the running app's OpenAPI document.
api-client: $(STAMP)
	$(BIN)/python -c "import json; from tradewind.web.openapi import openapi_document; print(json.dumps(openapi_document(), indent=1))" > frontend/openapi.json
	cd frontend && npm run gen:api

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser of its own).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

up: install
	$(BIN)/tradewind up

test: install browser
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	@if [ -f frontend/package.json ]; then cd frontend && npm test --silent; fi
	$(BIN)/pytest -q --durations=10 tests/e2e $(PYTEST_ARGS)
	$(BIN)/pytest -q --durations=25 -n $(TEST_WORKERS) --dist loadfile tests/unit tests/integration $(PYTEST_ARGS)

# The money-safety state machine (tests/integration/security) with its long nightly profile.
test-money-nightly: $(STAMP)
	TW_HYPOTHESIS_PROFILE=nightly $(BIN)/pytest -q tests/integration/security

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

migration: $(STAMP)
	$(BIN)/python scripts/regen_migration.py

clean:
	rm -rf $(VENV) frontend/node_modules src/tradewind/web/static/app
