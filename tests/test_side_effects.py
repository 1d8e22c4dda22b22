"""Side effects before outputs: a step whose write fails is not recorded as materialized, and nothing
downstream runs on what it half did.

One small demo night is materialized in process; each test then materializes a step and what follows
it again with one of its writes failing for real (a folder where a file must go, a warehouse table
whose trigger refuses the insert, as a full disk or a lost connection would), and looks at what the
instance recorded.
"""

from __future__ import annotations

import os

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.conftest import DEMO_REGION

pytestmark = pytest.mark.slow

PUPILS = 300


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from demo.__main__ import _demo_environment
    from demo.api_server import DemoApiServer
    from demo.generate import generate_region
    from pipelines.definitions import build_definitions
    from settings.region import load_region

    var = tmp_path_factory.mktemp("side-effects")
    saved = dict(os.environ)
    try:
        os.environ.pop("SWV_WAREHOUSE_URL", None)
        os.environ["SWV_VAR_DIR"] = str(var)
        region = load_region(DEMO_REGION)
        _demo_environment(region)
        generate_region(region, var / "sources", var / "truth.json", seed=7, pupils=PUPILS)
        with DemoApiServer(region, var / "sources" / "api") as server, dg.DagsterInstance.ephemeral() as instance:
            os.environ["SWV_DEMO_API"] = server.url
            defs = build_definitions(DEMO_REGION)
            assets = list(defs.assets)
            assert dg.materialize(assets, resources=defs.resources, instance=instance).success
            yield var, defs, assets, instance
    finally:
        os.environ.clear()
        os.environ.update(saved)


def materializations(instance, key: str) -> int:
    return len(instance.fetch_materializations(dg.AssetKey(key), limit=100).records)


def again(night, selection: list[str], **broken):
    """Materialize ``selection`` once more with the ``broken`` resources; returns the run's result."""
    _, defs, assets, instance = night
    return dg.materialize(assets, resources={**defs.resources, **broken}, instance=instance, selection=selection,
                          raise_on_error=False)


def refusing_warehouse(var, table: str):
    """A fresh warehouse whose ``table`` refuses every insert, as a database that is full would."""
    from connectors.warehouse import Warehouse

    warehouse = Warehouse(url=f"sqlite:///{var / f'refusing-{table}.sqlite'}")
    warehouse.ensure_schema()
    from connectors import alert_store, delivery_holds, export_log  # their tables live in their own MetaData

    for tables in (alert_store.METADATA, delivery_holds.METADATA, export_log.METADATA):
        tables.create_all(warehouse.engine)
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                             "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"))
    return warehouse


def test_a_raw_snapshot_that_cannot_be_stored_leaves_the_raw_asset_unmaterialized(night, tmp_path):
    from connectors.lake import RawSnapshots

    _, _, _, instance = night
    not_a_folder = tmp_path / "lake"
    not_a_folder.write_text("a file where the lake's folder should be")
    before = {key: materializations(instance, key) for key in ("vo_enrolment_raw", "vo_enrolment")}
    result = again(night, ["vo_enrolment_raw", "vo_enrolment"], raw_snapshots=RawSnapshots(root=str(not_a_folder)))
    assert not result.success
    assert {key: materializations(instance, key) for key in before} == before


def test_quarantine_entries_that_cannot_be_written_leave_the_validated_asset_unmaterialized(night):
    var, _, _, instance = night
    before = {key: materializations(instance, key) for key in ("po_transfers", "po_vo_handovers")}
    result = again(night, ["po_transfers_raw", "po_transfers", "po_vo_handovers"],
                   warehouse=refusing_warehouse(var, "quarantine"))
    assert not result.success
    assert materializations(instance, "po_transfers") == before["po_transfers"]
    assert materializations(instance, "po_vo_handovers") == before["po_vo_handovers"], "nothing downstream ran"


def test_a_pupil_history_that_cannot_be_written_leaves_the_pupils_unmaterialized(night):
    var, _, _, instance = night
    keys = ("pupils", "pupil_conflicts", "po_vo_handovers", "thuiszitter_alerts")
    before = {key: materializations(instance, key) for key in keys}
    result = again(night, ["pupils", "pupil_conflicts", "po_vo_handovers", "thuiszitter_alerts"],
                   warehouse=refusing_warehouse(var, "pupil_history"))
    assert not result.success
    assert {key: materializations(instance, key) for key in keys} == before


def test_alerts_that_cannot_be_recorded_leave_the_alert_asset_unmaterialized(night):
    var, _, _, instance = night
    before = {key: materializations(instance, key) for key in ("thuiszitter_alerts", "export_facts")}
    result = again(night, ["thuiszitter_alerts", "export_facts"], warehouse=refusing_warehouse(var, "alert_nights"))
    assert not result.success
    assert {key: materializations(instance, key) for key in before} == before


def test_handover_files_that_cannot_be_written_leave_the_handovers_unmaterialized(night, tmp_path):
    from connectors.outbox import Outbox

    _, _, _, instance = night
    not_a_folder = tmp_path / "outbox"
    not_a_folder.write_text("a file where the outbox should be")
    before = materializations(instance, "vo_mbo_handovers")
    result = again(night, ["vo_mbo_handovers"], outbox=Outbox(root=str(not_a_folder)))
    assert not result.success
    assert materializations(instance, "vo_mbo_handovers") == before
