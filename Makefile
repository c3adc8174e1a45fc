# soraq task runner. Every target works on a fresh clone with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install services apt run test lint fmt bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e clients/python
	touch $(STAMP)

install: $(STAMP)

## run: API on :8000 + worker, against the bundled sandbox unless KIE_API_KEY is set
run: install
	$(BIN)/soraq dev

## services: what the integration suite needs (Redis; PostgreSQL if absent; chromium; kubectl)
services:
	@command -v redis-server >/dev/null 2>&1 || $(MAKE) --no-print-directory apt PKG=redis-server
	@command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
		|| $(MAKE) --no-print-directory apt PKG=postgresql
	@test -x /usr/bin/chromium || $(MAKE) --no-print-directory apt PKG=chromium
	@command -v kubectl >/dev/null 2>&1 || $(MAKE) --no-print-directory apt PKG=kubectl
	@command -v redis-server >/dev/null 2>&1 || echo "!!! redis-server is missing: the Postgres+Redis run will be skipped"

apt:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(PKG) (apt)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(PKG)) >/dev/null 2>&1 || echo "!!! could not install $(PKG)"; \
	else echo "!!! $(PKG) is not installed (install it to run the Postgres+Redis suite)"; fi

## test: lint, then the whole suite (integration twice: SQLite + file broker, Postgres + Redis)
test: install services lint
	$(BIN)/pytest

## bench: the six benchmarks, then one table (figures, not pass/fail); see docs/BENCHMARKS.md
bench: install services
	@command -v wrk >/dev/null 2>&1 || $(MAKE) --no-print-directory apt PKG=wrk
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy core broker catalogue media models upstreams views api worker sandbox devstack soraq

fmt: install
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
