"""Alert lifecycle tables in the warehouse: the current state of every alert and its full history.

Three tables with their own ``MetaData``:

- ``alerts``: one row per alert (pupil, reason, episode) with its current status, the night it was
  first raised, ``resolved_on``, and the last known descriptive fields (woongemeente, school,
  episode start, weeks, detail); a row is only written when one of these changes. The pupil key is
  kept here (the warehouse is the protected store that links alerts to pupils); the alert id itself
  is a keyed hash that reveals nothing.
- ``alert_events``: every status transition, ``(night, alert_id, from_status, to_status)``; at most
  one per alert per night (primary key), so a replay cannot add a duplicate.
- ``alert_nights``: the nights that have been recorded, with their counts. A night is recorded in one
  transaction, all or nothing; recording the same night twice fails on this table's primary key.

The store writes and reads; what the transitions are is decided in ``assets.signalen.alert_assets``.
SQLAlchemy Core only, so SQLite (the embedded default) and PostgreSQL behave alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol

import numpy as np
import pandas as pd
import sqlalchemy as sa

from connectors.warehouse import create_engine, create_tables, serialized

METADATA = sa.MetaData()

ACTIVE_STATUSES = ("new", "open", "reopened")
STATUSES = (*ACTIVE_STATUSES, "resolved")

alerts = sa.Table(
    "alerts",
    METADATA,
    sa.Column("alert_id", sa.String(32), primary_key=True),
    sa.Column("pupil_key", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("first_night", sa.Date, nullable=False),
    sa.Column("resolved_on", sa.Date),
    sa.Column("episode_start", sa.Date, nullable=False, comment="When the situation began (latest evaluation)."),
    sa.Column("woongemeente_code", sa.String(6)),
    sa.Column("vo_brin6", sa.String(6)),
    sa.Column("weeks", sa.Integer),
    sa.Column("detail", sa.String(500)),
    sa.Index("ix_alerts_pupil_reason", "pupil_key", "reason"),
)

alert_events = sa.Table(
    "alert_events",
    METADATA,
    sa.Column("night", sa.Date, primary_key=True),
    sa.Column("alert_id", sa.String(32), sa.ForeignKey("alerts.alert_id"), primary_key=True),
    sa.Column("from_status", sa.String(10)),
    sa.Column("to_status", sa.String(10), nullable=False),
)

alert_nights = sa.Table(
    "alert_nights",
    METADATA,
    sa.Column("night", sa.Date, primary_key=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("active", sa.Integer, nullable=False),
    sa.Column("new", sa.Integer, nullable=False),
    sa.Column("reopened", sa.Integer, nullable=False),
    sa.Column("resolved", sa.Integer, nullable=False),
)

ALERT_FIELDS = tuple(c.name for c in alerts.columns)
EVENT_FIELDS = tuple(c.name for c in alert_events.columns)
_DATE_FIELDS = ("first_night", "resolved_on", "episode_start")


class HasEngine(Protocol):
    """What the store needs from the ``warehouse`` resource."""

    @property
    def engine(self) -> sa.Engine: ...


class AlertStoreError(RuntimeError):
    """A night cannot be recorded (out of order, or recorded concurrently)."""


class AlertStore:
    """The alert tables on one database; pass an Engine or a URL (``sqlite:///...``, ``postgresql+psycopg2://...``)."""

    def __init__(self, engine: sa.Engine | str):
        self.engine = create_engine(engine) if isinstance(engine, str) else engine

    def create(self) -> None:
        create_tables(self.engine, METADATA)

    # -- reading -------------------------------------------------------------------------------

    def last_night(self) -> dt.date | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(alert_nights.c.night))).scalar_one()

    def night_recorded(self, night: dt.date) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(alert_nights.c.night).where(alert_nights.c.night == night)).first()
        return found is not None

    def alerts(self) -> pd.DataFrame:
        """Every alert with its current state."""
        with self.engine.connect() as conn:
            return _frame(conn.execute(sa.select(alerts)))

    def events(self, night: dt.date | None = None) -> pd.DataFrame:
        query = sa.select(alert_events).order_by(alert_events.c.night, alert_events.c.alert_id)
        if night is not None:
            query = query.where(alert_events.c.night == night)
        with self.engine.connect() as conn:
            return _frame(conn.execute(query))

    def as_of(self, night: dt.date) -> pd.DataFrame:
        """Alerts active on ``night`` or resolved that night, with their status as of that night.

        Statuses come from the event history, so an earlier night reads as it was; the descriptive
        fields are the latest known.
        """
        last = (sa.select(alert_events.c.alert_id, sa.func.max(alert_events.c.night).label("night"))
                .where(alert_events.c.night <= night).group_by(alert_events.c.alert_id).subquery())
        status = alert_events.c.to_status
        query = (
            sa.select(*(alerts.c[f] for f in ALERT_FIELDS if f not in ("status", "resolved_on")),
                      status.label("status"), last.c.night.label("event_night"))
            .join_from(alerts, last, last.c.alert_id == alerts.c.alert_id)
            .join(alert_events, sa.and_(alert_events.c.alert_id == last.c.alert_id,
                                        alert_events.c.night == last.c.night))
            .where(sa.or_(status.in_(ACTIVE_STATUSES), last.c.night == night))
        )
        with self.engine.connect() as conn:
            frame = _frame(conn.execute(query))
        resolved_on = frame["event_night"].where(frame["status"] == "resolved")
        return frame.assign(resolved_on=resolved_on).drop(columns="event_night").loc[:, list(ALERT_FIELDS)]

    def transitions(self, night: dt.date) -> dict[str, int]:
        """Counts of tonight's transitions: new, reopened, resolved, and open (from new or reopened)."""
        events = self.events(night)
        counts = events["to_status"].value_counts()
        return {status: int(counts.get(status, 0)) for status in ("new", "open", "reopened", "resolved")}

    # -- writing -------------------------------------------------------------------------------

    def record_night(self, night: dt.date, inserts: pd.DataFrame, updates: pd.DataFrame,
                     events: pd.DataFrame, active: int) -> None:
        """Write one night's new alerts, changed alerts and events in one transaction.

        Refuses a night that is not after the last recorded one: history is only ever extended.
        """
        counts = events["to_status"].value_counts()
        with serialized(self.engine, "alerts") as conn:
            last = conn.execute(sa.select(sa.func.max(alert_nights.c.night))).scalar_one()
            if last is not None and night <= last:
                raise AlertStoreError(f"night {night} is not after the last recorded night {last}; "
                                      "nights are recorded in order and a recorded night is never rewritten")
            try:
                conn.execute(alert_nights.insert().values(
                    night=night, recorded_at=dt.datetime.now(dt.UTC), active=active,
                    new=int(counts.get("new", 0)), reopened=int(counts.get("reopened", 0)),
                    resolved=int(counts.get("resolved", 0))))
            except sa.exc.IntegrityError as exc:
                raise AlertStoreError(f"night {night} is being recorded by another run") from exc
            if len(inserts):
                conn.execute(alerts.insert(), _records(inserts, ALERT_FIELDS))
            if len(updates):
                fields = [f for f in ALERT_FIELDS if f != "alert_id"]
                statement = (alerts.update().where(alerts.c.alert_id == sa.bindparam("key"))
                             .values({f: sa.bindparam(f) for f in fields}))
                rows = _records(updates, ALERT_FIELDS)
                conn.execute(statement, [{"key": r.pop("alert_id"), **r} for r in rows])
            if len(events):
                conn.execute(alert_events.insert(), _records(events, EVENT_FIELDS))


