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

from connectors.warehouse import bulk_insert, create_tables, metadata, serialized

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
    """Every open history row: its id, key and tracked values.

    Read through the DBAPI cursor and turned into Arrow-backed columns in one call per column: a
    million rows through SQLAlchemy's result rows, or through ``pd.DataFrame`` from lists, cost a
    Python object per value on every night after the first.
    """
    columns = ["id", "pupil_key", *TRACKED]
    query = sa.select(*(pupil_history.c[c] for c in columns)).where(pupil_history.c.valid_to.is_(None))
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(query.compile(dialect=conn.dialect)))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    values = list(zip(*rows)) if rows else [()] * len(columns)
    frame = {"id": np.array(values[0], dtype=np.int64)}
    for name, column in zip(columns[1:], values[1:]):
        frame[name] = pd.Series(pd.arrays.ArrowStringArray(pa.array(column, type=pa.large_string())), dtype="str")
    return pd.DataFrame(frame, columns=columns)


def _last_night(conn: sa.Connection) -> dt.date | None:
    """The latest ``valid_from`` in the history (the last night recorded), or None when it is empty."""
    latest = conn.execute(sa.select(sa.func.max(pupil_history.c.valid_from))).scalar()
    return None if latest is None else pd.Timestamp(latest).date()


def _without_key_index(conn: sa.Connection, load) -> None:
    """Run ``load`` with the index on ``pupil_key`` dropped, and build the index afterwards."""
    index = next(index for index in pupil_history.indexes if [c.name for c in index.columns] == ["pupil_key"])
    index.drop(conn)
    load()
    index.create(conn)


def pupils_as_of(engine: sa.Engine, night: dt.date) -> pd.DataFrame:
    """The pupils as the history recorded them on ``night``: ``pupil_key`` and the tracked fields.

    A row counts when ``valid_from <= night`` and it was not closed by then (``valid_to`` empty or
    later). Empty when the history does not reach back to ``night`` (or does not exist yet).
    """
    columns = ["pupil_key", *TRACKED]
    if not sa.inspect(engine).has_table(pupil_history.name):
        return pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
    query = sa.select(*(pupil_history.c[c] for c in columns)).where(
        pupil_history.c.valid_from <= night,
        sa.or_(pupil_history.c.valid_to.is_(None), pupil_history.c.valid_to > night))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    values = list(zip(*rows)) if rows else [()] * len(columns)
    return pd.DataFrame({c: pd.Series(list(v), dtype="str") for c, v in zip(columns, values)}, columns=columns)


def record_pupils(engine: sa.Engine, pupils: pd.DataFrame, night: dt.date) -> dict[str, int]:
    """Bring the history up to ``night``; returns counts of opened, closed and unchanged rows."""
    create_tables(engine, metadata, [pupil_history])
    current = pupils.loc[:, ["pupil_key", *TRACKED]].astype("str")
    with serialized(engine, "pupil_history") as conn:
        # A replay of an earlier night must not rewrite later history: only move forward.
        last = _last_night(conn)
        if last is not None and last > night:
            unchanged = conn.execute(sa.select(sa.func.count()).where(pupil_history.c.valid_to.is_(None))).scalar()
            return {"opened": 0, "closed": 0, "unchanged": int(unchanged), "skipped_replay": 1}
        known = _open_rows(conn)
        # Compare by position (one hash lookup of the keys), not by an outer merge that sorts both sides;
        # on Arrow arrays, not pandas' take and comparisons.
        new = pa.Table.from_pandas(current, preserve_index=False)
        old = pa.Table.from_pandas(known.loc[:, ["pupil_key", *TRACKED]], preserve_index=False)
        position = pc.fill_null(pc.index_in(new["pupil_key"], value_set=old["pupil_key"]), -1).to_numpy()
        matched = position >= 0
        same = matched.copy()
        if len(known):
            at = pa.array(np.where(matched, position, 0))
            for column in TRACKED:
                before = old[column].take(at)
                equal = pc.or_kleene(pc.equal(new[column], before),
                                     pc.and_(pc.is_null(new[column]), pc.is_null(before)))
                same &= pc.fill_null(equal, False).to_numpy(zero_copy_only=False)
        gone = ~pc.is_in(old["pupil_key"], value_set=new["pupil_key"]).to_numpy(zero_copy_only=False)
        changed = position[matched & ~same]
        close_ids = [int(i) for i in known["id"].to_numpy()[np.concatenate([np.flatnonzero(gone), changed])]]
        for start in range(0, len(close_ids), 5000):
            conn.execute(pupil_history.update().where(pupil_history.c.id.in_(close_ids[start:start + 5000]))
                         .values(valid_to=night))
        opens = new.filter(pa.array(~same))
        if last is None:  # the first night: a B-tree built once from all keys is faster than grown row by row
            rows = opens.to_pandas().assign(valid_from=night)
            _without_key_index(conn, lambda: bulk_insert(conn, pupil_history, rows))
        else:
            # In key order: SQLite's index on pupil_key then grows at its end (twice as fast for many rows).
            rows = opens.take(pc.sort_indices(opens["pupil_key"])).to_pandas().assign(valid_from=night)
            bulk_insert(conn, pupil_history, rows)
    return {"opened": len(opens), "closed": len(close_ids), "unchanged": int(same.sum())}
