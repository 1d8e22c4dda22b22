"""Pupil identities with validity periods, kept across nights (a type-2 history).

Each night's linked pupils are compared with the open history rows; a pupil whose residence,
school or level changed gets the old row closed (``valid_to`` = the night) and a new one opened.
Replaying the same night changes nothing, so a night can be re-run safely.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from connectors.warehouse import bulk_insert, metadata, result_frame

TRACKED = ("woongemeente_code", "vo_brin6", "onderwijsniveau")

pupil_history = sa.Table(
    "pupil_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pupil_key", sa.String(32), nullable=False, index=True),
    sa.Column("woongemeente_code", sa.String(6)),
    sa.Column("vo_brin6", sa.String(6)),
    sa.Column("onderwijsniveau", sa.String(16)),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_to", sa.Date),
)


def _open_rows(conn: sa.Connection) -> pd.DataFrame:
    query = sa.select(pupil_history.c.id, pupil_history.c.pupil_key, pupil_history.c.valid_from,
                      *(pupil_history.c[c] for c in TRACKED)).where(pupil_history.c.valid_to.is_(None))
    rows = result_frame(conn.execute(query), ["id", "pupil_key", "valid_from", *TRACKED])
    return rows.astype({c: "str" for c in ("pupil_key", *TRACKED)})


def record_pupils(engine: sa.Engine, pupils: pd.DataFrame, night: dt.date) -> dict[str, int]:
    """Bring the history up to ``night``; returns counts of opened, closed and unchanged rows."""
    metadata.create_all(engine, tables=[pupil_history])
    current = pupils.loc[:, ["pupil_key", *TRACKED]].astype("str")
    with engine.begin() as conn:
        known = _open_rows(conn)
        # A replay of an earlier night must not rewrite later history: only move forward.
        if len(known) and (pd.to_datetime(known["valid_from"]).dt.date > night).any():
            return {"opened": 0, "closed": 0, "unchanged": len(known), "skipped_replay": 1}
        merged = current.merge(known, on="pupil_key", how="outer", suffixes=("", "_old"), indicator=True)
        same = pd.Series(True, index=merged.index)
        for column in TRACKED:
            new, old = merged[column], merged[f"{column}_old"]
            same &= (new == old) | (new.isna() & old.isna())
        stays = (merged["_merge"] == "both") & same
        closes = merged[(merged["_merge"] == "right_only") | ((merged["_merge"] == "both") & ~same)]
        opens = merged[(merged["_merge"] == "left_only") | ((merged["_merge"] == "both") & ~same)]
        close_ids = [int(i) for i in closes["id"].dropna()]
        for start in range(0, len(close_ids), 5000):
            conn.execute(pupil_history.update().where(pupil_history.c.id.in_(close_ids[start:start + 5000]))
                         .values(valid_to=night))
        bulk_insert(conn, pupil_history, opens.loc[:, ["pupil_key", *TRACKED]].assign(valid_from=night))
    return {"opened": len(opens), "closed": len(close_ids), "unchanged": int(stays.sum())}
