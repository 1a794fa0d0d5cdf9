VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
IDP := $(VENV)/bin/idp

# make serve: gunicorn workers, 2 x cores + 1, at most 9 (each holds its own DB pool).
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); w=$$((n * 2 + 1)); [ $$w -gt 9 ] && w=9; echo $$w)
BIND ?= 127.0.0.1:8000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
BALANCER_PORT ?= 8100
.PHONY: help venv browser-deps run test serve two-nodes bench bench-compare schema

help:
	@echo "make run            venv + database + demo data, then the IdP on :5000 and the demo apps on :5001/:5002"
	@echo "                    (ports: IDP_PORT, DEMO_SCHOOL_PORT, DEMO_STAFFSAFE_PORT)"
	@echo "make test           venv + the whole test suite"
	@echo "make serve          gunicorn wsgi:app on $(BIND) with $(WORKERS) workers (reads IDP_* variables)"
	@echo "make two-nodes      two IdP nodes behind HAProxy on :$(BALANCER_PORT), with a throwaway PostgreSQL and Redis"
	@echo "make bench          the load benchmark (bench/run.py)"
	@echo "make bench-compare  the same workloads against panva's oidc-provider in memory and on Redis (and BENCH_ARGS=\"--baseline-tree DIR\": an older checkout of ours), with ratios (bench/compare.py)"

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

# Ports: IDP_PORT (5000), DEMO_SCHOOL_PORT (5001), DEMO_STAFFSAFE_PORT (5002), e.g. `IDP_PORT=5100 make run`;
# run_demo checks them before anything starts and loads the demo data for them.
run: venv
	$(IDP) db upgrade
	$(PY) -m clients.run_demo

# The browser journeys need Debian's chromium and axe-core from npm; without them they are skipped
# with a reason, so install them here when this machine can (root + apt, npm).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation; }; \
	fi
	@if [ ! -d tests/browser/node_modules/axe-core ] && command -v npm >/dev/null; then \
	  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error); \
	fi
	@[ -x /usr/bin/chromium ] || echo "note: /usr/bin/chromium is missing, so the browser tests will be skipped"

test: venv browser-deps
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

serve: venv
	$(IDP) db upgrade
	$(VENV)/bin/gunicorn --workers $(WORKERS) --bind $(BIND) wsgi:app

# Two gunicorn masters sharing a throwaway PostgreSQL cluster and redis-server, behind HAProxy
# (readiness health checks), all in a temporary folder; Ctrl-C stops and removes everything.
# Needs PostgreSQL's server binaries, redis-server and haproxy (Debian packages).
two-nodes: venv
	$(PY) -m tests.servers two-nodes --port $(BALANCER_PORT)

bench: venv
	@test -f bench/run.py || { echo "bench/run.py is missing: the load benchmark is not in this checkout yet." >&2; exit 1; }
	$(PY) bench/run.py $(BENCH_ARGS)

bench-compare: venv
	@test -f bench/compare.py || { echo "bench/compare.py is missing: the benchmark comparison is not in this checkout yet." >&2; exit 1; }
	$(PY) bench/compare.py $(BENCH_ARGS)

# Development only, before the first release: rebuild the single initial migration from the models.
schema: venv
	rm -rf /tmp/idp-schema && mkdir -p /tmp/idp-schema
	rm -f migrations/versions/0001_initial_schema.py
	IDP_INSTANCE_PATH=/tmp/idp-schema $(VENV)/bin/flask --app idp db migrate -m "initial schema" >/dev/null
	f=$$(ls migrations/versions/*_initial_schema.py) && \
	  sed -i -e 's/idp\.models\.base\.UTCDateTime(timezone=True)/sa.DateTime(timezone=True)/g' \
	         -e "s/^revision = .*/revision = '0001'/" -e 's/^Revision ID: .*/Revision ID: 0001/' $$f && \
	  mv $$f migrations/versions/0001_initial_schema.py
	@echo "migrations/versions/0001_initial_schema.py regenerated"
