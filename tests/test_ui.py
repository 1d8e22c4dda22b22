"""The Dagster UI as a data steward sees it, in a real browser.

One module-scoped fixture generates a small demo region, serves its partner APIs, ingests the
waitlists in-process, starts ``dagster dev -w workspace.yaml`` (webserver and daemon, as ``make ui``
does) on a free port in its own process group, dismisses the first-visit dialog and launches the
nightly job through the GraphQL API. The tests then open pages in headless Chromium, check what is
on them and take screenshots: into a temporary folder, or, with ``SWV_UPDATE_SCREENSHOTS=1``, into
``docs/screenshots/`` for the docs (so an ordinary test run leaves the checkout untouched).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
import requests

from tests.conftest import PROJECT, _service_missing
from tests.demo_region import (VENV_BIN, demo_environment, generate_demo, latest_row_counts, serve_demo_api,
                               stop_process_group)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = PROJECT / "docs" / "screenshots"
LOCATION = "pipelines.definitions"
GROUPS = ("bronnen", "validatie", "koppeling", "overdracht", "signalen", "gemeenten")
GEMEENTEN = ("GM0118", "GM0119", "GM1690", "GM1701", "GM1708")
STARTUP_TIMEOUT_S = 120
RUN_TIMEOUT_S = 240

# dagster-graphql's client calls gql the old way; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(base: str, query: str) -> dict:
    response = requests.post(f"{base}/graphql", json={"query": query}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]


def _wait_for_code_location(base: str, server: subprocess.Popen, log: Path) -> None:
    """Until the webserver answers and the code location has loaded; a load error fails with its message."""
    query = """{ workspaceOrError { ... on Workspace { locationEntries { name
        locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dagster dev exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            entries = _graphql(base, query)["workspaceOrError"]["locationEntries"]
        except (requests.RequestException, KeyError, TypeError):
            entries = []
        for entry in entries:
            loaded = entry["locationOrLoadError"]
            if entry["name"] == LOCATION and loaded and loaded["__typename"] == "RepositoryLocation":
                return
            if entry["name"] == LOCATION and loaded and loaded["__typename"] == "PythonError":
                pytest.fail(f"the code location did not load: {loaded['message']}")
        time.sleep(1)
    pytest.fail(f"dagster dev did not serve {LOCATION} within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


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

    from pipelines.definitions import build_definitions
    from pipelines.night import night_run_config

    var = tmp_path_factory.mktemp("var")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with demo_environment(var, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"):
        generate_demo(var)
        with serve_demo_api(var):
            run_config = night_run_config(None)
            # The 01:30 stage, in-process and before the server starts: one SQLite writer at a time.
            ingest = build_definitions().resolve_job_def("waitlist_ingest")
            with dg.DagsterInstance.get() as instance:
                for gemeente in ingest.partitions_def.get_partition_keys():
                    assert ingest.execute_in_process(instance=instance, partition_key=gemeente,
                                                     run_config=run_config).success, gemeente
            log = var / "dagster-dev.log"
            with log.open("w") as out:
                server = subprocess.Popen(
                    ["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                    cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )
            try:
                _wait_for_code_location(base, server, log)
                assert _graphql(base, "mutation { setNuxSeen }")["setNuxSeen"] is True
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
    _open(page, "/asset-groups")
    page.get_by_placeholder("Jump to…").locator("xpath=following::button[1]").click()  # hide the group list
    controls = page.locator("#zoom-slider-container")
    controls.get_by_role("button", name="settings").click()
    page.get_by_role("menuitem", name="Change graph to vertical orientation").click()
    controls.get_by_role("button", name="settings").click()
    page.get_by_role("menuitem", name="Expand all groups").click()
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


def test_row_rejects_of_a_validated_asset_shows_as_a_warning_with_its_counts(page, ui, screenshots):
    _open(page, "/assets/po_transfers?view=checks&checkDetail=row_rejects")
    _shows(page.get_by_text("Checks (", exact=False).first)
    for name in ("delivery_contract", "row_rejects", "quarantined_rows", "share", "top_reasons"):
        _shows(page.get_by_text(name, exact=True).first)
    _shows(page.get_by_text("This is a non-blocking asset check."))
    assert _check_icon(page, "row_rejects") == "warning_outline", "WARN: the yellow warning sign, not the red error"
    assert _check_icon(page, "delivery_contract") == "check_circle"
    _screenshot(page, screenshots, "check.png")


def _check_icon(page, check: str) -> str | None:
    """The status icon in front of ``check`` in the list of an asset's checks."""
    entry = page.locator(f"[title={check}]").first.locator("xpath=ancestor::div[.//*[@role='img']][1]")
    return entry.locator("[role=img]").first.get_attribute("aria-label")


def test_the_partitioned_waitlist_shows_every_municipality_and_its_row_count(page, ui, screenshots):
    _open(page, "/assets/youth_care_waitlist_raw?view=partitions&partition=GM0118")
    _shows(page.get_by_text(f"Materialized ({len(GEMEENTEN)})"))
    for gemeente in GEMEENTEN:
        _shows(page.get_by_text(gemeente, exact=True).first)
    expected = ui["row_counts"][("youth_care_waitlist_raw", "GM0118")]
    row = page.locator("tr").filter(has_text="dagster/row_count")
    _shows(row.get_by_text(str(expected), exact=True))  # the metadata table renders after the page settles
    _screenshot(page, screenshots, "partitions.png")

