"""The warehouse: the few tables that need SQL (quarantine now; pupils, alerts and the export log later).

Bulk data stays in Parquet (``connectors.lake``); the warehouse holds what stewards query, update
and keep a history of. Any SQLAlchemy URL works; tested on SQLite (the embedded default, a file
under ``var/``) and PostgreSQL (``postgresql+psycopg2://``). ``SWV_WAREHOUSE_URL`` names another
one; its password reaches the resource as ``dg.EnvVar`` and never shows in the UI.

Every table lives in the module-level ``metadata``: another module adds its table to the same
``metadata`` and ``Warehouse.ensure_schema()`` creates whatever is missing.

The quarantine keeps one entry per (source, delivery, row fingerprint, column, rule). A delivery
that comes in again with the same bad row only moves ``last_seen``; a corrected re-delivery of
the same file (same source and delivery name) resolves the entries that are gone. Timestamps are
stored in UTC.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import PrivateAttr

from connectors.secrets import env_secret

WAREHOUSE_URL_ENV = "SWV_WAREHOUSE_URL"

metadata = sa.MetaData()


def result_frame(result: sa.Result, columns: list[str] | None = None) -> pd.DataFrame:
    """A query's rows as a frame, built column-wise from plain tuples.

    ``pd.DataFrame(result.all())`` probes every SQLAlchemy ``Row`` for attributes one by one, which
    raised and caught millions of exceptions for a million rows.
    """
    names = columns or list(result.keys())
    rows = result.all()
    values = list(zip(*rows)) if rows else [()] * len(names)
    return pd.DataFrame({name: list(column) for name, column in zip(names, values)}, columns=names)


def create_tables(engine: sa.Engine, tables_of: sa.MetaData, tables: list[sa.Table] | None = None) -> None:
    """``tables_of.create_all``, safe when another process creates the same tables at the same moment.

    Steps of one night may run side by side (the Celery executor's workers): each sees a table is
    missing, and the second ``CREATE`` then fails (SQLite and PostgreSQL: "already exists";
    PostgreSQL also a duplicate row type). Looking again settles it, since the table is there now;
    an error that persists is raised.
    """
    try:
        tables_of.create_all(engine, tables=tables)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
        tables_of.create_all(engine, tables=tables)


@contextlib.contextmanager
def serialized(engine: sa.Engine, name: str) -> Iterator[sa.Connection]:
    """A transaction that holds the write lock ``name`` from its first statement to its commit.

    Read-then-write transactions (look up what is stored, insert what is new) of two runs at the
    same moment would both find an entry missing, and the second insert would fail on a unique key,
    or add a duplicate where there is none. Here the second waits until the first has committed and
    then reads what it wrote. SQLite: ``BEGIN IMMEDIATE`` (the database's write lock; the engine
    waits up to its busy timeout). PostgreSQL: a transaction-level advisory lock on ``name``.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.begin()
            if connection.dialect.name == "postgresql":
                key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_COPY_ROWS = 100_000  # rows per COPY statement: the text of one batch is held in memory
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: object) -> str:
    """One value in COPY's text format: NULL as \\N; backslash, tab and line breaks escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.date):  # datetimes too: ISO 8601 with the offset, as PostgreSQL reads it
        return value.isoformat()
    return str(value)


def _copy(cursor, table: str, names: list[str], columns: list[list]) -> None:
    """The rows of ``columns`` into ``table`` by ``COPY ... FROM STDIN`` (psycopg2), in batches."""
    statement = f"COPY {table} ({', '.join(names)}) FROM STDIN"
    texts = [list(map(_copy_text, column)) for column in columns]
    for start in range(0, len(texts[0]), _COPY_ROWS):
        batch = zip(*(column[start:start + _COPY_ROWS] for column in texts))
        cursor.copy_expert(statement, io.StringIO("".join(f"{line}\n" for line in map("\t".join, batch))))


def bulk_insert(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert every row of ``frame`` (columns named as in ``table``) in one DBAPI ``executemany``, or on
    PostgreSQL (psycopg2) by ``COPY``.

    ``connection.execute(table.insert(), records)`` builds and checks a parameter dict per row, a
    cost per row; here each column is converted once (missing values to ``None``,
    then the column type's own bind processing for this database, e.g. dates as ISO text on SQLite)
    and the rows go to the driver as tuples, made one at a time.
    """
    if frame.empty:
        return 0
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    columns = []
    for name in frame.columns:
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            columns.append(frame[name].astype(object).where(frame[name].notna(), None).tolist())
            continue
        codes, distinct = pd.factorize(frame[name])  # each distinct value converted once
        values = np.array([None, *(process(v) for v in distinct.astype(object))], dtype=object)
        columns.append(values[codes + 1].tolist())
    mark = _PLACEHOLDER.get(dialect.paramstyle)
    if mark is None:  # a driver with named parameters only: let SQLAlchemy build them
        connection.execute(table.insert(), frame.astype(object).where(frame.notna(), None).to_dict("records"))
        return len(frame)
    table_name, names = dialect.identifier_preparer.format_table(table), [quote(n) for n in frame.columns]
    into = f"INSERT INTO {table_name} ({', '.join(names)})"
    cursor = connection.connection.cursor()  # the DBAPI cursor takes the rows as they are made, not as a list of millions
    try:
        if dialect.driver == "psycopg2":
            # psycopg2's executemany is a round trip per row; COPY streams every row in one.
            _copy(cursor, table_name, names, columns)
        else:
            cursor.executemany(f"{into} VALUES ({', '.join([mark] * len(frame.columns))})", zip(*columns))
    finally:
        cursor.close()
    return len(frame)


