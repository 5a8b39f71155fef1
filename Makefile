# The README's commands. Every target sets up what it needs first, so each works on a
# fresh clone: `make run` (the app with demo data) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Two workers fit this 2-core machine; override with PYTEST_WORKERS=0 for a serial run.
PYTEST_WORKERS ?= 2

.PHONY: run test lint bench setup setup-dev browser migrate clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# Debian's Chromium drives the browser tests (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

migrate: setup
	$(PY) manage.py migrate --noinput

# Serves the app and, beside it, a simulated agent that streams a new run every few
# seconds, so a new user sees runs arrive live. Ctrl-C stops both.
run: migrate
	$(PY) manage.py seed_demo
	mkdir -p var
	@trap 'kill 0' INT TERM EXIT; \
	  $(PY) manage.py simulate_run --project demo --url http://$(HOST):$(PORT) \
	    --forever --pause 8 --fail-rate 0.25 --loops 2 > var/simulate_run.log 2>&1 & \
	  $(VENV)/bin/daphne -b $(HOST) -p $(PORT) dashflow_site.asgi:application

test: setup-dev browser
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

bench: setup-dev
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/diff.py
	$(PY) benchmarks/live.py
	$(PY) benchmarks/ui.py

clean:
	rm -rf $(VENV) var staticfiles
