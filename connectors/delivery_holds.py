"""Deliveries held back, and the steward's acceptance of a real drop in volume (warehouse table ``delivery_holds``).

A delivery is held back when it cannot be read, breaks the contract of its dataset, or is much
smaller than the last good delivery it replaces (``assets.bronnen.ingest``); the night then goes on
with that last good delivery. Each hold is one row per (source, delivery, sha256, kind): a night
that meets the same delivery again only moves ``last_held_at``.

A drop in volume can be real (a school closed, a municipality's waitlist emptied). The steward
accepts it with ``swv accept`` (docs/runbook.md): that sets ``accepted_at``,
``accepted_by`` and ``acceptance_reason`` on the hold, and the next run takes exactly that delivery
(the same sha256) as good. No personal data: names, counts, checksums and the reasons the pipeline wrote.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from connectors.warehouse import UtcDateTime, create_tables, result_frame, serialized

METADATA = sa.MetaData()
KINDS = ("unreadable", "contract", "volume")
WHOLE_SOURCE = "*"  # the delivery name of a hold on a source as a whole

delivery_holds = sa.Table(
    "delivery_holds",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("delivery", sa.Text, nullable=False, comment="File name or URL; '*' for the source as a whole."),
    sa.Column("delivery_sha256", sa.String(64), nullable=False, comment="'' when nothing could be read."),
    sa.Column("kind", sa.String(16), nullable=False, comment="unreadable, contract or volume."),
    sa.Column("rows", sa.Integer, comment="Data rows delivered (volume and contract holds)."),
    sa.Column("expected_rows", sa.Integer, comment="Rows of the last good delivery it was compared with."),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("kept", sa.Text, nullable=False, comment="What the night used instead."),
    sa.Column("first_held_at", UtcDateTime, nullable=False),
    sa.Column("last_held_at", UtcDateTime, nullable=False),
    sa.Column("accepted_at", UtcDateTime),
    sa.Column("accepted_by", sa.String(128)),
    sa.Column("acceptance_reason", sa.Text),
    sa.UniqueConstraint("source_id", "delivery", "delivery_sha256", "kind", name="uq_delivery_hold"),
)

COLUMNS = tuple(c.name for c in delivery_holds.columns)


@dataclass(frozen=True)
class Hold:
    """A delivery held back tonight, and what the night used instead."""

    source_id: str
    delivery: str
    sha256: str
    kind: str
    reason: str
    kept: str
    rows: int | None = None
    expected_rows: int | None = None

    def as_dict(self) -> dict:
        return {"source_id": self.source_id, "delivery": self.delivery, "kind": self.kind, "reason": self.reason,
                "kept": self.kept, "rows": self.rows, "expected_rows": self.expected_rows}


class HoldNotFound(LookupError):
    """No held-back delivery matches what the steward asked to accept."""


class DeliveryHolds:
    """The ``delivery_holds`` table on one database; pass an Engine."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def create(self) -> None:
        create_tables(self.engine, METADATA)

    def record(self, holds: list[Hold], held_at: dt.datetime) -> None:
        """Add tonight's holds; one already known only moves its ``last_held_at``."""
        if not holds:
            return
        self.create()
        with serialized(self.engine, "delivery_holds") as conn:
            for hold in holds:
                key = (delivery_holds.c.source_id == hold.source_id, delivery_holds.c.delivery == hold.delivery,
                       delivery_holds.c.delivery_sha256 == hold.sha256, delivery_holds.c.kind == hold.kind)
                updated = conn.execute(delivery_holds.update().where(*key).values(
                    last_held_at=held_at, reason=hold.reason, kept=hold.kept)).rowcount
                if not updated:
                    conn.execute(delivery_holds.insert().values(
                        source_id=hold.source_id, delivery=hold.delivery, delivery_sha256=hold.sha256,
                        kind=hold.kind, rows=hold.rows, expected_rows=hold.expected_rows, reason=hold.reason,
                        kept=hold.kept, first_held_at=held_at, last_held_at=held_at))

    def accepted(self, source_id: str) -> set[tuple[str, str]]:
        """(delivery, sha256) of the source's volume holds that a steward accepted."""
        if not sa.inspect(self.engine).has_table(delivery_holds.name):
            return set()
        query = sa.select(delivery_holds.c.delivery, delivery_holds.c.delivery_sha256).where(
            delivery_holds.c.source_id == source_id, delivery_holds.c.kind == "volume",
            delivery_holds.c.accepted_at.is_not(None))
        with self.engine.connect() as conn:
            return {(row.delivery, row.delivery_sha256) for row in conn.execute(query)}

    def accept(self, source_id: str, *, delivery: str | None, by: str, reason: str, at: dt.datetime) -> pd.DataFrame:
        """Accept the source's newest open volume hold (of ``delivery``, when given); returns the accepted rows.

        Only the newest delivery per name is accepted: an older one was replaced by the newer.
        """
        self.create()
        with serialized(self.engine, "delivery_holds") as conn:
            query = sa.select(delivery_holds).where(
                delivery_holds.c.source_id == source_id, delivery_holds.c.kind == "volume",
                delivery_holds.c.accepted_at.is_(None))
            if delivery is not None:
                query = query.where(delivery_holds.c.delivery == delivery)
            open_holds = result_frame(conn.execute(query), list(COLUMNS))
            if open_holds.empty:
                what = f"{source_id} {delivery}" if delivery else source_id
                raise HoldNotFound(f"no delivery of {what} is held back for its volume")
            newest = open_holds.sort_values("last_held_at").drop_duplicates("delivery", keep="last")
            conn.execute(delivery_holds.update().where(delivery_holds.c.id.in_([int(i) for i in newest["id"]]))
                         .values(accepted_at=at, accepted_by=by, acceptance_reason=reason))
        return newest.assign(accepted_at=at, accepted_by=by, acceptance_reason=reason).reset_index(drop=True)

    def holds(self, *, open_only: bool = True) -> pd.DataFrame:
        """The holds, newest first; ``open_only``: volume holds not accepted and every other kind."""
        if not sa.inspect(self.engine).has_table(delivery_holds.name):
            return pd.DataFrame(columns=list(COLUMNS))
        query = sa.select(delivery_holds).order_by(delivery_holds.c.last_held_at.desc(), delivery_holds.c.id)
        if open_only:
            query = query.where(delivery_holds.c.accepted_at.is_(None))
        with self.engine.connect() as conn:
            return result_frame(conn.execute(query), list(COLUMNS))