class UtcDateTime(sa.TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite has no time zones: it stores UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


QUARANTINE_KEY = ("source_id", "delivery", "row_fingerprint", "column", "rule")

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(64), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("delivery", sa.Text, nullable=False, comment="File name or URL of the delivery."),
    sa.Column("delivery_sha256", sa.String(64), nullable=False, comment="The delivery this entry was last seen in."),
    sa.Column("delivery_row", sa.Integer, nullable=False, comment="Row number in that delivery (1 = first data row)."),
    sa.Column("row_fingerprint", sa.String(64), nullable=False, comment="sha256 of the delivered values of the row."),
    sa.Column("column", sa.String(64), nullable=False, comment="Canonical field, or '*' for the whole row."),
    sa.Column("rule", sa.String(64), nullable=False, comment="Rule name, see docs/validation.md."),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("value_masked", sa.Text, nullable=True, comment="Delivered value; personal fields masked."),
    sa.Column("first_seen", UtcDateTime, nullable=False),
    sa.Column("last_seen", UtcDateTime, nullable=False),
    sa.Column("resolved_at", UtcDateTime, nullable=True, comment="Set when a re-delivery no longer has the problem."),
    sa.UniqueConstraint(*QUARANTINE_KEY, name="uq_quarantine_entry"),
    sa.Index("ix_quarantine_delivery", "source_id", "delivery", "resolved_at"),
)

_UPDATABLE = ("delivery_sha256", "delivery_row", "message", "value_masked")


@dataclass(frozen=True)
class QuarantineSummary:
    """What one ``record_quarantine`` call did.

    ``new``: entries open now that were not open before (never seen, or seen again after being
    resolved). ``still_open``: open entries seen again. ``resolved``: open entries of a re-delivered
    delivery whose problem is gone.
    """

    new: int
    still_open: int
    resolved: int


def create_engine(url: str | sa.URL) -> sa.Engine:
    """An engine for the warehouse's tables.

    PostgreSQL goes through psycopg2, the one driver in the lock (dagster-postgres requires it): a
    plain ``postgresql://`` URL, which SQLAlchemy 2.1 would give to psycopg 3, means psycopg2 here;
    UPDATEs of many rows go in pages (``execute_batch``), not one round trip per row.
    """
    url = sa.make_url(url)
    options = {}
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    if url.drivername == "postgresql+psycopg2":
        options["executemany_mode"] = "values_plus_batch"
    if url.get_backend_name() == "sqlite":
        # Partitions of one night may write at the same time: wait for the lock, don't fail.
        options["connect_args"] = {"timeout": 30}
        if url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, **options)


