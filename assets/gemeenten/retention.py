"""Retention: what is older than its period is deleted, every night, and the deletion is logged.

Periods (docs/domain.md §7, [S] PO-Raad/VNG selectielijst; §9 item 15 "retention policies as
config ... enforced by a scheduled purge asset"), as configuration (the region file's ``retention:``
key, ``settings.region.RetentionPeriods``) with these defaults:

| what | default | why |
|---|---|---|
| raw snapshots of VO absence, VO enrolment, MBO outflow | 5 years | verzuim and in/uitschrijving: 5 years |
| raw snapshots of PO transfers | 2 years | leerlingdossier: 2 years after leaving |
| raw snapshots of youth-care waitlists | 2 years | no period of its own in §7: the shortest one |
| raw snapshots of a source no longer in the region YAML | shortest raw period | kept no longer than needed |
| municipal exports (``<outbox>/gemeenten/<GM>/<date>/``) | 1 year | the municipality keeps its copy |
| alerts resolved more than the period ago, with their events | 5 years | verzuim: 5 years |

Age is measured against the night's evaluation date: a raw snapshot by the date it was stored
(file modification time, UTC), an export by its folder's date, an alert by its ``resolved_on``.
"Older than the period" is strict: on the day a snapshot turns exactly 5 years old it is kept.

What is logged is paths (source ids, sha256 file names, GM codes, dates) and counts, never content.
"""

import datetime as dt
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from connectors.export_log import HasEngine
from connectors.lake import RawSnapshots
from connectors.outbox import Outbox
from connectors.region_config import RegionConfig
from settings.constants import DATA_STEWARDS
from settings.region import RetentionPeriods

GROUP = "gemeenten"


HistoryPurge = Callable[[sa.Engine, dt.date], dict[str, int]]


