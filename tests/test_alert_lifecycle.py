"""Alert lifecycle across nights: new, open, resolved, reopened; replays change nothing.

Twelve weekly nights of a small school population with changing enrolment and absence run against
a real SQLite file and a real PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from assets.signalen.alert_assets import alert_ids, night_alerts, record_alert_night, thuiszitter_alerts
from assets.signalen.alert_rules import evaluate_alerts
from connectors.alert_store import AlertStore, AlertStoreError
from connectors.outbox import Outbox
from connectors.region_config import RegionConfig
from connectors.secrets import AlertSalt
from tests.conftest import DEMO_REGION, postgres_database
from tests.test_alert_rules import CALENDAR, Night, mondays

SALT = b"test-salt"
NIGHTS = [dt.date(2026, 9, 7) + dt.timedelta(weeks=i) for i in range(12)]  # Mondays 7 Sep - 23 Nov

A, B, C, D, E = "100000001", "100000002", "100000003", "100000004", "100000005"


def population(on: dt.date) -> Night:
    """What the sources say on night ``on``.

    A  left school on 1 Sep; enrolled elsewhere from 28 Sep; that ended on 16 Oct (back within 4 weeks).
    B  absent 25 hours every week since school began on 17 Aug: V16, then LRV, then T3M.
    C  PO transfer for 2026-2027, enrolled in VO from 21 Sep.
    D  left on 4 Sep, enrolled again from 14 Sep, left again on 23 Oct (long after: a new episode).
    E  left on 28 Aug and stays out; moves from Hoogeveen to Westerveld on 5 Oct.
    """
    night = Night()
    night.pupil(A, born="2012-02-02", gemeente="GM0118")
    night.enrolled(A, until="2026-09-01")
    if on >= dt.date(2026, 9, 28):
        night.enrolled(A, since="2026-09-25", until="2026-10-16" if on >= dt.date(2026, 10, 19) else None,
                       school="02AB00")

    night.pupil(B, born="2012-05-05", gemeente="GM0119")
    night.enrolled(B)
    night.absent(B, mondays("2026-08-17", (on - dt.timedelta(days=1)).isoformat()), 25)

    night.pupil(C, born="2014-04-04", gemeente="GM1690")
    night.transfer(C, "2026-2027")
    if on >= dt.date(2026, 9, 21):
        night.enrolled(C, since="2026-09-15")

    night.pupil(D, born="2011-11-11", gemeente="GM1708")
    night.enrolled(D, since="2023-08-21", until="2026-09-04")
    if on >= dt.date(2026, 9, 14):
        night.enrolled(D, since="2026-09-10", until="2026-10-23" if on >= dt.date(2026, 10, 26) else None,
                       school="03AB00")

    night.pupil(E, born="2012-07-07", gemeente="GM1701" if on >= dt.date(2026, 10, 5) else "GM0118")
    night.enrolled(E, until="2026-08-28")
    return night


# night index -> {(bsn, reason, from_status, to_status)}
EXPECTED = {
    0: {(A, "ABS", None, "new"), (B, "V16", None, "new"), (C, "PO_GEEN_VO", None, "new"), (D, "ABS", None, "new"),
        (E, "ABS", None, "new")},
    1: {(A, "ABS", "new", "open"), (B, "V16", "new", "open"), (C, "PO_GEEN_VO", "new", "open"),
        (D, "ABS", "new", "resolved"), (E, "ABS", "new", "open")},
    2: {(B, "LRV", None, "new"), (B, "V16", "open", "resolved"), (C, "PO_GEEN_VO", "open", "resolved")},
    3: {(A, "ABS", "open", "resolved"), (B, "LRV", "new", "open")},
    6: {(A, "ABS", "resolved", "reopened")},
    7: {(A, "ABS", "reopened", "open"), (D, "ABS", None, "new")},
    8: {(D, "ABS", "new", "open")},
    11: {(B, "T3M", None, "new")},
}


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL database that is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'warehouse.db'}"
        return
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path: Path) -> Iterator[AlertStore]:
    with database(request.param, tmp_path) as url:
        engine = sa.create_engine(url)
        yield AlertStore(engine)
        engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def simulated(request, tmp_path_factory) -> Iterator[tuple[AlertStore, dict[dt.date, pd.DataFrame]]]:
    """All twelve nights recorded once per database; the tests only read (or replay) them."""
    with database(request.param, tmp_path_factory.mktemp("nights")) as url:
        engine = sa.create_engine(url)
        store = AlertStore(engine)
        yield store, run_nights(store)
        engine.dispose()


def run_nights(store: AlertStore, nights=NIGHTS) -> dict[dt.date, pd.DataFrame]:
    """Record each night in order; returns each night's alerts as the coordinator would see them."""
    seen = {}
    for on in nights:
        frames = population(on).frames()
        tonight = evaluate_alerts(**frames, calendar=CALENDAR, evaluation_date=on)
        record_alert_night(store, tonight, on, salt=SALT)
        seen[on] = night_alerts(store, tonight, on, frames["pupils"])
    return seen