class Warehouse(dg.ConfigurableResource):
    """SQL storage for the quarantine (and, later, pupils, alerts and the export log)."""

    url: str

    _engine: sa.Engine | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, default_url: str) -> Warehouse:
        """The warehouse ``SWV_WAREHOUSE_URL`` names (as ``dg.EnvVar``: it holds a password), else ``default_url``."""
        return cls(url=env_secret(WAREHOUSE_URL_ENV) or default_url)

    @classmethod
    def for_command(cls, default_url: str) -> Warehouse:
        """The same warehouse for a command run outside Dagster (``swv accept``, the monitor backfill):
        the URL read from the environment now, never shown anywhere."""
        return cls(url=os.environ.get(WAREHOUSE_URL_ENV) or default_url)

    @property
    def engine(self) -> sa.Engine:
        """Created on first use, once per resource instance."""
        if self._engine is None:
            self._engine = create_engine(self.url)
        return self._engine

    def ensure_schema(self) -> None:
        """Create every table of ``metadata`` that does not exist yet."""
        create_tables(self.engine, metadata)

    def dispose(self) -> None:
        """Close the pooled connections (tests drop their database afterwards)."""
        if self._engine is not None:
            self._engine.dispose()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.dispose()

    def record_quarantine(
        self,
        dataset: str,
        rejects: pd.DataFrame,
        deliveries: list[tuple[str, str, str]],
        seen_at: dt.datetime,
    ) -> QuarantineSummary:
        """Upsert tonight's rejects and resolve what corrected re-deliveries fixed, in one transaction.

        ``rejects`` has the columns of ``schemas.validate.REJECT_COLUMNS``; ``deliveries`` lists every
        (source_id, delivery, sha256) validated tonight, with or without rejects: an open entry of one
        of those deliveries that is absent from ``rejects`` is resolved at ``seen_at``. A naive
        ``seen_at`` is taken as UTC; it must be later than the previous call's.
        """
        entries = rejects.drop_duplicates(list(QUARANTINE_KEY)).reset_index(drop=True)
        delivered = sorted({(source_id, delivery) for source_id, delivery, _ in deliveries})
        strays = set(zip(entries["source_id"], entries["delivery"])) - set(delivered)
        if strays:
            raise ValueError(f"rejects of {len(strays)} delivery/deliveries not listed in `deliveries`")
        with serialized(self.engine, "quarantine") as connection:
            known = _entries_of(connection, delivered)
            matched = entries.merge(known, on=list(QUARANTINE_KEY), how="left")
            seen_before = matched["id"].notna()
            if (~seen_before).any():
                new = matched.loc[~seen_before, list(_INSERTED)].reset_index(drop=True)
                moment = pd.Series([seen_at] * len(new), dtype=object)  # the datetime itself, not a Timestamp
                bulk_insert(connection, quarantine, new.assign(dataset=dataset, first_seen=moment, last_seen=moment))
            if seen_before.any():
                connection.execute(
                    sa.update(quarantine)
                    .where(quarantine.c.id == sa.bindparam("entry_id"))
                    .values(
                        last_seen=sa.bindparam("seen_at"),
                        resolved_at=None,
                        **{name: sa.bindparam(f"new_{name}") for name in _UPDATABLE},
                    ),
                    _update_records(matched.loc[seen_before], seen_at),
                )
            resolved = 0
            if delivered:
                resolved = connection.execute(
                    sa.update(quarantine)
                    .where(
                        sa.tuple_(quarantine.c.source_id, quarantine.c.delivery).in_(delivered),
                        quarantine.c.resolved_at.is_(None),
                        quarantine.c.last_seen < seen_at,
                    )
                    .values(resolved_at=seen_at)
                ).rowcount
        was_open = seen_before & matched["resolved_at"].isna()
        return QuarantineSummary(new=int((~was_open).sum()), still_open=int(was_open.sum()), resolved=int(resolved))

    def quarantine_entries(self, dataset: str | None = None, *, open_only: bool = True) -> pd.DataFrame:
        """Quarantine entries (open ones by default) in the order of their deliveries and rows."""
        query = sa.select(quarantine).order_by(quarantine.c.source_id, quarantine.c.delivery, quarantine.c.delivery_row)
        if dataset is not None:
            query = query.where(quarantine.c.dataset == dataset)
        if open_only:
            query = query.where(quarantine.c.resolved_at.is_(None))
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return pd.DataFrame(rows, columns=[c.name for c in quarantine.columns])


def _entries_of(connection: sa.Connection, delivered: list[tuple[str, str]]) -> pd.DataFrame:
    """Existing entries (open or resolved) of the given (source_id, delivery) pairs."""
    columns = [quarantine.c.id, quarantine.c.resolved_at, *(quarantine.c[name] for name in QUARANTINE_KEY)]
    frame = pd.DataFrame(columns=[c.name for c in columns])
    if delivered:
        query = sa.select(*columns).where(sa.tuple_(quarantine.c.source_id, quarantine.c.delivery).in_(delivered))
        frame = result_frame(connection.execute(query), [c.name for c in columns])
    return frame.astype({name: "str" for name in QUARANTINE_KEY})


_INSERTED = ("source_id", "delivery", "delivery_sha256", "delivery_row", "row_fingerprint", "column", "rule",
             "message", "value_masked")


def _records(entries: pd.DataFrame, **fixed) -> list[dict]:
    columns = list(_INSERTED)
    records = entries.loc[:, columns].astype(object).where(entries.loc[:, columns].notna(), None).to_dict("records")
    for record in records:  # bulk parameters for one executemany, not a round trip per row
        record["delivery_row"] = int(record["delivery_row"])
        record.update(fixed)
    return records


def _update_records(entries: pd.DataFrame, seen_at: dt.datetime) -> list[dict]:
    return [
        {"entry_id": int(entry_id), "seen_at": seen_at, **{f"new_{name}": record[name] for name in _UPDATABLE}}
        for entry_id, record in zip(entries["id"], _records(entries))
    ]
