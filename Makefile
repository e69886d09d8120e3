# mlplane: the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export UV_SYSTEM_CERTS := 1
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
MEMBERS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
# Tests talk to real services on localhost unless these say otherwise.
export MLPLANE_TEST_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
export MLPLANE_TEST_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: install lock run test test-only lint format bench services tools docs

$(VENV)/.installed: requirements.lock $(MEMBERS)
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@[ -x $(PY) ] || uv venv --quiet --python 3.11 $(VENV)
	uv pip sync --quiet --python $(PY) requirements.lock
	uv pip install --quiet --python $(PY) --no-deps $(foreach m,$(dir $(MEMBERS)),-e $(m))
	@touch $@

install: $(VENV)/.installed  ## create .venv from the committed lock

lock:  ## re-resolve after changing a pyproject; writes requirements.lock (no URLs)
	uv lock
	uv export --frozen --all-packages --all-groups --no-hashes --no-emit-workspace \
		--no-header --no-annotate --format requirements-txt -o requirements.lock

run: install  ## the whole platform on embedded defaults, gateway on 127.0.0.1:8080
	$(VENV)/bin/mlplane up

services:  ## start PostgreSQL, RabbitMQ and Redis if they do not answer
	bash scripts/ensure-services.sh
	bash scripts/ensure-browser.sh

tools:  ## promtool and kubectl for tests/deploy, installed if missing
	bash scripts/ensure-tools.sh

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy libs bench $(wildcard services/*/src)

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install services tools lint test-only  ## install, start what tests need, lint, pytest (docs included)

test-only:
	$(VENV)/bin/pytest $(PYTEST_ARGS)

docs: install  ## the documentation site into site/ (strict: a broken link fails); mkdocs serve to browse
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: install services  ## every benchmark, each printing a JSON line with "ratio"
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b $(BENCH_ARGS) || exit 1; done
