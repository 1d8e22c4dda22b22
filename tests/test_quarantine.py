"""The quarantine table: new entries, entries seen again, entries a corrected re-delivery resolves.

Every test runs on SQLite (a file in tmp_path) and on PostgreSQL (a throw-away database on the
real server, see tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from connectors.warehouse import QuarantineSummary, UtcDateTime, Warehouse, bulk_insert, create_tables, quarantine
from tests.test_rules import BASELINE, raw_frame, validate

NIGHT = dt.datetime(2026, 10, 5, 1, 30, tzinfo=dt.UTC)
ROW = BASELINE["youth_care_waitlist"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'warehouse.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    warehouse = Warehouse(url=url)
    warehouse.ensure_schema()
    yield warehouse
    warehouse.dispose()


def night(warehouse: Warehouse, rows: list[dict], *, when: dt.datetime, delivery: str = "hoogeveen.csv",
          sha256: str = "a" * 64) -> QuarantineSummary:
    """Validate one delivery of the Hoogeveen waitlist and record its rejects, as the nightly asset does."""
    result = validate("youth_care_waitlist", raw_frame("youth_care_waitlist", rows, delivery=delivery, sha256=sha256))
    return warehouse.record_quarantine("youth_care_waitlist", result.rejects, result.deliveries, when)


BAD_BSN = ROW | {"bsn": "111222334"}
BAD_AGB = ROW | {"bsn": "123456782", "zorgaanbieder_agb": "1234"}


def test_first_sight_creates_an_open_entry_per_row_rule_and_column(warehouse):
    summary = night(warehouse, [ROW, BAD_BSN, BAD_AGB], when=NIGHT)

    assert summary == QuarantineSummary(new=2, still_open=0, resolved=0)
    entries = warehouse.quarantine_entries("youth_care_waitlist")
    assert entries[["delivery_row", "column", "rule"]].values.tolist() == [
        [2, "bsn", "bsn_elfproef"], [3, "zorgaanbieder_agb", "agb_format"],
    ]
    assert (entries["first_seen"] == NIGHT).all() and (entries["last_seen"] == NIGHT).all()
    assert entries["value_masked"].tolist() == ["*** (9 tekens)", "1234"]


def test_the_same_bad_delivery_again_only_moves_last_seen(warehouse):
    night(warehouse, [ROW, BAD_BSN, BAD_AGB], when=NIGHT)
    later = NIGHT + dt.timedelta(days=1)

    summary = night(warehouse, [ROW, BAD_BSN, BAD_AGB], when=later)

    assert summary == QuarantineSummary(new=0, still_open=2, resolved=0)
    entries = warehouse.quarantine_entries()
    assert len(entries) == 2
    assert (entries["first_seen"] == NIGHT).all() and (entries["last_seen"] == later).all()


def test_a_corrected_re_delivery_resolves_what_it_fixed(warehouse):
    night(warehouse, [ROW, BAD_BSN, BAD_AGB], when=NIGHT)
    fixed = NIGHT + dt.timedelta(days=1)

    # The municipality corrects the BSN; the AGB code is still wrong and moved up a line.
    summary = night(warehouse, [ROW | {"bsn": "111222333"}, BAD_AGB], when=fixed, sha256="b" * 64)

    assert summary == QuarantineSummary(new=0, still_open=1, resolved=1)
    everything = warehouse.quarantine_entries(open_only=False).set_index("rule")
    assert everything.loc["bsn_elfproef", "resolved_at"] == fixed
    still_open = warehouse.quarantine_entries()
    assert still_open[["rule", "delivery_row", "delivery_sha256"]].values.tolist() == [["agb_format", 2, "b" * 64]]


def test_a_delivery_not_delivered_again_stays_open(warehouse):
    night(warehouse, [BAD_BSN], when=NIGHT, delivery="week40.csv")

    summary = night(warehouse, [ROW], when=NIGHT + dt.timedelta(days=7), delivery="week41.csv")

    assert summary == QuarantineSummary(new=0, still_open=0, resolved=0)
    assert warehouse.quarantine_entries()["delivery"].tolist() == ["week40.csv"]


def test_a_problem_that_comes_back_is_reopened(warehouse):
    night(warehouse, [ROW, BAD_BSN], when=NIGHT)
    night(warehouse, [ROW], when=NIGHT + dt.timedelta(days=1), sha256="b" * 64)

    summary = night(warehouse, [ROW, BAD_BSN], when=NIGHT + dt.timedelta(days=2), sha256="c" * 64)

    assert summary == QuarantineSummary(new=1, still_open=0, resolved=0)
    entries = warehouse.quarantine_entries(open_only=False)
    assert len(entries) == 1 and entries["resolved_at"].isna().all()
    assert entries["first_seen"].tolist() == [NIGHT]


def test_thousands_of_rejects_are_written_in_a_few_statements(warehouse):
    rows = [ROW | {"zorgaanbieder_agb": f"{n:07d}"} for n in range(3000)]
    result = validate("youth_care_waitlist", raw_frame("youth_care_waitlist", rows))
    statements = []
    sa.event.listen(warehouse.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    summary = warehouse.record_quarantine("youth_care_waitlist", result.rejects, result.deliveries, NIGHT)
    again = warehouse.record_quarantine(
        "youth_care_waitlist", result.rejects, result.deliveries, NIGHT + dt.timedelta(days=1)
    )

    assert (summary.new, again.still_open) == (3000, 3000)
    assert len(statements) < 20, "bulk statements, not a round trip per row"
    with warehouse.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(quarantine)).scalar_one() == 3000


def test_the_bulk_path_keeps_every_value_exactly(warehouse):
    """Tabs, line breaks and backslashes, empty text beside NULL, dates and UTC times (COPY on PostgreSQL)."""
    table = sa.Table("bulk_values", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("text", sa.Text),
                     sa.Column("day", sa.Date), sa.Column("moment", UtcDateTime))
    table.create(warehouse.engine)
    texts = ["a\tb\nc\\d\re \\N", "", None]
    frame = pd.DataFrame({"id": [1, 2, 3], "text": pd.Series(texts, dtype=object),
                          "day": [dt.date(2026, 10, 5), None, dt.date(2024, 2, 29)], "moment": [NIGHT, None, NIGHT]})
    with warehouse.engine.begin() as connection:
        assert bulk_insert(connection, table, frame) == 3
    with warehouse.engine.connect() as connection:
        rows = connection.execute(sa.select(table).order_by(table.c.id)).all()
    assert [tuple(row) for row in rows] == [(1, texts[0], dt.date(2026, 10, 5), NIGHT), (2, "", None, None),
                                            (3, None, dt.date(2024, 2, 29), NIGHT)]


def test_ensure_schema_is_idempotent(warehouse):
    warehouse.ensure_schema()
    assert sa.inspect(warehouse.engine).has_table("quarantine")


def test_rejects_of_an_unlisted_delivery_are_refused(warehouse):
    result = validate("youth_care_waitlist", raw_frame("youth_care_waitlist", [BAD_BSN]))
    with pytest.raises(ValueError, match="not listed"):
        warehouse.record_quarantine("youth_care_waitlist", result.rejects, [], NIGHT)


def test_a_table_another_step_creates_at_the_same_moment_is_no_error(warehouse):
    """Steps side by side (Celery workers) both find a table missing; the second CREATE must not fail the step."""
    other = sa.create_engine(warehouse.url)
    fresh = sa.MetaData()
    table = sa.Table("side_by_side", fresh, sa.Column("id", sa.Integer, primary_key=True))

    raced = []

    @sa.event.listens_for(table, "before_create")
    def created_meanwhile(target, connection, **kw):  # the other worker wins the race, once
        if not raced:
            raced.append(True)
            fresh.create_all(other)

    create_tables(warehouse.engine, fresh)
    assert raced and sa.inspect(warehouse.engine).has_table("side_by_side")
    other.dispose()
    fresh.drop_all(warehouse.engine)
