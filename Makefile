# `make run`: serve on http://127.0.0.1:8000 (SQLite, demo account).  `make test`: lint + tests.
# `make serve`: the production server.  `make bench`, `make bench-faults`: benchmarks (bench/README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# PostgreSQL for `make test-postgres` (CI has one on every machine).
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test

# `make serve`: worker processes (default two per core) and debug pages (off unless set).
WEB_CONCURRENCY ?= $$((2 * $$(nproc)))
DJANGO_DEBUG ?= false

.PHONY: run serve bench bench-faults test test-postgres lint format superuser collectstatic clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

.env:
	cp .env.example .env
	@echo "Created .env from .env.example (development values)."

# The task worker (moderation at Agora) runs beside the server and stops with it.
WORKER = $(BIN)/python manage.py db_worker --no-reload --stop-with-parent

run: $(VENV)/.runtime-installed .env
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py ensure_demo_user
	$(WORKER) & exec $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production serving, picked with `make bench` (bench/RESULTS.md): granian's WSGI server,
# WEB_CONCURRENCY processes with one request at a time each; database connections persist
# (DATABASE_CONN_MAX_AGE). HOST=0.0.0.0 for a load balancer on another host. It does not
# migrate PostgreSQL (run `manage.py migrate` once per release, not from every host); only
# the embedded SQLite database, which no other host shares, is migrated here so that a fresh
# clone serves at once. Configuration errors stop it, except missing Agora credentials: then it
# serves and /healthz answers 503 naming them, so a load balancer keeps traffic away. A task
# worker (moderation) runs beside it, one per host, and stops with it.
serve: $(VENV)/.runtime-installed
	@$(BIN)/python manage.py check_serve
	@if ! $(BIN)/python manage.py migrate --check --skip-checks >/dev/null; then \
	  if $(BIN)/python manage.py shell -v 0 -c 'from django.db import connection; raise SystemExit(connection.vendor != "sqlite")'; then \
	    $(BIN)/python manage.py migrate --no-input --skip-checks; \
	  else \
	    echo "make serve: the database is not migrated (or not reachable); run 'manage.py migrate' first." >&2; exit 1; \
	  fi; \
	fi
	DJANGO_DEBUG=$(DJANGO_DEBUG) $(WORKER) & \
	DJANGO_DEBUG=$(DJANGO_DEBUG) exec $(BIN)/granian --interface wsgi --host $(HOST) --port $(PORT) \
	  --workers $(WEB_CONCURRENCY) --blocking-threads 1 --respawn-failed-workers --log-level warning \
	  tokenserver.wsgi:application

# Benchmarks, not tests (bench/README.md): the project beside the tutorial's server; and
# PostgreSQL and Redis restarted under load (private instances on their own ports, never the
# machine's). bench/run.py installs wrk (apt-get) when it is missing; its knobs:
# `.venv/bin/python bench/run.py --help`.
bench: $(VENV)/.runtime-installed
	$(BIN)/python bench/run.py

bench-faults: $(VENV)/.runtime-installed
	BENCH_FAULTS=1 $(BIN)/python bench/run.py

# Tests ignore .env (DJANGO_ENV_FILE empty) so they run the same in any checkout.
test: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_ENV_FILE= $(BIN)/python -m pytest

# The suite again with PostgreSQL as the tests' database. The server-process and browser
# tests run their own servers (outages and processes already have a PostgreSQL lane inside),
# so they would only repeat themselves here.
test-postgres: $(VENV)/.dev-installed
	DJANGO_ENV_FILE= DATABASE_URL=$(POSTGRES_URL) $(BIN)/python -m pytest \
	  --ignore=tests/test_outages.py --ignore=tests/test_processes.py --ignore=tests/test_browser.py


lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

superuser: $(VENV)/.runtime-installed .env
	$(BIN)/python manage.py createsuperuser

collectstatic: $(VENV)/.runtime-installed
	$(BIN)/python manage.py collectstatic --no-input

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
