"""The signal lists people work from (docs/signalen.md): one row per pupil, what to do, and a printable digest.

Two nights of a few hand-built pupils go through the real alert rules, the lifecycle store (SQLite
in ``tmp_path``) and the list builder; files are written through the outbox and read back, and the
HTML digest is opened in headless Chromium as its reader would open it.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest

from assets.signalen.alert_assets import night_alerts, record_alert_night
from assets.signalen.alert_rules import REASONS
from assets.signalen.signal_lists import (
    COORDINATOR,
    GEMEENTE,
    LIST_COLUMNS,
    RESIDENCE_COLUMNS,
    WHAT_TO_DO,
    deliver_signal_lists,
    digest_html,
    durations,
    signal_lists,
)
from connectors.alert_store import AlertStore
from connectors.outbox import Outbox
from tests.conftest import _service_missing
from tests.test_alert_rules import CALENDAR, REGION, Night, mondays

FIRST, SECOND = dt.date(2026, 10, 5), dt.date(2026, 10, 12)
ANNA, BRAM, CAS, DEWI = "111222333", "111222345", "111222357", "111222369"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def night(on: dt.date) -> Night:
    """Anna left school in March (ABS and T3M); Bram misses 5 hours a week and waits for youth care
    (V16 and JZ_WACHT_VERZUIM the first night, only JZ_WACHT_VERZUIM the second); Cas leaves school
    on 6 October (ABS from the second night); Dewi lives in Meppel and left school in September."""
    n = Night()
    n.pupil(ANNA, naam="Aalders", gemeente="GM0118")
    n.enrolled(ANNA, until="2026-03-02", school="19IW00")
    n.pupil(BRAM, naam="Bakker", gemeente="GM0118")
    n.enrolled(BRAM, school="19IW00")
    n.absent(BRAM, mondays("2026-09-07", "2026-09-28"), 5)
    n.waiting(BRAM, "2026-05-04")
    n.pupil(CAS, naam="Claassen", gemeente="GM0118")
    n.enrolled(CAS, until="2026-10-06")
    n.pupil(DEWI, naam="Dijkstra", gemeente="GM0119")
    n.enrolled(DEWI, until="2026-09-14")
    return n


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    """The lists of both nights, as recorded by the lifecycle store."""
    folder = tmp_path_factory.mktemp("signalen")
    store = AlertStore(f"sqlite:///{folder / 'warehouse.db'}")
    out = {}
    for on in (FIRST, SECOND):
        frames = night(on).frames()
        tonight = night(on).alerts(on=on)
        record_alert_night(store, tonight, on, salt=b"test-salt")
        alerts = night_alerts(store, tonight, on, frames["pupils"])
        out[on] = signal_lists(alerts, frames["pupils"], frames["vo_enrolment"], frames["po_transfers"], REGION,
                               night=on)
    outbox = Outbox(root=str(folder / "outbox"))
    deliver_signal_lists(outbox, SECOND, *out[SECOND], REGION)
    return {"nights": out, "outbox": Path(outbox.root) / "signalen" / SECOND.isoformat()}


def row_of(table: pd.DataFrame, bsn: str) -> pd.Series:
    rows = table.loc[table["BSN"] == bsn]
    assert len(rows) == 1, f"expected one row for {bsn}, found {len(rows)}"
    return rows.iloc[0]


def test_a_pupil_with_two_reasons_is_one_row_with_both(lists):
    coordinator, _ = lists["nights"][FIRST]
    anna = row_of(coordinator, ANNA)
    assert anna["Redenen"] == "ABS, T3M"
    assert anna["Duur"].splitlines()[0].startswith("ABS: ") and anna["Duur"].splitlines()[1].startswith("T3M: ")
    assert [line.split(":")[0] for line in anna["Wat te doen"].splitlines()] == ["ABS", "T3M"]
    assert coordinator["BSN"].is_unique


def test_the_headers_are_dutch_and_the_follow_up_columns_are_left_empty(lists):
    coordinator, municipal = lists["nights"][FIRST]
    assert list(coordinator.columns) == list(LIST_COLUMNS.values())
    assert not any("_" in header for header in coordinator.columns)
    assert coordinator[["Behandelaar", "Actie", "Datum"]].isna().all().all()
    assert not set(RESIDENCE_COLUMNS) & set(municipal["GM0118"].columns)


def test_names_stand_beside_the_school_and_municipality_codes(lists):
    anna = row_of(lists["nights"][FIRST][0], ANNA)
    assert (anna["School (BRIN)"], anna["School"]) == ("19IW00", "Regionale Scholengemeenschap Wolfsbos")
    assert (anna["Woongemeente (code)"], anna["Woongemeente"]) == ("GM0118", "Hoogeveen")


def test_since_when_and_how_long_for_every_reason():
    alerts = pd.DataFrame({"reason": list(REASONS), "episode_start": pd.Timestamp("2026-04-01"),
                           "weeks": pd.array([pd.NA] * len(REASONS), dtype="Int64")})
    shown = dict(zip(alerts["reason"], durations(alerts, FIRST, CALENDAR), strict=True))
    assert all(re.fullmatch(r"\d+ (schoolweken|weken|maanden)", text) for text in shown.values()), shown
    assert shown["T3M"] == "6 maanden" and shown["MBO_GEEN_AANMELDING"] == "26 weken"
    assert shown["ABS"].endswith("schoolweken") and int(shown["ABS"].split()[0]) < 26  # holidays do not count


def test_new_open_and_resolved_since_the_previous_night(lists):
    first, second = (lists["nights"][on][0] for on in (FIRST, SECOND))
    assert row_of(first, BRAM)["Status"] == "nieuw"
    bram, anna, cas = (row_of(second, bsn) for bsn in (BRAM, ANNA, CAS))
    assert (bram["Status"], bram["Redenen"], bram["Opgelost vannacht"]) == ("open", "JZ_WACHT_VERZUIM", "V16")
    assert (anna["Status"], pd.isna(anna["Nieuw vannacht"])) == ("open", True)
    assert (cas["Status"], cas["Nieuw vannacht"]) == ("nieuw", "ABS")
    assert second["Status"].tolist()[0] == "nieuw"  # what changed tonight comes first


def test_what_to_do_is_worded_for_each_recipient(lists):
    coordinator, municipal = lists["nights"][FIRST]
    for_coordinator = row_of(coordinator, ANNA)["Wat te doen"]
    for_leerplicht = row_of(municipal["GM0118"], ANNA)["Wat te doen"]
    assert for_coordinator.startswith("ABS: " + WHAT_TO_DO["ABS"][COORDINATOR])
    assert for_leerplicht.startswith("ABS: " + WHAT_TO_DO["ABS"][GEMEENTE])
    assert set(WHAT_TO_DO) == set(REASONS)


def test_the_lists_and_the_digests_are_written_beside_each_other(lists):
    folder = lists["outbox"]
    for stem in ("signalen_thuiszittercoordinator", "gemeenten/GM0118/signalen_GM0118"):
        assert {(folder / f"{stem}.{suffix}").exists() for suffix in ("csv", "xlsx", "html")} == {True}
    written = pd.read_csv(folder / "signalen_thuiszittercoordinator.csv", sep=";", dtype=str, encoding="utf-8-sig")
    assert len(written) == len(lists["nights"][SECOND][0])


def test_the_digest_is_self_contained_and_prints_on_a4_landscape(lists):
    page = (lists["outbox"] / "signalen_thuiszittercoordinator.html").read_text(encoding="utf-8")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"(src|href)\s*=|url\(|https?://", page)
    assert "size: A4 landscape" in page


def test_an_empty_night_still_gives_a_digest_that_says_so():
    page = digest_html(pd.DataFrame(columns=list(LIST_COLUMNS.values())), recipient="gemeente Meppel (GM0119)",
                       night=FIRST, swv="VO2203", who=GEMEENTE)
    assert "Geen signalen vannacht." in page


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _service_missing("Chromium at /usr/bin/chromium", FileNotFoundError(str(CHROMIUM)))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_the_municipal_digest_renders_in_chromium_with_only_its_own_residents(lists, browser):
    page = browser.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((lists["outbox"] / "gemeenten" / "GM0118" / "signalen_GM0118.html").resolve().as_uri())
    text = page.inner_text("body")
    rows = page.locator("table").last.locator("tbody tr")
    assert rows.count() == 3  # Anna, Bram and Cas live in Hoogeveen
    assert "Aalders" in text and "Claassen" in text
    assert "Dijkstra" not in text  # Dewi lives in Meppel
    assert not any(bsn in text for bsn in (ANNA, BRAM, CAS, DEWI))  # no BSN on paper
    assert re.search(r"3\s+leerlingen met een open signaal", text)
    assert requests == [page.url]  # nothing fetched but the page itself
    assert page.pdf(format="A4", landscape=True)[:4] == b"%PDF"
    page.close()


def test_the_coordinator_digest_renders_in_chromium_with_every_pupil(lists, browser):
    page = browser.new_page()
    page.goto((lists["outbox"] / "signalen_thuiszittercoordinator.html").resolve().as_uri())
    text = page.inner_text("body")
    assert page.locator("table").last.locator("tbody tr").count() == 4
    assert all(name in text for name in ("Aalders", "Bakker", "Claassen", "Dijkstra"))
    assert "Per reden: wat te doen" in text and WHAT_TO_DO["T3M"][COORDINATOR] in text
    page.close()
