"""Shared fixtures: an isolated runtime-state folder and a throw-away PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

PROJECT = Path(__file__).resolve().parent.parent
DEMO_REGION = PROJECT / "regions" / "vo2203.yaml"
# No wall-clock assertions in tests (speed is `make bench`'s business): Hypothesis's per-example deadline and
# its too-slow health check fail on a busy machine, not on a wrong answer.
settings.register_profile("swv", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("swv")

# Where Python attributes a warning our own code causes (Dagster's deprecation warnings point at the caller).
OUR_MODULES = r"(assets|connectors|pipelines|schemas|settings|demo|bench|tests)\b"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--deprecations-as-errors", action="store_true",
                     help="fail on the DeprecationWarning and FutureWarning (Dagster's supersession) that our "
                          "code causes; warnings inside other packages stay warnings (docs/deploy.md)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--deprecations-as-errors"):
        for category in ("DeprecationWarning", "FutureWarning"):
            config.addinivalue_line("filterwarnings", f"error::{category}:{OUR_MODULES}")


POSTGRES_ADMIN_URL = os.environ.get("SWV_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point SWV_VAR_DIR (and so every runtime path) at a fresh folder."""
    var = tmp_path / "var"
    var.mkdir()
    monkeypatch.setenv("SWV_VAR_DIR", str(var))
    monkeypatch.delenv("SWV_WAREHOUSE_URL", raising=False)
    return var


def _service_missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error.__class__.__name__}); see 'How to verify' in docs/deploy.md"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so this test must run: {message}")
    pytest.skip(message)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database on 127.0.0.1, dropped afterwards; skip (or fail under CI) without a server."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"swv_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        _service_missing("PostgreSQL on 127.0.0.1:5432", error)
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path: Path) -> Iterator[sa.Engine]:
    """A warehouse engine on a fresh SQLite file, and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield sa.create_engine(f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
        return
    with postgres_database() as url:
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    with postgres_database() as url:
        yield url
