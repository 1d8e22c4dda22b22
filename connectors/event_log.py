"""Dagster's run-sharded SQLite event log, with its database connections kept open.

The embedded default keeps the Dagster instance in SQLite under ``$DAGSTER_HOME``: one database
per run plus an index database. Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine
and connection for every event it stores and every query it answers, and for every new run's
database it parses all of its alembic migration scripts twice just to stamp the head revision. A
region's night (eleven runs, about 450 events) spent 3.2 s of its 13 s there (``bench/README.md``).

``SqliteEventLogStorage`` here is Dagster's class with two changes:

- one engine per database, kept open (the index and the most recently used run databases), so an
  event is an ``INSERT`` and a commit on an open connection;
- its connections commit with ``synchronous=NORMAL``, SQLite's recommended setting for WAL
  databases (Dagster's are): a commit appends to the write-ahead log without waiting for the disk,
  which is synced at each checkpoint. The database stays consistent after any crash; a power cut
  can lose the last events before a checkpoint, the price of not syncing four hundred times a night;
- a new run database is created with Dagster's own schema and stamped with the head revision,
  read from the migration scripts once per process (alembic's ``MigrationContext.stamp``).

Same files, same layout, same schema and revision: the webserver, the daemon and
``dagster instance migrate`` see no difference, and an existing ``DAGSTER_HOME`` can switch to it
or back. ``deploy/dagster.local.yaml`` selects it; PostgreSQL instances do not use it.

It builds on Dagster internals (``_connect``, ``_initdb``), so a Dagster upgrade must pass
``tests/test_event_log.py``, which compares its databases with Dagster's own.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster import Field, StringSource
from dagster._core.storage.event_log import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.sql import get_alembic_config
from dagster._serdes import ConfigurableClassData

RUN_DATABASES_KEPT_OPEN = 8  # a night's runs follow one another; the webserver reads the recent ones
_STORAGES: weakref.WeakSet[SqliteEventLogStorage] = weakref.WeakSet()


def default_base_dir() -> str:
    """Where Dagster's default SQLite storage keeps the event logs: ``$DAGSTER_HOME/history/runs``."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("DAGSTER_HOME is not set: give the event log storage a base_dir or set DAGSTER_HOME")
    return os.path.join(home, "history", "runs", "")


@functools.cache
def _event_log_scripts() -> ScriptDirectory:
    """Dagster's alembic migration scripts for the event log, parsed once per process."""
    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


class SqliteEventLogStorage(sqlite_event_log.SqliteEventLogStorage):
    """Dagster's ``SqliteEventLogStorage`` with one open engine per database (see the module docstring).

    ``base_dir`` defaults to ``$DAGSTER_HOME/history/runs``, where Dagster's default storage keeps them.
    """

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, sa.Engine] = OrderedDict()
        super().__init__(base_dir or default_base_dir(), inst_data)
        _STORAGES.add(self)

    @classmethod
    def config_type(cls) -> Mapping[str, Field]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> SqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        # Dagster's own lock: one statement at a time per process (the UI's event watcher is a thread).
        with self._db_lock:
            with self._engine(shard).connect() as connection, connection.begin():
                yield connection

    def _engine(self, shard: str) -> sa.Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = sa.create_engine(self.conn_string_for_shard(shard),
                                      connect_args={"timeout": sqlite_event_log.SQLITE_BUSY_TIMEOUT_SECONDS})
            sa.event.listen(engine, "connect", _sync_at_checkpoints)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine  # most recently used last
        if len(self._engines) > RUN_DATABASES_KEPT_OPEN + 1:  # the runs' and the index, which stays
            oldest = next(name for name in self._engines if name != sqlite_event_log.INDEX_SHARD_NAME)
            self._engines.pop(oldest).dispose()
        return engine

    def _initdb(self, engine: sa.Engine, for_index_shard: bool = False) -> None:
        """Create a new database as Dagster does, with the head revision found once per process.

        Only an empty database is created here. One that has tables without a revision (made by
        an older Dagster, or being made by another process at this moment) goes through Dagster's
        own ``_initdb``, with its special cases and retries.
        """
        try:
            with engine.connect() as connection:
                migrations = MigrationContext.configure(connection)
                if migrations.get_current_revision() is not None:
                    return
                if not sa.inspect(connection).get_table_names():
                    connection.exec_driver_sql("PRAGMA journal_mode=WAL")
                    SqlEventLogStorageMetadata.create_all(connection)
                    migrations.stamp(_event_log_scripts(), "head")
                    connection.commit()
                    return
        except (sa.exc.DatabaseError, sqlite3.DatabaseError):
            pass
        super()._initdb(engine, for_index_shard)

    def upgrade(self) -> None:
        self._close_engines()
        super().upgrade()

    def wipe(self) -> None:
        self._close_engines()
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()

    def _close_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def _forget_engines_after_fork(self) -> None:
        """A forked child must not use its parent's SQLite connections: it opens its own."""
        for engine in self._engines.values():
            engine.dispose(close=False)
        self._engines.clear()


def _sync_at_checkpoints(dbapi_connection: sqlite3.Connection, _record) -> None:
    """``synchronous=NORMAL`` on a new connection (a per-connection setting; see the module docstring)."""
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _after_fork_in_child() -> None:
    for storage in list(_STORAGES):
        storage._forget_engines_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
