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


def test_a_failing_partner_api_fails_only_its_partition_and_keeps_the_last_good_snapshot(demo_world, var_dir):
    from pipelines.definitions import build_definitions
    from pipelines.night import run_night

    defs = build_definitions(DEMO_REGION)
    snapshot = var_dir / "lake" / "assets" / "youth_care_waitlist_raw" / "GM1690.parquet"
    with dg.DagsterInstance.get() as instance:
        good = run_night(defs, instance)
        assert all(good.waitlist_runs.values())
        last_good = pd.read_parquet(snapshot)

        demo_world.set_faults("wachtlijst_de_wolden", status=503)  # De Wolden's API is down all night
        bad = run_night(defs, instance)

        assert bad.waitlist_runs["GM1690"] is False
        assert all(ok for gemeente, ok in bad.waitlist_runs.items() if gemeente != "GM1690")
        assert bad.success, "the nightly job must go on without De Wolden's fresh data"
        pd.testing.assert_frame_equal(pd.read_parquet(snapshot), last_good)

        failed = instance.get_runs(dg.RunsFilter(job_name="waitlist_ingest", statuses=[dg.DagsterRunStatus.FAILURE]))
        assert len(failed) == 1 and failed[0].tags.get("dagster/partition") == "GM1690"
        failure = [e for e in instance.all_logs(failed[0].run_id) if e.dagster_event and e.dagster_event.is_step_failure]
        message = failure[-1].dagster_event.step_failure_data.error.to_string()
        assert "dewolden" in message and "503" in message, message


def test_a_wrong_token_is_reported_as_an_authentication_failure_without_the_token(demo_world, var_dir, monkeypatch):
    from pipelines.definitions import build_definitions

    monkeypatch.setenv("SWV_TOKEN_DE_WOLDEN", "wrong-secret-token")
    defs = build_definitions(DEMO_REGION)
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("waitlist_ingest").execute_in_process(
            partition_key="GM1690", instance=instance, raise_on_error=False
        )
        assert not result.success
        events = [str(e.event_specific_data) for e in result.all_events if e.is_step_failure]
    assert any("authentication failed" in e.lower() for e in events), events
    assert not any("wrong-secret-token" in e for e in events)


def test_a_night_can_be_replayed_on_an_earlier_evaluation_date(demo_world, var_dir):
    import datetime as dt

    from pipelines.definitions import build_definitions
    from pipelines.night import run_night

    defs = build_definitions(DEMO_REGION)
    with dg.DagsterInstance.get() as instance:
        replay = run_night(defs, instance, dt.date(2026, 9, 28))
    assert replay.success
    assert (var_dir / "outbox" / "signalen" / "2026-09-28").is_dir()
