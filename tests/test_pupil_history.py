"""Pupil identities keep their history across nights, with validity periods (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from connectors.pupil_store import pupil_history, record_pupils

NIGHT_1, NIGHT_2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)


def _pupils(gemeente_of_first: str) -> pd.DataFrame:
    return pd.DataFrame({
        "pupil_key": ["bsn:111222333", "onr:101222331"],
        "woongemeente_code": [gemeente_of_first, "GM0119"],
        "vo_brin6": pd.array(["02VA00", None], dtype="str"),
        "onderwijsniveau": pd.array(["havo", None], dtype="str"),
    })


def _history(engine) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(pupil_history.c.pupil_key, pupil_history.c.woongemeente_code,
                                      pupil_history.c.valid_from, pupil_history.c.valid_to)
                            .order_by(pupil_history.c.id)).all()
    return [tuple(r) for r in rows]


def test_a_move_closes_the_old_period_and_opens_a_new_one(engine):
    assert record_pupils(engine, _pupils("GM0118"), NIGHT_1)["opened"] == 2
    assert record_pupils(engine, _pupils("GM1690"), NIGHT_2) == {"opened": 1, "closed": 1, "unchanged": 1}
    assert _history(engine) == [
        ("bsn:111222333", "GM0118", NIGHT_1, NIGHT_2),
        ("onr:101222331", "GM0119", NIGHT_1, None),
        ("bsn:111222333", "GM1690", NIGHT_2, None),
    ]


def test_replaying_a_night_changes_nothing(engine):
    record_pupils(engine, _pupils("GM0118"), NIGHT_1)
    record_pupils(engine, _pupils("GM1690"), NIGHT_2)
    before = _history(engine)
    record_pupils(engine, _pupils("GM1690"), NIGHT_2)
    record_pupils(engine, _pupils("GM0118"), NIGHT_1)  # an earlier night never rewrites later history
    assert _history(engine) == before
