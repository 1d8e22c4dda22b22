"""A small demo region in a folder of its own, for the operations tests (PostgreSQL, Celery, UI).

``demo_environment`` points every setting at one runtime folder and restores the environment
afterwards; ``generate_demo`` writes the deliveries there; ``serve_demo_api`` serves the partner
APIs on a free port. Same seed, same deliveries: two folders generated alike hold the same bytes.
``postgres_databases`` gives fresh databases on the test server, ``latest_row_counts`` reads what
an instance recorded, ``stop_process_group`` stops the services a test started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import DEMO_REGION, POSTGRES_ADMIN_URL, PROJECT, _service_missing

PUPILS = 600
SEED = 7
VENV_BIN = PROJECT / ".venv" / "bin"
LOCAL_PROFILE = PROJECT / "deploy" / "dagster.local.yaml"  # the embedded default
PRODUCTION_PROFILE = PROJECT / "deploy" / "dagster.postgres.yaml"


@contextlib.contextmanager
def demo_environment(var: Path, **settings: str | None) -> Iterator[dict[str, str]]:
    """Set SWV_VAR_DIR, DAGSTER_HOME (``var/dagster``), the demo secrets and ``settings`` (None unsets)."""
    from demo.__main__ import _demo_environment
    from settings.region import load_region

    saved = dict(os.environ)
    try:
        os.environ.pop("SWV_WAREHOUSE_URL", None)
        os.environ.update(SWV_VAR_DIR=str(var), DAGSTER_HOME=str(var / "dagster"), SWV_REGION_FILE=str(DEMO_REGION))
        for name, value in settings.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _demo_environment(load_region(DEMO_REGION))
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def generate_demo(var: Path, instance_profile: Path = LOCAL_PROFILE, pupils: int | None = PUPILS) -> None:
    """The demo deliveries under ``var/sources`` (``pupils``: None is the whole region, as ``make demo``),
    and ``instance_profile`` as ``var/dagster/dagster.yaml``."""
    from demo.generate import generate_region
    from settings.region import load_region

    (var / "dagster").mkdir(parents=True, exist_ok=True)
    (var / "dagster" / "dagster.yaml").write_text(instance_profile.read_text())
    generate_region(load_region(DEMO_REGION), var / "sources", var / "demo" / "truth.json", seed=SEED, pupils=pupils)


@contextlib.contextmanager
def serve_demo_api(var: Path) -> Iterator[str]:
    """The partner APIs of ``var/sources/api`` on a free port, with the demo's faults; sets SWV_DEMO_API."""
    from demo.__main__ import DEMO_FAULTS
    from demo.api_server import DemoApiServer
    from settings.region import load_region

    with DemoApiServer(load_region(DEMO_REGION), var / "sources" / "api", faults=DEMO_FAULTS) as server:
        os.environ["SWV_DEMO_API"] = server.url
        yield server.url


@contextlib.contextmanager
def postgres_databases(*roles: str) -> Iterator[dict[str, sa.URL]]:
    """A fresh database per role on the test server (skipped when unreachable), dropped afterwards.

    URLs as ``sqlalchemy.URL`` (with the password): ``url_with_driver`` makes the string a service wants.
    """
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    names = {role: f"swv_test_{role}_{uuid.uuid4().hex[:8]}" for role in roles}
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        admin.dispose()
        _service_missing("PostgreSQL on 127.0.0.1:5432", error)
    server = sa.make_url(POSTGRES_ADMIN_URL)
    try:
        yield {role: server.set(database=name) for role, name in names.items()}
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def url_with_driver(url: sa.URL, driver: str) -> str:
    """``url`` as a string with ``driver`` (e.g. ``postgresql+psycopg2``) and its password kept."""
    return url.set(drivername=driver).render_as_string(hide_password=False)


def latest_row_counts(instance) -> dict[tuple[str, str | None], int]:
    """``dagster/row_count`` of the latest materialization of every asset (and partition) in ``instance``."""
    counts = {}
    for key in instance.get_asset_keys():
        for record in instance.fetch_materializations(key, limit=1000).records:  # newest first
            materialization = record.asset_materialization
            slot = (key.to_user_string(), materialization.partition)
            if slot not in counts and "dagster/row_count" in materialization.metadata:
                counts[slot] = materialization.metadata["dagster/row_count"].value
    return counts


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop every process of the group a test started (``start_new_session=True``).

    SIGTERM first, so a Celery worker or the webserver shuts down cleanly; SIGKILL whatever is
    still alive after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    while time.monotonic() < deadline:
        process.poll()  # reap the leader, or the group never looks empty
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
