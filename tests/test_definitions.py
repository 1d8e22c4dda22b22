"""The code location loads, and the night is scheduled at 02:00 Europe/Amsterdam, running by default."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from pipelines.definitions import build_definitions
from tests.conftest import DEMO_REGION

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions(DEMO_REGION)


def test_the_code_location_loads_as_the_webserver_loads_it(defs):
    dg.Definitions.validate_loadable(defs)
    defs.get_repository_def().load_all_definitions()


def test_the_nightly_schedule_runs_at_two_in_amsterdam_and_is_running(defs):
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Amsterdam"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "nightly"


def test_a_night_is_one_run_of_every_asset(defs):
    assert [s.name for s in defs.schedules if s.job_name != "source_freshness"] == ["nightly_schedule"]
    nightly = defs.resolve_job_def("nightly")
    graph = defs.resolve_asset_graph()
    assert set(nightly.asset_layer.executable_asset_keys) == set(graph.get_all_asset_keys())


def test_every_municipality_has_its_own_waitlist_delivery_and_export_check(defs):
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    region = defs.resources["region_config"].region
    for gemeente in region.gemeente_codes:
        assert f"export_{gemeente}" in checks
        assert f"freshness_{gemeente}" in checks
    for source_id in region.sources_for("youth_care_waitlist"):
        assert f"delivery_{source_id}" in checks


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # Spring forward (29 March 2026: 02:00 → 03:00): 02:00 does not exist that night, the run starts at 03:00.
        (dt.datetime(2026, 3, 28, 12, 0), [dt.datetime(2026, 3, 29, 3, 0), dt.datetime(2026, 3, 30, 2, 0)]),
        # Fall back (25 October 2026: 03:00 → 02:00): 02:00 happens twice, the run starts once.
        (dt.datetime(2026, 10, 24, 12, 0), [dt.datetime(2026, 10, 25, 2, 0), dt.datetime(2026, 10, 26, 2, 0)]),
    ],
)
def test_the_night_fires_once_per_night_across_daylight_saving_switches(defs, after, expected):
    schedule = defs.resolve_schedule_def("nightly_schedule")
    start = after.replace(tzinfo=AMSTERDAM).timestamp()
    # The same iterator the Dagster daemon uses to decide when a schedule fires.
    ticks = cron_string_iterator(start, schedule.cron_schedule, schedule.execution_timezone)
    fired = [next(ticks).astimezone(AMSTERDAM).replace(tzinfo=None) for _ in expected]
    assert fired == expected


def test_every_asset_has_a_description_owner_group_and_kinds(defs):
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.owners, key
        assert node.group_name and node.group_name != "default", key
        assert any(tag.startswith("dagster/kind/") for tag in node.tags), key


def test_descriptions_show_in_the_ui_as_written(defs):
    """The UI renders descriptions as Markdown and drops anything shaped like an HTML tag, so a path
    written as ``signalen/<date>/`` showed as ``signalen//``: placeholders are written ``{date}``."""
    graph = defs.resolve_asset_graph()
    texts = {key.to_user_string(): graph.get(key).description for key in graph.get_all_asset_keys()}
    texts |= {check.to_user_string(): graph.get_check_spec(check).description or ""
              for check in graph.asset_check_keys}
    tagged = {name: text for name, text in texts.items() if re.search(r"<[A-Za-z/][^>]*>", text)}
    assert not tagged
