# Two commands set everything up on a fresh machine with Python 3.11: `make demo` and `make test`.
# Every target creates (or reuses) .venv from requirements-dev.lock, the exact pinned versions of
# the production lock (requirements.lock) plus the development tools; see "Locks" in docs/deploy.md.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.8
IMAGE  ?= swv-pipeline:$(shell git describe --always --dirty 2>/dev/null || echo dev)
export SWV_VAR_DIR ?= $(CURDIR)/var
export DAGSTER_HOME ?= $(SWV_VAR_DIR)/dagster

.PHONY: env demo test test-fast test-warnings ui bench pictures screenshots lock image check-production-lock clean

env: $(VENV)/.synced

$(VENV)/.synced: requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip sync --quiet --compile-bytecode requirements-dev.lock
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install --quiet --no-deps --compile-bytecode -e .
	@touch $@

## demo: generate the demo region, serve its APIs, run the nightly job end to end, print the outputs
demo: env $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m demo run

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.local.yaml
	@mkdir -p $(DAGSTER_HOME)
	@test -f $@ || cp deploy/dagster.local.yaml $@

## test: the whole test suite (PostgreSQL, Celery and browser tests included where the services run)
test: env
	$(BIN)/python -m pytest

## test-fast: everything but the tests marked slow (whole demo nights, services started per module)
test-fast: env
	$(BIN)/python -m pytest -m "not slow"

## test-warnings: the whole suite with the deprecation and supersession warnings our code causes as errors
## (before a Dagster upgrade, docs/deploy.md); warnings inside other packages stay warnings
test-warnings: env
	$(BIN)/python -m pytest --deprecations-as-errors

## ui: the Dagster UI (webserver + daemon) on http://127.0.0.1:3000, with the demo's secrets and APIs
UI_PORT ?= 3000
DEMO_API_PORT ?= 8765
ui: env $(DAGSTER_HOME)/dagster.yaml
	eval "$$($(BIN)/python -m demo env)"; \
	export SWV_DEMO_API=http://127.0.0.1:$(DEMO_API_PORT); \
	$(BIN)/python -m demo serve --port $(DEMO_API_PORT) & api=$$!; \
	trap "kill $$api" EXIT INT TERM; \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

## pictures: a demo night's outputs as their readers print them (signal digests by Chromium, handover
## workbooks by LibreOffice), first pages as PNG in docs/pictures/; a missing tool skips its pictures
pictures: demo
	$(BIN)/python -m demo pictures

## screenshots: the README's pictures of the UI, taken again: the browser tests (tests/test_ui.py) start
## `dagster dev` on a demo night, open the pages in Debian's Chromium (/usr/bin/chromium) with Playwright
## and write docs/screenshots/*.png; a page that no longer shows what they look for fails the target
screenshots: env
	SWV_UPDATE_SCREENSHOTS=1 CI=1 $(BIN)/python -m pytest tests/test_ui.py -p no:cacheprovider -q

## bench: the benchmark at three scales, then 5, 11 and 25 municipalities at region scale and the production
## path (not part of `make test`; bench/README.md)
bench: env
	$(BIN)/python -m bench

## lock: re-resolve the locks from pyproject.toml (maintainers only). The development and Kubernetes
## locks are constrained by the production lock, so all three pin the same versions of what they share.
LOCK := $(BIN)/uv pip compile pyproject.toml --quiet --python-version 3.11 --python-platform linux
lock:
	@test -x $(BIN)/uv || (test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/python -m pip install --quiet uv==$(UV_VERSION))
	$(LOCK) -o requirements.lock
	$(LOCK) --extra dev --constraint requirements.lock -o requirements-dev.lock
	$(LOCK) --extra k8s --constraint requirements.lock -o requirements-k8s.lock

## image: the code location's image (deploy/Dockerfile with IMAGE_LOCK, the production lock unless
## IMAGE_LOCK=requirements-k8s.lock); without a Docker engine it says so and checks the production lock instead
IMAGE_LOCK ?= requirements.lock
image:
	@if docker info >/dev/null 2>&1; then \
	  docker build -f deploy/Dockerfile --build-arg LOCK=$(IMAGE_LOCK) -t $(IMAGE) . ; \
	else \
	  echo "Docker has no engine on this machine: the image $(IMAGE) was NOT built."; \
	  echo "Checking what can be checked without one (make check-production-lock)."; \
	  $(MAKE) --no-print-directory check-production-lock; \
	fi

## check-production-lock: a fresh venv from requirements.lock only (no test, demo or bench packages)
## loads the code location and runs a demo night (tests/test_production_lock.py)
check-production-lock: env
	$(BIN)/python -m pytest tests/test_production_lock.py

clean:
	rm -rf $(VENV) $(SWV_VAR_DIR)
