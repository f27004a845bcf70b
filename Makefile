# One entry point for every routine: make demo | test | lint | bench.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install redis-server test-tools lint test demo demo-engine bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

redis-server:
	@scripts/ensure-redis-server.sh

test-tools:
	@scripts/ensure-test-tools.sh

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

test: install test-tools lint
	$(VENV)/bin/pytest -q

demo: install redis-server
	@scripts/with-redis.sh $(PY) examples/demo.py

demo-engine: install redis-server
	@scripts/with-redis.sh $(PY) examples/engine/demo.py

bench: install redis-server
	@scripts/bench.sh

clean:
	rm -rf $(VENV) .venv-bench-arq .mypy_cache .ruff_cache .pytest_cache
