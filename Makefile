# `make run`: serve on http://127.0.0.1:8000 (SQLite, demo account).  `make test`: lint + tests.
# `make bench`: load benchmark against the tutorial's server (bench/RESULTS.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# PostgreSQL for `make test-postgres` (CI has one on every machine).
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: run bench test test-postgres lint format superuser collectstatic clean

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

run: $(VENV)/.runtime-installed .env
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py ensure_demo_user
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# A benchmark, not a test: the project beside the tutorial's server. bench/run.py installs
# wrk (apt-get) when it is missing; its knobs: `.venv/bin/python bench/run.py --help`.
bench: $(VENV)/.runtime-installed
	$(BIN)/python bench/run.py

# Tests ignore .env (DJANGO_ENV_FILE empty) so they run the same in any checkout.
test: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_ENV_FILE= $(BIN)/python -m pytest

test-postgres: $(VENV)/.dev-installed
	DJANGO_ENV_FILE= DATABASE_URL=$(POSTGRES_URL) $(BIN)/python -m pytest

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