def transitions(store: AlertStore, on: dt.date) -> set[tuple]:
    alerts = store.alerts().set_index("alert_id")
    events = store.events(on)
    return {
        (alerts.at[e.alert_id, "pupil_key"].removeprefix("bsn:"), alerts.at[e.alert_id, "reason"],
         None if pd.isna(e.from_status) else e.from_status, e.to_status)
        for e in events.itertuples()
    }


def test_twelve_nights_produce_the_expected_transitions(simulated):
    store, _ = simulated
    for index, on in enumerate(NIGHTS):
        assert transitions(store, on) == EXPECTED.get(index, set()), f"night {index} ({on})"


def test_a_recurrence_soon_after_resolution_reopens_the_same_alert_and_a_late_one_is_new(simulated):
    store, _ = simulated
    alerts = store.alerts()
    a = alerts.loc[(alerts["pupil_key"] == f"bsn:{A}") & (alerts["reason"] == "ABS")]
    d = alerts.loc[(alerts["pupil_key"] == f"bsn:{D}") & (alerts["reason"] == "ABS")].sort_values("first_night")
    assert len(a) == 1 and a.iloc[0]["status"] == "open"
    assert a.iloc[0]["first_night"] == pd.Timestamp(NIGHTS[0])
    assert a.iloc[0]["episode_start"] == pd.Timestamp("2026-10-16")  # the latest episode start is shown
    assert d["status"].tolist() == ["resolved", "open"]
    assert d["resolved_on"].iloc[0] == pd.Timestamp(NIGHTS[1]) and d["alert_id"].nunique() == 2


def test_replaying_a_night_changes_nothing(simulated):
    store, _ = simulated
    before = (store.alerts(), store.events())
    for on in (NIGHTS[5], NIGHTS[-1]):
        night = population(on)
        assert record_alert_night(store, night.alerts(on=on), on, salt=SALT) is False
    after = (store.alerts(), store.events())
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1], after[1])


def test_a_recorded_night_reads_as_it_was_when_replayed_later(simulated):
    store, seen = simulated
    on = NIGHTS[3]
    night = population(on)
    replayed = night_alerts(store, night.alerts(on=on), on, night.frames()["pupils"])
    columns = ["alert_id", "status", "reason", "resolved_on"]
    pd.testing.assert_frame_equal(replayed[columns], seen[on][columns])
    # A was resolved that very night and is listed as such; V16 and D's and C's alerts had ended before.
    assert set(zip(replayed["pupil_key"].str.removeprefix("bsn:"), replayed["reason"], replayed["status"])) == {
        (A, "ABS", "resolved"), (B, "LRV", "open"), (E, "ABS", "open")}


def test_nights_are_recorded_in_order_only(store):
    run_nights(store, [NIGHTS[0], NIGHTS[2]])
    with pytest.raises(AlertStoreError, match="not after the last recorded night"):
        record_alert_night(store, population(NIGHTS[1]).alerts(on=NIGHTS[1]), NIGHTS[1], salt=SALT)


def test_an_alert_follows_its_pupil_to_the_new_municipality_from_that_night(simulated):
    _, seen = simulated
    rows = {on: frame.loc[frame["pupil_key"] == f"bsn:{E}"].iloc[0] for on, frame in seen.items() if on in NIGHTS[:6]}
    assert [rows[on]["woongemeente_code"] for on in NIGHTS[:6]] == ["GM0118"] * 4 + ["GM1701"] * 2
    assert len({row["alert_id"] for row in rows.values()}) == 1


def test_the_same_episode_reopens_its_alert_even_long_after_resolution(tmp_path):
    store = AlertStore(f"sqlite:///{tmp_path / 'warehouse.db'}")
    waiting = pd.DataFrame({
        "pupil_key": [f"bsn:{A}"], "reason": ["JZ_WACHT_VERZUIM"], "category": ["SWV"], "woongemeente_code": ["GM0118"],
        "buiten_regio": pd.array([False], dtype="boolean"), "vo_brin6": ["01AB00"],
        "episode_start": [pd.Timestamp("2026-03-02")], "weeks": pd.array([20], dtype="Int64"), "detail": ["wacht"],
    })
    quiet = waiting.iloc[:0]
    # Waiting again, eleven weeks after the resolution: the same aanmelding, so the same alert.
    for on, tonight in ((dt.date(2026, 9, 7), waiting), (dt.date(2026, 9, 14), quiet), (dt.date(2026, 11, 30), waiting)):
        record_alert_night(store, tonight, on, salt=SALT)
    events = store.events()
    assert events["to_status"].tolist() == ["new", "resolved", "reopened"]
    assert events["alert_id"].nunique() == 1


def test_alert_ids_are_keyed_hashes_that_reveal_no_bsn():
    frame = pd.DataFrame({"pupil_key": [f"bsn:{A}"], "reason": ["ABS"], "episode_start": [pd.Timestamp("2026-09-01")]})
    first, other_salt = alert_ids(frame, SALT).iloc[0], alert_ids(frame, b"another installation").iloc[0]
    assert len(first) == 20 and A not in first and first != other_salt
    assert alert_ids(frame, SALT).iloc[0] == first


