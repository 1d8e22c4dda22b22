"""The export log: which file went to which municipality, on what legal basis, and what arrived.

AVG accountability (docs/domain.md §7; §9 item 15: "log every export (recipient, rows, legal
basis)"). One row per delivered file version: recipient gemeente, folder, file, rows, sha256,
grondslag, when it was generated, and, once uploaded, when and with which sha256 the receiver
confirmed it. The row holds no personal data: names of files, counts and checksums only.

A file version is identified by (gemeente, folder, file, sha256): recording the same export twice
(a re-run of the night) adds nothing, so the log counts deliveries, not runs. SQLAlchemy Core with
its own ``MetaData``, so SQLite (the embedded default) and PostgreSQL behave alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import pandas as pd
import sqlalchemy as sa

from connectors.warehouse import create_engine, create_tables, result_frame, serialized

METADATA = sa.MetaData()

export_log = sa.Table(
    "export_log",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("gemeente", sa.String(6), nullable=False, comment="Recipient: CBS gemeentecode."),
    sa.Column("folder", sa.String(255), nullable=False, comment="Outbox folder, e.g. gemeenten/GM0118/2026-10-05."),
    sa.Column("file", sa.String(128), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("grondslag", sa.String(255), nullable=False, comment="Legal basis of this file (AVG)."),
    sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("uploaded_at", sa.DateTime(timezone=True)),
    sa.Column("receiver_sha256", sa.String(64), comment="sha256 the receiver reported for what it received."),
    sa.UniqueConstraint("gemeente", "folder", "file", "sha256", name="uq_export_log_version"),
)

COLUMNS = tuple(c.name for c in export_log.columns)


class HasEngine(Protocol):
    """What the log needs from the ``warehouse`` resource."""

    @property
    def engine(self) -> sa.Engine: ...


@dataclass(frozen=True)
class ExportedFile:
    """One file of an export as the log records it."""

    file: str
    rows: int
    sha256: str
    grondslag: str


@dataclass(frozen=True)
class UploadedFile:
    """One file as a receiver confirmed it."""

    file: str
    sha256: str
    receiver_sha256: str
    uploaded_at: dt.datetime


class ExportLog:
    """The ``export_log`` table on one database; pass an Engine or a URL."""

    def __init__(self, engine: sa.Engine | str):
        self.engine = create_engine(engine) if isinstance(engine, str) else engine

    def create(self) -> None:
        create_tables(self.engine, METADATA)

    def record_export(self, gemeente: str, folder: str, files: Iterable[ExportedFile],
                      generated_at: dt.datetime) -> int:
        """Log the files of one export; versions already logged are left alone. Returns rows added."""
        files = list(files)
        with serialized(self.engine, "export_log") as conn:
            known = {
                (row.file, row.sha256)
                for row in conn.execute(
                    sa.select(export_log.c.file, export_log.c.sha256)
                    .where(export_log.c.gemeente == gemeente, export_log.c.folder == folder)
                )
            }
            new = [
                {"gemeente": gemeente, "folder": folder, "file": f.file, "rows": f.rows, "sha256": f.sha256,
                 "grondslag": f.grondslag, "generated_at": generated_at}
                for f in files if (f.file, f.sha256) not in known
            ]
            if new:
                conn.execute(export_log.insert(), new)
        return len(new)

    def record_upload(self, gemeente: str, folder: str, uploads: Iterable[UploadedFile]) -> None:
        """Add the receiver's confirmation to the logged versions that were uploaded."""
        statement = (
            export_log.update()
            .where(export_log.c.gemeente == gemeente, export_log.c.folder == folder,
                   export_log.c.file == sa.bindparam("f_file"), export_log.c.sha256 == sa.bindparam("f_sha256"))
            .values(uploaded_at=sa.bindparam("f_uploaded_at"), receiver_sha256=sa.bindparam("f_receiver"))
        )
        rows = [{"f_file": u.file, "f_sha256": u.sha256, "f_uploaded_at": u.uploaded_at,
                 "f_receiver": u.receiver_sha256} for u in uploads]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(statement, rows)

    def not_uploaded(self, gemeente: str, folder: str, sha256_by_file: dict[str, str]) -> list[str]:
        """Files of the current version of ``folder`` that no receiver has confirmed yet."""
        with self.engine.connect() as conn:
            confirmed = {
                (row.file, row.sha256)
                for row in conn.execute(
                    sa.select(export_log.c.file, export_log.c.sha256)
                    .where(export_log.c.gemeente == gemeente, export_log.c.folder == folder,
                           export_log.c.receiver_sha256 == export_log.c.sha256)
                )
            }
        return [name for name, digest in sha256_by_file.items() if (name, digest) not in confirmed]

    def rows(self, gemeente: str | None = None) -> pd.DataFrame:
        query = sa.select(export_log).order_by(export_log.c.id)
        if gemeente is not None:
            query = query.where(export_log.c.gemeente == gemeente)
        with self.engine.connect() as conn:
            return result_frame(conn.execute(query), list(COLUMNS))
