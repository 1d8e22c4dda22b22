"""The monitor's history in the warehouse: one row per (night, indicator, area, category).

The table ``monitor_indicators`` keeps every night's indicator values as computed, *before* small
numbers are suppressed (the warehouse is the protected store), each with ``published``: how it may
be published (``assets.monitor.publish``). ``category`` is ``""`` for an indicator's total.

A night is written as a whole, in one transaction, and only when its rows differ from what is
stored: re-running a night replaces its own rows and leaves an unchanged night untouched, down to
``recorded_at``. ``source`` says how a night's rows came about: ``night`` (the nightly run) or
``backfill`` (recomputed afterwards, ``pipelines/commands/monitor_backfill.py``). SQLAlchemy Core with its own
``MetaData``, so SQLite and PostgreSQL behave alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import numpy as np
import pandas as pd
import sqlalchemy as sa

from connectors.warehouse import UtcDateTime, create_tables, result_frame

METADATA = sa.MetaData()

monitor_indicators = sa.Table(
    "monitor_indicators",
    METADATA,
    sa.Column("night", sa.Date, primary_key=True),
    sa.Column("indicator", sa.String(64), primary_key=True, comment="Indicator code, docs/monitor.md."),
    sa.Column("area", sa.String(16), primary_key=True, comment="REGIO, a GM code, or OVERIG."),
    sa.Column("category", sa.String(64), primary_key=True, comment="'' for the total, else a category code."),
    sa.Column("numerator", sa.Float),
    sa.Column("denominator", sa.Float),
    sa.Column("value", sa.Float),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("published", sa.String(4), comment="How it may be published: '' shown, else '<5', 'x', '.' or '–'."),
    sa.Column("source", sa.String(16), nullable=False, comment="night or backfill."),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
)

KEY = ("night", "indicator", "area", "category")
VALUES = ("numerator", "denominator", "value", "unit", "published")
COLUMNS = (*KEY, *VALUES, "source")
SOURCES = ("night", "backfill")


class MonitorStore:
    """The ``monitor_indicators`` table on one database; pass an Engine or a URL."""

    def __init__(self, engine: sa.Engine | str):
        self.engine = sa.create_engine(engine) if isinstance(engine, str) else engine

    def create(self) -> None:
        create_tables(self.engine, METADATA)

    # -- reading -------------------------------------------------------------------------------

    def nights(self) -> list[dt.date]:
        """Every night in the history, oldest first."""
        query = sa.select(monitor_indicators.c.night).distinct().order_by(monitor_indicators.c.night)
        with self.engine.connect() as conn:
            return [_date(night) for (night,) in conn.execute(query)]

    def night_before(self, night: dt.date) -> dt.date | None:
        """The latest night in the history before ``night``."""
        query = sa.select(sa.func.max(monitor_indicators.c.night)).where(monitor_indicators.c.night < night)
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one()
        return None if found is None else _date(found)

    def history(self, *, since: dt.date | None = None, until: dt.date | None = None) -> pd.DataFrame:
        """Rows of the nights from ``since`` to ``until`` (both included), in key order."""
        query = sa.select(*(monitor_indicators.c[c] for c in COLUMNS)).order_by(
            *(monitor_indicators.c[c] for c in KEY))
        if since is not None:
            query = query.where(monitor_indicators.c.night >= since)
        if until is not None:
            query = query.where(monitor_indicators.c.night <= until)
        with self.engine.connect() as conn:
            return typed(result_frame(conn.execute(query), list(COLUMNS)))

    # -- writing -------------------------------------------------------------------------------

    def replace_night(self, night: dt.date, rows: pd.DataFrame, *, source: str,
                      keep: Collection[str] = ()) -> bool:
        """Make ``rows`` the night's rows; the indicators in ``keep`` keep their stored rows.

        Returns False when nothing changed (the stored rows equal ``rows``): then nothing is written.
        ``rows`` has the columns ``KEY`` and ``VALUES`` (``published`` may be missing: then stored
        empty); its ``night`` must be ``night``.
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        if len(rows) and not (pd.to_datetime(rows["night"]).dt.date == night).all():
            raise ValueError(f"rows of other nights given for night {night}")
        new = typed(rows.reindex(columns=[*KEY, *VALUES]).assign(source=source))
        with self.engine.begin() as conn:
            stored = typed(result_frame(conn.execute(
                sa.select(*(monitor_indicators.c[c] for c in COLUMNS)).where(monitor_indicators.c.night == night)),
                list(COLUMNS)))
            replaced = stored.loc[~stored["indicator"].isin(list(keep))]
            if same_rows(replaced, new):
                return False
            condition = monitor_indicators.c.night == night
            if keep:
                condition = sa.and_(condition, monitor_indicators.c.indicator.not_in(list(keep)))
            conn.execute(monitor_indicators.delete().where(condition))
            if len(new):
                now = dt.datetime.now(dt.UTC)
                conn.execute(monitor_indicators.insert(), _records(new, now))
        return True


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The table's columns with their types: nights as dates, numbers as floats, the rest as text."""
    out = frame.copy()
    out["night"] = pd.to_datetime(out["night"]).astype("datetime64[s]")
    for column in ("numerator", "denominator", "value"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    for column in ("indicator", "area", "category", "unit", "published", "source"):
        if column in out.columns:
            out[column] = out[column].astype("str")
    return out


def same_rows(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Equal sets of rows (``KEY`` and ``VALUES``), in any order; numbers equal to 1e-9."""
    if len(left) != len(right):
        return False
    columns = [*KEY, *VALUES]
    a = left.loc[:, columns].sort_values(list(KEY), ignore_index=True)
    b = right.loc[:, columns].sort_values(list(KEY), ignore_index=True)
    text = [*KEY, "unit", "published"]
    if not a.loc[:, text].equals(b.loc[:, text]):
        return False
    return all(np.allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=0, atol=1e-9, equal_nan=True)
               for c in ("numerator", "denominator", "value"))


def _date(value) -> dt.date:
    return pd.Timestamp(value).date()


def _records(frame: pd.DataFrame, recorded_at: dt.datetime) -> list[dict]:
    records = []
    for row in frame.itertuples(index=False):
        record = {c: getattr(row, c) for c in COLUMNS}
        record["night"] = _date(record["night"])
        for column in ("numerator", "denominator", "value", "published"):
            record[column] = None if pd.isna(record[column]) else record[column]
        record["recorded_at"] = recorded_at
        records.append(record)
    return records
