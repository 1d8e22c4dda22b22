"""The Dagster UI as a data steward sees it, in a real browser.

One module-scoped fixture generates a small demo region, serves its partner APIs, ingests the
waitlists in-process, starts ``dagster dev -w workspace.yaml`` (webserver and daemon, as ``make ui``
does) on a free port in its own process group, dismisses the first-visit dialog and launches the
nightly job through the GraphQL API. The tests then open pages in headless Chromium, check what is
on them and take screenshots: into a temporary folder, or, with ``SWV_UPDATE_SCREENSHOTS=1``
(``make screenshots``), of the demo region at its full size into ``docs/screenshots/`` for the README
(so an ordinary test run leaves the checkout untouched). What a test looks for is text and roles on
the page, or a check's status over GraphQL, never an icon.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import PROJECT, _service_missing
from tests.demo_region import (PUPILS, VENV_BIN, demo_environment, generate_demo, latest_row_counts,
                               serve_demo_api, stop_process_group)
from tests.webserver import LOCATION, free_port, graphql, wait_for_code_location

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = PROJECT / "docs" / "screenshots"
GROUPS = ("bronnen", "validatie", "koppeling", "overdracht", "signalen", "gemeenten")
WAITLIST_SOURCES = ("wachtlijst_de_wolden", "wachtlijst_hoogeveen", "wachtlijst_meppel", "wachtlijst_steenwijkerland",
                    "wachtlijst_westerveld")
RUN_TIMEOUT_S = 240

# dagster-graphql's client calls gql the old way; not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*"),
              pytest.mark.slow]  # dagster dev, a nightly run and a browser


def _wait_for_run(client, run_id: str) -> dg.DagsterRunStatus:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            return status
        time.sleep(1)
    pytest.fail(f"run {run_id} did not finish within {RUN_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    if not CHROMIUM.exists():
        _service_missing(f"Chromium at {CHROMIUM}", FileNotFoundError(CHROMIUM))
    from dagster_graphql import DagsterGraphQLClient

    from pipelines.night import night_run_config

    var = tmp_path_factory.mktemp("var")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with demo_environment(var, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"):
        # The README's pictures show the demo region at its full size, as `make demo` makes it; the
        # ordinary test run a small one (faster, and with more than the usual share of defects).
        generate_demo(var, pupils=None if os.environ.get("SWV_UPDATE_SCREENSHOTS") else PUPILS)
        with serve_demo_api(var):
            run_config = night_run_config(None)
            log = var / "dagster-dev.log"
            with log.open("w") as out:
                server = subprocess.Popen(
                    ["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                    cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )
            try:
                wait_for_code_location(base, server, log)
                assert graphql(base, "mutation { setNuxSeen }")["setNuxSeen"] is True
                client = DagsterGraphQLClient("127.0.0.1", port_number=port)
                run_id = client.submit_job_execution("nightly", repository_location_name=LOCATION,
                                                     run_config=run_config)
                status = _wait_for_run(client, run_id)
                with dg.DagsterInstance.get() as instance:
                    row_counts = latest_row_counts(instance)
                yield {"base": base, "run_id": run_id, "status": status, "row_counts": row_counts}
            finally:
                stop_process_group(server)


@pytest.fixture(scope="module")
def browser(ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, ui):
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, base_url=ui["base"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def _open(page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    page.get_by_text("Hide navigation").click()  # more room for the page itself


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return SCREENSHOTS if os.environ.get("SWV_UPDATE_SCREENSHOTS") else tmp_path_factory.mktemp("screenshots")


def _shows(locator) -> None:
    """Visible now or within Playwright's wait (5 s): parts of a page render after the network settles."""
    from playwright.sync_api import expect

    expect(locator).to_be_visible()


def _screenshot(page, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / name)


def test_the_nightly_job_launched_through_graphql_succeeds(ui):
    assert ui["status"] == dg.DagsterRunStatus.SUCCESS, f"run {ui['run_id']}: see {ui['base']}/runs/{ui['run_id']}"


