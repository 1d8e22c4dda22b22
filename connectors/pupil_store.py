"""Pupil identities with validity periods, kept across nights (a type-2 history).

Each night's linked pupils are compared with the open history rows; a pupil whose residence,
school or level changed gets the old row closed (``valid_to`` = the night) and a new one opened.
Replaying the same night changes nothing, so a night can be re-run safely.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from connectors.warehouse import bulk_insert, metadata

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
    """Every open history row. Read through the DBAPI cursor: a million rows through SQLAlchemy's
    result rows and type processing took seconds; ``valid_from`` comes back as the driver gives it
    (a date, or ISO text on SQLite), which ``pd.to_datetime`` reads either way."""
    columns = ["id", "pupil_key", "valid_from", *TRACKED]
    query = sa.select(*(pupil_history.c[c] for c in columns)).where(pupil_history.c.valid_to.is_(None))
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(query.compile(dialect=conn.dialect)))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    values = list(zip(*rows)) if rows else [()] * len(columns)
    frame = pd.DataFrame({name: list(column) for name, column in zip(columns, values)}, columns=columns)
    return frame.astype({c: "str" for c in ("pupil_key", *TRACKED)})


def record_pupils(engine: sa.Engine, pupils: pd.DataFrame, night: dt.date) -> dict[str, int]:
    """Bring the history up to ``night``; returns counts of opened, closed and unchanged rows."""
    metadata.create_all(engine, tables=[pupil_history])
    current = pupils.loc[:, ["pupil_key", *TRACKED]].astype("str")
    with engine.begin() as conn:
        known = _open_rows(conn)
        # A replay of an earlier night must not rewrite later history: only move forward.
        if len(known) and (pd.to_datetime(known["valid_from"]).dt.date > night).any():
            return {"opened": 0, "closed": 0, "unchanged": len(known), "skipped_replay": 1}
        # Compare by position (one hash lookup of the keys), not by an outer merge that sorts both sides.
        known_keys = pa.array(known["pupil_key"], type=pa.large_string())
        current_keys = pa.array(current["pupil_key"], type=pa.large_string())
        position = pc.fill_null(pc.index_in(current_keys, value_set=known_keys), -1).to_numpy()
        matched = position >= 0
        same = matched.copy()
        for column in TRACKED:
            new = current[column].reset_index(drop=True)
            old = known[column].iloc[np.where(matched, position, 0)].reset_index(drop=True) if len(known) else new
            same &= ((new == old).fillna(False) | (new.isna() & old.isna())).to_numpy(dtype=bool)
        gone = ~pc.is_in(known_keys, value_set=current_keys).to_numpy(zero_copy_only=False)
        changed = position[matched & ~same]
        close_ids = [int(i) for i in known["id"].iloc[np.concatenate([np.flatnonzero(gone), changed])]]
        for start in range(0, len(close_ids), 5000):
            conn.execute(pupil_history.update().where(pupil_history.c.id.in_(close_ids[start:start + 5000]))
                         .values(valid_to=night))
        opens = current.loc[~same]
        # In key order: SQLite's index on pupil_key then grows at its end (twice as fast for a million rows).
        opens = opens.iloc[pc.sort_indices(pa.array(opens["pupil_key"], type=pa.large_string())).to_numpy()]
        bulk_insert(conn, pupil_history, opens.loc[:, ["pupil_key", *TRACKED]].assign(valid_from=night))
    return {"opened": len(opens), "closed": len(close_ids), "unchanged": int(same.sum())}
