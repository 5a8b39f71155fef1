# The README's commands. Every target sets up what it needs first, so each works on a
# fresh clone: `make run` (the app with demo data) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Two workers fit this 2-core machine; override with PYTEST_WORKERS=0 for a serial run.
PYTEST_WORKERS ?= 2

.PHONY: run test lint bench setup setup-dev browser decoder proto migrate clean

# requirements.txt installs producer/ editable: its code is read in place, but a change to
# its metadata (name, version, packages) takes a reinstall.
$(VENV)/.installed: requirements.txt producer/pyproject.toml
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

# The DashStream tests check our frames with an independent decoder run by node
# (protobufjs + fzstd, pinned in its package-lock.json).
DECODER := tests/dashstream_decoder
$(DECODER)/node_modules/.installed: $(DECODER)/package.json $(DECODER)/package-lock.json
	cd $(DECODER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

decoder: $(DECODER)/node_modules/.installed

# Regenerates traces/proto/dashstream_pb2.py(i) from traces/proto/dashstream.proto (the
# generated code is committed; the stub is marked for mypy, which checks our use of it).
proto: setup-dev
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. traces/proto/dashstream.proto
	sed -i '1i # mypy: ignore-errors' traces/proto/dashstream_pb2.pyi

migrate: setup
	$(PY) manage.py migrate --noinput

# Serves the app and, beside it, a simulated agent that streams a new run every few
# seconds, so a new user sees runs arrive live, and the OTLP/gRPC receiver on
# OTLP_GRPC_PORT (4317; OTLP/HTTP is Daphne's /v1/traces). Ctrl-C stops them all.
# SITE_URL (unless set) is the address served: its origin is the one trusted for forms
# and websockets. The app runs as a user meets it, DEBUG off (the app's own error
# pages), unless DEBUG=true is given; its SECRET_KEY, unless set, is made once and kept
# in VAR_DIR/secret_key.
# The demo's webhook receivers listen on loopback, which webhooks refuse by default.
run: export ALERT_WEBHOOK_ALLOW_PRIVATE ?= true
run: migrate
	$(PY) manage.py seed_demo
	mkdir -p var
	@export SITE_URL="$${SITE_URL:-http://$(HOST):$(PORT)}"; \
	  export DEBUG="$${DEBUG:-false}"; \
	  export ALLOWED_HOSTS="$${ALLOWED_HOSTS:-127.0.0.1,localhost,[::1],$(HOST)}"; \
	  key_file="$${VAR_DIR:-var}/secret_key"; mkdir -p "$${VAR_DIR:-var}"; \
	  [ -s "$$key_file" ] || { $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > "$$key_file"; chmod 600 "$$key_file"; }; \
	  export SECRET_KEY="$${SECRET_KEY:-$$(cat "$$key_file")}"; \
	  trap 'kill 0' INT TERM EXIT; \
	  if [ -n "$$REDIS_URL" ]; then $(VENV)/bin/celery -A dashflow_site worker -B --schedule var/celerybeat-schedule --loglevel INFO > var/celery.log 2>&1 & fi; \
	  $(PY) manage.py simulate_run --project demo --url http://$(HOST):$(PORT) \
	    --forever --pause 8 --fail-rate 0.25 --loops 2 > var/simulate_run.log 2>&1 & \
	  $(PY) manage.py otlp_grpc --host $(HOST) > var/otlp_grpc.log 2>&1 & \
	  $(VENV)/bin/daphne -b $(HOST) -p $(PORT) dashflow_site.asgi:application

test: setup-dev browser decoder
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

bench: setup-dev
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/large_ingest.py
	$(PY) benchmarks/diff.py
	$(PY) benchmarks/live.py
	$(PY) benchmarks/exports.py
	$(PY) benchmarks/runlist.py
	$(PY) benchmarks/ui.py
	$(PY) benchmarks/dashboard.py
	$(PY) benchmarks/compare.py
	$(PY) benchmarks/request_cpu.py
	$(PY) benchmarks/otlp.py
	$(PY) benchmarks/hardening.py
	$(PY) benchmarks/retention.py

clean:
	rm -rf $(VENV) var staticfiles