# -- the asset, end to end ---------------------------------------------------------------------


class SqlWarehouse(dg.ConfigurableResource):
    """The warehouse as the asset sees it: something with an ``engine``."""

    url: str

    @property
    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url)


def _sources(frames: dict[str, pd.DataFrame]) -> list[dg.AssetsDefinition]:
    def source(name: str, frame: pd.DataFrame) -> dg.AssetsDefinition:
        @dg.asset(name=name)
        def _source() -> pd.DataFrame:
            return frame

        return _source

    return [source(name, frame) for name, frame in frames.items()]


def _materialize(tmp_path: Path, on: dt.date, frames: dict[str, pd.DataFrame] | None = None,
                 salt: AlertSalt = AlertSalt(salt="test"), raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*_sources(population(on).frames() if frames is None else frames), thuiszitter_alerts],
        resources={
            "region_config": RegionConfig(path=str(DEMO_REGION), evaluation_date=on.isoformat()),
            "outbox": Outbox(root=str(tmp_path / "outbox")),
            "warehouse": SqlWarehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}"),
            "alert_salt": salt,
            "lake_io_manager": dg.InMemoryIOManager(),
        },
        raise_on_error=raise_on_error,
    )


def test_the_asset_writes_lists_per_night_and_a_rerun_rewrites_nothing(tmp_path):
    first = _materialize(tmp_path, NIGHTS[4])
    folder = tmp_path / "outbox" / "signalen" / "2026-10-05"
    coordinator = pd.read_csv(folder / "signalen_thuiszittercoordinator.csv", sep=";", encoding="utf-8-sig", dtype=str)
    # A fresh warehouse on 5 October: B's long absence and E's missing enrolment are new.
    assert sorted(zip(coordinator["Redenen"], coordinator["Status"])) == [("ABS", "nieuw"), ("LRV", "nieuw")]
    assert (folder / "signalen_thuiszittercoordinator.xlsx").exists()
    westerveld = pd.read_csv(folder / "gemeenten" / "GM1701" / "signalen_GM1701.csv", sep=";", encoding="utf-8-sig",
                             dtype=str)
    assert westerveld["BSN"].tolist() == [E]
    csv_files = sorted(folder.rglob("*.csv"))
    written = [path.read_bytes() for path in csv_files]

    again = _materialize(tmp_path, NIGHTS[4])
    assert [path.read_bytes() for path in csv_files] == written
    meta = again.asset_materializations_for_node("thuiszitter_alerts")[0].metadata
    first_meta = first.asset_materializations_for_node("thuiszitter_alerts")[0].metadata
    assert meta["night_replayed"].value is True and first_meta["night_replayed"].value is False
    assert meta["transitions_tonight"].data == first_meta["transitions_tonight"].data == {
        "new": 2, "open": 0, "reopened": 0, "resolved": 0}

    _materialize(tmp_path, NIGHTS[5])
    statuses = pd.read_csv(tmp_path / "outbox" / "signalen" / "2026-10-12" / "signalen_thuiszittercoordinator.csv",
                           sep=";", encoding="utf-8-sig", dtype=str)["Status"]
    assert statuses.tolist() == ["open", "open"]


def test_without_the_salt_the_asset_fails_naming_it_and_records_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("SWV_ALERT_SALT", raising=False)
    result = _materialize(tmp_path, NIGHTS[4], salt=AlertSalt.from_env(), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "SWV_ALERT_SALT" in failure.event_specific_data.error.message
    assert not (tmp_path / "outbox" / "signalen").exists()
    assert not sa.inspect(sa.create_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")).has_table("alerts")


def test_the_asset_metadata_holds_counts_and_no_personal_data(tmp_path):
    result = _materialize(tmp_path, NIGHTS[4])
    meta = result.asset_materializations_for_node("thuiszitter_alerts")[0].metadata
    text = json.dumps({k: str(v) for k, v in meta.items()})
    assert not any(bsn in text for bsn in (A, B, C, D, E))
    assert meta["dagster/row_count"].value == 2
    assert meta["alerts_by_reason"].data == {"ABS": 1, "LRV": 1}
    assert meta["alerts_by_gemeente"].data == {"GM0119": 1, "GM1701": 1}


def test_a_night_without_signals_writes_empty_lists_for_every_municipality(tmp_path):
    result = _materialize(tmp_path, dt.date(2026, 10, 5), Night().frames())
    assert result.asset_materializations_for_node("thuiszitter_alerts")[0].metadata["dagster/row_count"].value == 0
    lists = sorted((tmp_path / "outbox" / "signalen" / "2026-10-05" / "gemeenten").glob("*/*.csv"))
    assert [path.parent.name for path in lists] == sorted(["GM0118", "GM0119", "GM1690", "GM1701", "GM1708"])


def test_the_asset_is_described_for_the_catalogue():
    spec = thuiszitter_alerts.specs_by_key[dg.AssetKey("thuiszitter_alerts")]
    assert spec.group_name == "signalen" and spec.owners == ["team:thuiszittercoordinator"]
    assert set(spec.kinds) == {"pandas", "xlsx", "csv"} and spec.description