def _is_date(column: str) -> bool:
    return column in _DATE_FIELDS or column in ("night", "event_night")


def _python_values(series: pd.Series, column: str) -> list:
    """One column as plain Python values for the driver: ``date``, ``int``, ``str`` or ``None``."""
    if _is_date(column):
        return pd.to_datetime(series).to_numpy(dtype="datetime64[D]").astype(object).tolist()
    values = series.astype("Int64" if column == "weeks" else object)
    return [None if pd.isna(v) else v for v in values.tolist()]


def _records(frame: pd.DataFrame, fields: Iterable[str]) -> list[dict]:
    fields = list(fields)
    columns = [_python_values(frame[f], f) for f in fields]
    return [dict(zip(fields, row, strict=True)) for row in zip(*columns, strict=True)] if fields else []


def _frame(result: sa.CursorResult) -> pd.DataFrame:
    """Rows as a typed frame: dates as datetime64, weeks as Int64, the rest as text."""
    names = list(result.keys())
    rows = result.all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    data = {}
    for name, values in zip(names, columns, strict=True):
        if _is_date(name):
            data[name] = pd.Series(np.array(values, dtype="datetime64[D]"), dtype="datetime64[s]")
        elif name == "weeks":
            data[name] = pd.Series(values, dtype="Int64")
        else:
            data[name] = pd.Series(values, dtype="str")
    return pd.DataFrame(data, columns=names)