def years_before(day: dt.date, years: int) -> dt.date:
    """The same calendar day ``years`` earlier (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def purge_raw_snapshots(raw_root: Path, cutoffs: Mapping[str, dt.date], default_cutoff: dt.date) -> list[Path]:
    """Delete ``<raw_root>/<source_id>/<sha256>.parquet`` stored before its source's cutoff date.

    A delivery of a source's last good state whose snapshot is deleted leaves that state too, so the
    pipeline never falls back on data past its retention. Returns the deleted paths.
    """
    removed: list[Path] = []
    if not raw_root.exists():
        return removed
    for source in sorted(p for p in raw_root.iterdir() if p.is_dir()):
        cutoff = cutoffs.get(source.name, default_cutoff)
        for snapshot in sorted(source.glob("*.parquet")):
            stored = dt.datetime.fromtimestamp(snapshot.stat().st_mtime, dt.UTC).date()
            if stored < cutoff:
                snapshot.unlink()
                removed.append(snapshot)
        snapshots = RawSnapshots(root=str(raw_root.parent))
        kept = snapshots.last_good(source.name)
        still = [k for k in kept if snapshots.path(source.name, k.sha256).exists()]
        if still != kept:
            snapshots.keep(source.name, still)
    return removed


def purge_exports(exports_root: Path, cutoff: dt.date) -> list[Path]:
    """Delete ``<exports_root>/<GM>/<YYYY-MM-DD>/`` folders dated before ``cutoff``; other names are left alone."""
    removed: list[Path] = []
    for folder in sorted(exports_root.glob("*/*")):
        try:
            dated = dt.date.fromisoformat(folder.name)
        except ValueError:
            continue
        if folder.is_dir() and dated < cutoff:
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def purge_alert_history(engine: sa.Engine, cutoff: dt.date, *, alerts: str = "alerts",
                        events: str = "alert_events") -> dict[str, int]:
    """Delete alerts resolved before ``cutoff`` with all their events; returns rows removed per table.

    An alert that is still active keeps its whole history, however old its first event: the
    history is what tells how long a pupil has been waiting. Tables that do not exist are skipped.
    """
    inspector = sa.inspect(engine)
    if not (inspector.has_table(alerts) and inspector.has_table(events)):
        return {}
    meta = sa.MetaData()
    alert_table = sa.Table(alerts, meta, autoload_with=engine)
    event_table = sa.Table(events, meta, autoload_with=engine)
    old = sa.select(alert_table.c.alert_id).where(alert_table.c.resolved_on < cutoff)
    with engine.begin() as conn:
        removed_events = conn.execute(event_table.delete().where(event_table.c.alert_id.in_(old))).rowcount
        removed_alerts = conn.execute(alert_table.delete().where(alert_table.c.resolved_on < cutoff)).rowcount
    return {events: removed_events, alerts: removed_alerts}


@dataclass(frozen=True)
class PurgeReport:
    raw: list[Path]
    exports: list[Path]
    history: dict[str, int]


def purge(*, evaluation_date: dt.date, periods: RetentionPeriods, raw_root: Path, exports_root: Path,
          source_datasets: Mapping[str, str], engine: sa.Engine | None = None,
          history: HistoryPurge | None = purge_alert_history) -> PurgeReport:
    """Apply every retention period on ``evaluation_date``. ``source_datasets``: source id -> dataset."""
    shortest = min(periods.raw_years.values())
    cutoffs = {source: years_before(evaluation_date, periods.raw_years.get(dataset, shortest))
               for source, dataset in source_datasets.items()}
    raw = purge_raw_snapshots(raw_root, cutoffs, years_before(evaluation_date, shortest))
    exports = purge_exports(exports_root, evaluation_date - dt.timedelta(days=periods.exports_days))
    history_cutoff = years_before(evaluation_date, periods.alert_history_years)
    removed = history(engine, history_cutoff) if engine is not None and history is not None else {}
    return PurgeReport(raw, exports, removed)


def _listing(paths: list[Path], root: Path, limit: int = 50) -> str:
    shown = [f"- `{p.relative_to(root)}`" for p in paths[:limit]]
    more = [f"- … and {len(paths) - limit} more"] if len(paths) > limit else []
    return "\n".join(shown + more) or "(nothing)"


def build_retention_asset(periods: RetentionPeriods | None = None,
                          history: HistoryPurge | None = purge_alert_history) -> dg.AssetsDefinition:
    """``retention_purge``; ``history`` purges warehouse history (default: resolved alerts), None for none."""
    periods = periods or RetentionPeriods()

    @dg.asset(
        name="retention_purge",
        description=(
            "Deletes raw snapshots, municipal exports and alert history older than their retention period "
            "(verzuim 5 years, leerlingdossier 2 years, exports 1 year; docs/exports.md, domain.md §7) and "
            "reports what it removed: paths and counts, no content."
        ),
        group_name=GROUP,
        owners=DATA_STEWARDS,
        kinds={"python", "parquet", "sql"},
        metadata={"periods": dg.MetadataValue.json(periods.model_dump())},
    )
    def retention_purge(context: dg.AssetExecutionContext, region_config: RegionConfig, outbox: Outbox,
                        raw_snapshots: RawSnapshots, warehouse: dg.ResourceParam[HasEngine]) -> dg.MaterializeResult:
        region = region_config.region
        raw_root = Path(raw_snapshots.root, "raw")
        exports_root = outbox.folder("gemeenten")
        report = purge(
            evaluation_date=region_config.evaluation(), periods=periods, raw_root=raw_root,
            exports_root=exports_root, source_datasets={n: s.dataset for n, s in region.sources.items()},
            engine=warehouse.engine, history=history,
        )
        for path in report.raw:
            context.log.info(f"retention: removed raw/{path.relative_to(raw_root)}")
        for path in report.exports:
            context.log.info(f"retention: removed export gemeenten/{path.relative_to(exports_root)}")
        for table, count in report.history.items():
            context.log.info(f"retention: removed {count} row(s) from {table}")
        return dg.MaterializeResult(metadata={
            "raw_snapshots_removed": len(report.raw),
            "export_folders_removed": len(report.exports),
            "history_rows_removed": dg.MetadataValue.json(report.history),
            "removed": dg.MetadataValue.md(f"**raw**\n{_listing(report.raw, raw_root)}\n\n"
                                           f"**exports**\n{_listing(report.exports, exports_root)}"),
        })

    return retention_purge
