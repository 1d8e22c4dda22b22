# Two commands set everything up on a fresh machine with Python 3.11: `make demo` and `make test`.
# Every target creates (or reuses) .venv from requirements.lock, the exact pinned versions.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.8
export SWV_VAR_DIR ?= $(CURDIR)/var
export DAGSTER_HOME ?= $(SWV_VAR_DIR)/dagster
# Demo tokens for the demo API server; real deployments set their own in the environment.
export SWV_TOKEN_DE_WOLDEN ?= demo-token-de-wolden
export SWV_TOKEN_WESTERVELD ?= demo-token-westerveld
export SWV_TOKEN_VVA ?= demo-token-vva

.PHONY: env demo test ui bench pictures lock clean

env: $(VENV)/.synced

$(VENV)/.synced: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip sync --quiet --compile-bytecode requirements.lock
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

## ui: the Dagster UI (webserver + daemon) on http://127.0.0.1:3000
ui: env $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m demo serve --port 8765 & api=$$!; \
	trap "kill $$api" EXIT INT TERM; \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## pictures: a demo night's outputs as their readers print them (signal digests by Chromium, handover
## workbooks by LibreOffice), first pages as PNG in docs/pictures/; a missing tool skips its pictures
pictures: demo
	$(BIN)/python -m demo pictures

## bench: the benchmark at three scales (not part of `make test`)
bench: env
	$(BIN)/python -m bench

## lock: re-resolve requirements.lock from pyproject.toml (maintainers only)
lock:
	@test -x $(BIN)/uv || (test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/python -m pip install --quiet uv==$(UV_VERSION))
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) $(SWV_VAR_DIR)
