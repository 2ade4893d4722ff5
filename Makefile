# `make run`: serve on http://127.0.0.1:8000 (SQLite, demo account).  `make test`: lint + tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# PostgreSQL for `make test-postgres` (CI has one on every machine).
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: run test test-postgres lint format superuser collectstatic clean

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
