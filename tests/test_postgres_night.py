"""The production profile: a night on PostgreSQL gives what the embedded default gives on SQLite.

One module-scoped fixture runs the same small demo night twice, from the same deliveries and the
same partner API server: once on the embedded default (SQLite instance, SQLite warehouse) and once
with ``deploy/dagster.postgres.yaml`` as the instance's dagster.yaml and the warehouse on
PostgreSQL, each in a fresh database that is dropped afterwards. The tests compare the two.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.conftest import DEMO_REGION
from tests.demo_region import (PRODUCTION_PROFILE, demo_environment, generate_demo, latest_row_counts,
                               postgres_databases, serve_demo_api, url_with_driver)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # two whole demo nights


@pytest.fixture(scope="module")
def databases():
    """Fresh databases for the Dagster instance and the warehouse, as the production profile wants them."""
    with postgres_databases("dagster", "warehouse") as urls:
        # psycopg2 for both: the one PostgreSQL driver in the lock (docs/deploy.md).
        yield {"dagster": url_with_driver(urls["dagster"], "postgresql+psycopg2"),
               "warehouse": url_with_driver(urls["warehouse"], "postgresql+psycopg2")}


@pytest.fixture(scope="module")
def nights(tmp_path_factory, databases):
    sqlite_var, postgres_var = tmp_path_factory.mktemp("sqlite"), tmp_path_factory.mktemp("postgres")
    with demo_environment(sqlite_var):
        generate_demo(sqlite_var)
        with serve_demo_api(sqlite_var) as api:
            embedded = _run_night(sqlite_var)
            with demo_environment(postgres_var, SWV_DEMO_API=api, SWV_DAGSTER_PG_URL=databases["dagster"],
                                  SWV_WAREHOUSE_URL=databases["warehouse"]):
                generate_demo(postgres_var, PRODUCTION_PROFILE)
                production = _run_night(postgres_var)
    return {"sqlite": embedded, "postgres": production}


def _run_night(var: Path) -> dict:
    """Run a night in the current environment and collect what it left behind."""
    from pipelines.definitions import build_definitions
    from pipelines.night import run_night

    defs = build_definitions(DEMO_REGION)
    with dg.DagsterInstance.get() as instance:
        result = run_night(defs, instance)
        state = {
            "success": result.success,
            "waitlists": result.waitlists,
            "exports": result.exports,
            "instance": type(instance.run_storage).__name__,
            "run_count": len(instance.get_run_records()),
            "row_counts": latest_row_counts(instance),
            "checks": _check_outcomes(instance, defs),
        }
    with dg.build_resources({"warehouse": defs.resources["warehouse"]}) as resources:  # SWV_WAREHOUSE_URL, resolved
        try:
            state["quarantine"] = resources.warehouse.quarantine_entries(open_only=False)
        finally:
            resources.warehouse.dispose()
    state["outbox"] = _outbox_digest(var / "outbox")
    return state


def _check_outcomes(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, tuple[bool, str]]:
    """(passed, severity) of the latest evaluation of every asset check."""
    keys = list(defs.resolve_asset_graph().asset_check_keys)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    outcomes = {}
    for key, record in latest.items():
        evaluation = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
        if isinstance(evaluation, dg.AssetCheckEvaluation):
            outcomes[key.to_user_string()] = (evaluation.passed, evaluation.severity.value)
    return outcomes


def _outbox_digest(outbox: Path) -> dict[str, str]:
    """sha256 of every outbox file; a manifest without its write time (``*_at`` keys), which differs per night."""

    def without_times(value):
        if isinstance(value, dict):
            return {k: without_times(v) for k, v in value.items() if not k.endswith("_at")}
        if isinstance(value, list):
            return [without_times(v) for v in value]
        return value

    digest = {}
    for path in sorted(p for p in outbox.rglob("*") if p.is_file()):
        content = path.read_bytes()
        if path.name == "manifest.json":
            content = json.dumps(without_times(json.loads(content)), sort_keys=True).encode()
        digest[str(path.relative_to(outbox))] = hashlib.sha256(content).hexdigest()
    return digest


def test_the_production_profile_keeps_runs_and_events_in_postgresql(nights, databases):
    production = nights["postgres"]
    assert production["instance"] == "PostgresRunStorage"
    engine = sa.create_engine(databases["dagster"])
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
            events = conn.execute(sa.text("SELECT count(*) FROM event_logs")).scalar_one()
    finally:
        engine.dispose()
    assert runs == production["run_count"] > 0
    assert events > 0


def test_the_night_succeeds_on_both_backends(nights):
    for backend, night in nights.items():
        assert night["success"], backend
        assert night["waitlists"] and all(night["waitlists"].values()), (backend, night["waitlists"])
        assert night["exports"] and all(night["exports"].values()), (backend, night["exports"])


def test_postgresql_quarantines_the_same_rows_by_key(nights):
    key = ["source_id", "delivery", "row_fingerprint", "column", "rule"]

    def entries(night):
        frame = night["quarantine"]
        return {tuple(row[:-2]): tuple(row[-2:]) for row in frame[[*key, "delivery_row", "message"]].itertuples(index=False)}

    embedded, production = entries(nights["sqlite"]), entries(nights["postgres"])
    assert embedded, "the demo plants defects: the quarantine cannot be empty"
    assert production == embedded


def test_postgresql_records_the_same_row_count_for_every_asset(nights):
    embedded, production = nights["sqlite"]["row_counts"], nights["postgres"]["row_counts"]
    assert any(asset == "youth_care_waitlist_raw" for asset, _ in embedded)
    assert production == embedded


def test_postgresql_records_the_same_asset_check_outcomes(nights):
    embedded, production = nights["sqlite"]["checks"], nights["postgres"]["checks"]
    assert embedded
    assert production == embedded


def test_postgresql_writes_the_same_outbox_files_with_the_same_content(nights):
    embedded, production = nights["sqlite"]["outbox"], nights["postgres"]["outbox"]
    assert any(path.endswith("overdracht.csv") for path in embedded)
    assert sorted(production) == sorted(embedded)
    differing = [path for path in embedded if production[path] != embedded[path]]
    assert not differing, differing[:5]
