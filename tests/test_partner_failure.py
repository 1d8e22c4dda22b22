"""A partner that fails fails only its own municipality; the night goes on with its last good snapshot."""

from __future__ import annotations

import os

import dagster as dg
import pandas as pd
import pytest

from tests.conftest import DEMO_REGION

pytestmark = pytest.mark.slow  # whole demo nights


@pytest.fixture
def demo_world(var_dir, monkeypatch):
    from demo.__main__ import _demo_environment
    from demo.api_server import DemoApiServer
    from demo.generate import generate_region
    from settings.region import load_region

    region = load_region(DEMO_REGION)
    monkeypatch.setenv("DAGSTER_HOME", str(var_dir / "dagster"))
    (var_dir / "dagster").mkdir()
    for key in [k for k in os.environ if k.startswith("SWV_TOKEN_")]:
        monkeypatch.delenv(key)
    _demo_environment(region)
    generate_region(region, var_dir / "sources", var_dir / "demo" / "truth.json", seed=11, pupils=600)
    with DemoApiServer(region, var_dir / "sources" / "api") as server:
        monkeypatch.setenv("SWV_DEMO_API", server.url)
        yield server


def _check(result, name: str):
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_a_failing_partner_api_fails_only_its_own_check_and_keeps_the_last_good_snapshot(demo_world, var_dir):
    from pipelines.definitions import build_definitions
    from pipelines.night import run_night

    defs = build_definitions(DEMO_REGION)
    raw = var_dir / "lake" / "assets" / "youth_care_waitlist_raw" / "_all.parquet"

    def de_wolden() -> pd.DataFrame:
        rows = pd.read_parquet(raw)
        return rows[rows["source_id"] == "wachtlijst_de_wolden"].drop(columns="fetched_at").reset_index(drop=True)

    with dg.DagsterInstance.get() as instance:
        good = run_night(defs, instance)
        assert all(good.waitlists.values())
        last_good = de_wolden()
        assert len(last_good)

        demo_world.set_faults("wachtlijst_de_wolden", status=503)  # De Wolden's API is down all night
        bad = run_night(defs, instance)

    assert bad.waitlists["GM1690"] is False
    assert all(ok for gemeente, ok in bad.waitlists.items() if gemeente != "GM1690")
    assert bad.success, "the night must go on without De Wolden's fresh data"
    pd.testing.assert_frame_equal(de_wolden(), last_good)
    failed = _check(bad.nightly, "delivery_wachtlijst_de_wolden")
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert "dewolden" in failed.description and "503" in failed.description, failed.description
    assert _check(bad.nightly, "delivery_wachtlijst_hoogeveen").passed


def test_a_wrong_token_is_reported_as_an_authentication_failure_without_the_token(demo_world, var_dir, monkeypatch):
    from pipelines.definitions import build_definitions

    monkeypatch.setenv("SWV_TOKEN_DE_WOLDEN", "wrong-secret-token")
    defs = build_definitions(DEMO_REGION)
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("waitlist_ingest").execute_in_process(instance=instance, raise_on_error=False)
    failed = _check(result, "delivery_wachtlijst_de_wolden")
    assert not failed.passed
    assert "authentication failed" in failed.description.lower(), failed.description
    assert not any("wrong-secret-token" in str(e.event_specific_data) for e in result.all_events)
    assert _check(result, "delivery_wachtlijst_westerveld").passed


def test_a_night_can_be_replayed_on_an_earlier_evaluation_date(demo_world, var_dir):
    import datetime as dt

    from pipelines.definitions import build_definitions
    from pipelines.night import run_night

    defs = build_definitions(DEMO_REGION)
    with dg.DagsterInstance.get() as instance:
        replay = run_night(defs, instance, dt.date(2026, 9, 28))
    assert replay.success
    assert (var_dir / "outbox" / "signalen" / "2026-09-28").is_dir()