def test_the_asset_graph_shows_every_group_with_its_assets(page, ui, screenshots):
    # Vertical, as the graph remembers a steward's choice (its ⌥O shortcut is also the nav's "Overview").
    page.add_init_script("window.localStorage.setItem('asset-graph-direction', JSON.stringify('vertical'))")
    _open(page, "/asset-groups")
    page.get_by_placeholder("Jump to…").locator("xpath=following::button[1]").click()  # hide the group list
    page.keyboard.press("Alt+KeyE")  # the graph's shortcut (its settings menu shows it): expand all groups
    graph = page.locator("svg").filter(has_text="validatie").first
    for group in GROUPS:
        _shows(graph.get_by_text(group, exact=True))
    # Long names are shortened in the middle at this zoom; these fit.
    for asset in ("po_transfers", "vo_absence", "pupils", "pupil_conflicts", "po_vo_handovers",
                  "thuiszitter_alerts", "municipal_exports"):
        _shows(graph.get_by_text(asset, exact=True).first)
    page.mouse.move(0, 0)  # no hover card in the picture
    page.wait_for_timeout(500)
    _screenshot(page, screenshots, "asset-graph.png")


def test_a_validated_asset_shows_its_row_count(page, ui):
    _open(page, "/assets/po_transfers")
    expected = ui["row_counts"][("po_transfers", None)]
    _shows(page.get_by_text("Row count", exact=True))
    _shows(page.get_by_text(f"{expected:,}", exact=True).first)


def test_row_rejects_passes_at_a_normal_share_and_shows_its_counts(page, ui, screenshots):
    _open(page, "/assets/vo_absence?view=checks&checkDetail=row_rejects")
    _shows(page.get_by_text("Checks (", exact=False).first)
    for name in ("delivery_contract", "row_rejects", "quarantined_rows", "share", "top_reasons"):
        _shows(page.get_by_text(name, exact=True).first)
    _shows(page.get_by_text("This is a non-blocking asset check."))
    # What the page's status icons show, read where the UI reads it. The demo spoils 1.5 % of the absence
    # rows: below the warn share (5 %), so green, as a normal night should be.
    assert _latest_check(ui, "vo_absence", "row_rejects") == ("SUCCEEDED", "WARN")
    assert _latest_check(ui, "vo_absence", "delivery_contract") == ("SUCCEEDED", "ERROR")
    _screenshot(page, screenshots, "check.png")


def test_a_validated_asset_lists_the_night_s_quarantined_rows_as_a_table(page, ui, screenshots):
    page.set_viewport_size({"width": 1900, "height": 1000})  # the messages beside the event list
    _open(page, "/assets/po_transfers?view=events")
    name = page.get_by_text("quarantine_table", exact=True).first
    _shows(name)
    _shows(page.get_by_text("quarantine_shown", exact=True).first)
    table = page.locator("table").filter(has_text="bsn_elfproef").first
    for header in ("source", "delivery", "row", "column", "rule", "message"):
        _shows(table.get_by_text(header, exact=True).first)
    name.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    _screenshot(page, screenshots, "quarantine.png")


def _latest_check(ui, asset: str, check: str) -> tuple[str, str | None]:
    """Status and severity of the latest execution of ``check`` on ``asset``, from the UI's GraphQL API."""
    query = (f'{{ assetCheckExecutions(assetKey: {{path: ["{asset}"]}}, checkName: "{check}", limit: 1) '
             "{ status evaluation { severity } } }")
    [latest] = graphql(ui["base"], query)["assetCheckExecutions"]
    return latest["status"], (latest["evaluation"] or {}).get("severity")


def test_the_night_launched_from_the_ui_judges_every_municipality_s_freshness(ui):
    """Not 'not evaluated' until the 07:00 freshness job: the night itself judges them."""
    for gemeente in ("GM0118", "GM0119", "GM1690", "GM1701", "GM1708"):
        query = (f'{{ assetCheckExecutions(assetKey: {{path: ["youth_care_waitlist_raw"]}}, '
                 f'checkName: "freshness_{gemeente}", limit: 1) {{ status runId }} }}')
        [latest] = graphql(ui["base"], query)["assetCheckExecutions"]
        assert latest["runId"] == ui["run_id"] and latest["status"] in ("SUCCEEDED", "FAILED"), (gemeente, latest)


def test_the_waitlist_shows_a_delivery_check_per_municipality(page, ui, screenshots):
    _open(page, "/assets/youth_care_waitlist_raw?view=checks")
    for source_id in WAITLIST_SOURCES:
        _shows(page.locator(f'[title="delivery_{source_id}"]').first)  # long names are shortened on screen
    _screenshot(page, screenshots, "municipalities.png")
