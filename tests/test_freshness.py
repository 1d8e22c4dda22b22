"""A source is stale when its newest delivery is older than cadence.max_age_hours, or never came."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml

from assets.bronnen.freshness import Folders, build_freshness_checks, freshness_moment, stale_sources
from connectors.lake import KeptDelivery, RawSnapshots
from pipelines.definitions import build_definitions
from pipelines.freshness import FRESHNESS_JOB, build_freshness_job_and_schedule
from settings.paths import var_layout
from settings.region import load_region
from tests.conftest import DEMO_REGION

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
EVALUATION_DATE = dt.date(2026, 10, 5)
NIGHT = dt.datetime(2026, 10, 5, 2, 0, tzinfo=AMSTERDAM)  # what a replay of 5 October is judged at
DE_WOLDEN_URL = "http://127.0.0.1:8765/dewolden/api/v1/wachtlijst"


@pytest.fixture
def folders(var_dir: Path) -> Folders:
    layout = var_layout()
    return Folders(sources=layout.sources, lake=layout.lake)


@pytest.fixture(scope="module")
def region():
    return load_region(DEMO_REGION)


def deliver(folders: Folders, name: str, *, hours_before: float, now: dt.datetime = NIGHT) -> Path:
    path = folders.sources / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"header\n")
    _set_mtime(path, now - dt.timedelta(hours=hours_before))
    return path


def pulled(folders: Folders, source_id: str, url: str, *, hours_before: float) -> None:
    """A good API pull, recorded the way the raw ingest records it."""
    read_at = (NIGHT - dt.timedelta(hours=hours_before)).astimezone(dt.UTC).isoformat(timespec="seconds")
    RawSnapshots(root=str(folders.lake)).keep(source_id, [KeptDelivery(url, "0" * 64, 10, read_at)])


def _set_mtime(path: Path, when: dt.datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


# --------------------------------------------------------------------------- stale_sources


def test_a_source_whose_newest_file_is_older_than_its_cadence_is_stale(region, folders):
    deliver(folders, "vo/inschrijvingen_02AB00.csv", hours_before=40)  # cadence 36 h
    assert "vo_inschrijvingen" in stale_sources(region, folders, NIGHT)


def test_a_source_delivered_within_its_cadence_is_fresh(region, folders):
    deliver(folders, "vo/inschrijvingen_02AB00.csv", hours_before=4)
    assert "vo_inschrijvingen" not in stale_sources(region, folders, NIGHT)


def test_the_newest_file_of_a_source_counts(region, folders):
    deliver(folders, "vo/inschrijvingen_02AB00.csv", hours_before=200)
    deliver(folders, "vo/inschrijvingen_04CD00.csv", hours_before=4)
    assert "vo_inschrijvingen" not in stale_sources(region, folders, NIGHT)


def test_each_source_has_its_own_cadence(region, folders):
    deliver(folders, "vo/verzuim_02AB00.csv", hours_before=100)  # weekly absence: 192 h allowed
    deliver(folders, "vo/inschrijvingen_02AB00.csv", hours_before=100)  # enrolment: 36 h
    stale = stale_sources(region, folders, NIGHT)
    assert "vo_verzuim" not in stale
    assert "vo_inschrijvingen" in stale


def test_a_municipality_that_never_delivered_is_stale(region, folders):
    deliver(folders, "jeugdhulp/meppel/wachtlijst.xlsx", hours_before=4)
    stale = stale_sources(region, folders, NIGHT)
    assert "wachtlijst_hoogeveen" in stale
    assert "wachtlijst_meppel" not in stale


def test_an_api_source_counts_from_its_last_good_pull(region, folders):
    assert "wachtlijst_de_wolden" in stale_sources(region, folders, NIGHT)
    pulled(folders, "wachtlijst_de_wolden", DE_WOLDEN_URL, hours_before=3)
    assert "wachtlijst_de_wolden" not in stale_sources(region, folders, NIGHT)


def test_uploads_in_progress_do_not_count_as_a_delivery(region, folders):
    deliver(folders, "vo/.inschrijvingen_02AB00.csv", hours_before=1)
    assert "vo_inschrijvingen" in stale_sources(region, folders, NIGHT)


def test_the_runtime_layout_can_be_passed_as_is(region, folders):
    deliver(folders, "po/bestuur_1.csv", hours_before=4)
    assert "po_overdracht" not in stale_sources(region, var_layout(), NIGHT)


def test_now_must_say_its_timezone(region, folders):
    with pytest.raises(ValueError, match="timezone"):
        stale_sources(region, folders, dt.datetime(2026, 10, 5, 2, 0))


def test_today_is_judged_now_and_a_replayed_day_at_its_night():
    clock = dt.datetime(2026, 11, 28, 13, 30, tzinfo=dt.UTC)
    assert freshness_moment(dt.date(2026, 11, 28), clock) == clock
    assert freshness_moment(EVALUATION_DATE, clock) == NIGHT


# --------------------------------------------------------------------------- the checks in Dagster


def _run_freshness_checks(region_path: Path) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """Run the checks-only job in process on a temporary instance, as the 07:00 schedule would."""
    defs = build_definitions(region_path)
    # Run config replaces a resource's whole configuration, so the replay names the region file too.
    run_config = {"resources": {"region_config": {"config": {"path": str(region_path),
                                                             "evaluation_date": EVALUATION_DATE.isoformat()}}}}
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(FRESHNESS_JOB).execute_in_process(instance=instance, run_config=run_config)
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_the_checks_show_each_municipality_on_the_waitlist_asset(folders):
    deliver(folders, "jeugdhulp/meppel/wachtlijst.xlsx", hours_before=4)
    deliver(folders, "jeugdhulp/steenwijkerland/wachtlijst.csv", hours_before=50)
    evaluations = _run_freshness_checks(DEMO_REGION)

    waitlist = {name: e for (asset, name), e in evaluations.items() if asset == "youth_care_waitlist_raw"}
    assert sorted(waitlist) == ["freshness_GM0118", "freshness_GM0119", "freshness_GM1690",
                                "freshness_GM1701", "freshness_GM1708"]
    assert waitlist["freshness_GM0119"].passed
    assert not waitlist["freshness_GM1708"].passed
    assert not waitlist["freshness_GM0118"].passed
    assert "never delivered" in waitlist["freshness_GM0118"].description
    assert waitlist["freshness_GM0118"].severity == dg.AssetCheckSeverity.WARN


def test_the_checks_show_each_other_source_on_its_raw_asset(folders):
    deliver(folders, "vo/inschrijvingen_02AB00.csv", hours_before=40)
    deliver(folders, "vo/verzuim_02AB00.csv", hours_before=40)
    evaluations = _run_freshness_checks(DEMO_REGION)
    assert not evaluations[("vo_enrolment_raw", "freshness_vo_inschrijvingen")].passed
    assert evaluations[("vo_absence_raw", "freshness_vo_verzuim")].passed
    assert evaluations[("vo_absence_raw", "freshness_vo_verzuim")].metadata["stale_sources"].value == []


def test_a_municipality_without_a_waitlist_source_is_stale(tmp_path, folders):
    config = yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))
    del config["sources"]["wachtlijst_meppel"]
    region_path = tmp_path / "region.yaml"
    region_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    evaluation = _run_freshness_checks(region_path)[("youth_care_waitlist_raw", "freshness_GM0119")]
    assert not evaluation.passed
    assert "no youth_care_waitlist source" in evaluation.description


def test_the_checks_run_daily_at_seven_in_amsterdam_in_their_own_job(region):
    job, schedule = build_freshness_job_and_schedule(build_freshness_checks(region))
    assert schedule.cron_schedule == "0 7 * * *"
    assert schedule.execution_timezone == "Europe/Amsterdam"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == FRESHNESS_JOB == job.name


def test_the_checks_their_job_and_schedule_load_with_the_code_location(var_dir, region):
    defs = build_definitions(DEMO_REGION)
    dg.Definitions.validate_loadable(defs)
    checks = {key.name for key in defs.resolve_job_def(FRESHNESS_JOB).asset_layer.asset_graph.asset_check_keys}
    assert {f"freshness_{g}" for g in region.gemeente_codes} <= checks
