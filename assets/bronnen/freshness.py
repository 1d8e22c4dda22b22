"""Freshness: has every partner delivered recently enough? (``cadence.max_age_hours`` in the region YAML)

Freshness is about the *delivery*, not about our runs: the nightly job re-materializes the raw assets
every night, also when a partner sent nothing new (it then uses the last good snapshot), so the age
of a materialization says nothing. What counts is

- for a file source: the modification time of its newest delivered file in the sources folder;
- for an API source: the time of its last good pull (``read_at`` in the source's last good state,
  ``RawSnapshots.last_good``: a pull held back leaves it as it was).

Each source gets a WARN check on its raw asset, ``freshness_<source id>``; the waitlist also gets
one per municipality, ``freshness_<GM code>``, so a municipality that has not delivered (or has no
waitlist source at all) shows as stale on ``youth_care_waitlist_raw`` in the UI. The night
evaluates them with the rest, and they have their own job, ``source_freshness``, on their own
schedule (07:00; ``pipelines.freshness``), so they are evaluated even when the night failed: that is exactly when a partner
is most likely to be late. They are WARN: a late partner does not stop the night, which goes on
with the last good snapshot.

A replayed night (another ``evaluation_date``) is judged at 02:00 that night, not at today's clock.

``stale_sources`` gives the same verdict as a plain function for the export manifest.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import dagster as dg

from connectors.files import SourceFiles
from connectors.lake import RawSnapshots
from connectors.region_config import RegionConfig
from settings.constants import AMSTERDAM
from settings.datasets import raw_asset_name
from settings.region import FileLocation, Region, Source

NIGHT_TIME = dt.time(2, 0)  # the moment a replayed night is judged at: when the nightly job starts
WAITLIST_DATASET = "youth_care_waitlist"


class DeliveryFolders(Protocol):
    """Where deliveries land: ``settings.paths.VarLayout`` fits, and so does ``Folders`` below."""

    @property
    def sources(self) -> Path: ...

    @property
    def lake(self) -> Path: ...


@dataclass(frozen=True)
class Folders:
    """The two folders freshness looks at, e.g. taken from the configured resources."""

    sources: Path
    lake: Path

    @classmethod
    def of(cls, source_files: SourceFiles, raw_snapshots: RawSnapshots) -> "Folders":
        return cls(Path(source_files.root), Path(raw_snapshots.root))


def delivered_files(sources_root: Path, location: FileLocation) -> list[Path]:
    """The files that count as deliveries of a file source: the same rule as ``SourceFiles.read``.

    Hidden files (``.name``: uploads in progress) and Excel lock files (``~$name``) are skipped.
    """
    return sorted(
        p for p in Path(sources_root).glob(location.path) if p.is_file() and not p.name.startswith((".", "~$"))
    )


def last_delivery(source_id: str, source: Source, folders: DeliveryFolders) -> dt.datetime | None:
    """When the source last delivered (UTC); None when it never did."""
    if source.location.kind == "file":
        paths = delivered_files(folders.sources, source.location)
    else:
        kept = RawSnapshots(root=str(folders.lake)).last_good(source_id)
        if not kept:
            return None
        return max(dt.datetime.fromisoformat(k.read_at) for k in kept)
    if not paths:
        return None
    return dt.datetime.fromtimestamp(max(p.stat().st_mtime for p in paths), dt.UTC)


@dataclass(frozen=True)
class SourceAge:
    """One source's freshness verdict at ``now``."""

    source_id: str
    dataset: str
    partner: str
    gemeente: str | None
    max_age_hours: float
    delivered_at: dt.datetime | None
    now: dt.datetime

    @property
    def age_hours(self) -> float | None:
        if self.delivered_at is None:
            return None
        # A replayed night can find deliveries made after it (files overwritten, APIs pulled today): age 0.
        return max(0.0, (self.now - self.delivered_at).total_seconds() / 3600)

    @property
    def stale(self) -> bool:
        return self.age_hours is None or self.age_hours > self.max_age_hours

    def explain(self) -> str:
        if self.delivered_at is None:
            return f"{self.source_id} ({self.partner}): never delivered"
        verdict = "stale" if self.stale else "fresh"
        return (f"{self.source_id} ({self.partner}): {verdict}, newest delivery {self.age_hours:.0f} h old "
                f"(at most {self.max_age_hours:g} h)")

    def markdown_row(self) -> str:
        when = self.delivered_at.isoformat(timespec="minutes") if self.delivered_at else "never"
        age = "" if self.age_hours is None else f"{self.age_hours:.1f}"
        verdict = "stale" if self.stale else "fresh"
        return f"| {self.source_id} | {self.partner} | {when} | {age} | {self.max_age_hours:g} | {verdict} |"


def source_ages(region: Region, folders: DeliveryFolders, now: dt.datetime) -> dict[str, SourceAge]:
    """Every source of the region with the age of its newest delivery at ``now`` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (file times are absolute)")
    return {
        source_id: SourceAge(source_id, source.dataset, source.partner, source.gemeente,
                             source.cadence.max_age_hours, last_delivery(source_id, source, folders), now)
        for source_id, source in region.sources.items()
    }


def stale_sources(region: Region, folders: DeliveryFolders, now: dt.datetime) -> list[str]:
    """The ids of the sources whose newest delivery is older than their cadence, or that never delivered."""
    return sorted(source_id for source_id, age in source_ages(region, folders, now).items() if age.stale)


def freshness_moment(evaluation_date: dt.date, clock: dt.datetime | None = None) -> dt.datetime:
    """The moment deliveries are judged at: now, or, when replaying another day, that night at 02:00.

    A replay of 5 October (``evaluation_date`` in the run config, or the region's
    ``reference_date``) asks what was stale that night, not what is stale today.
    """
    clock = clock or dt.datetime.now(dt.UTC)
    if clock.astimezone(AMSTERDAM).date() == evaluation_date:
        return clock
    return dt.datetime.combine(evaluation_date, NIGHT_TIME, AMSTERDAM)


# --------------------------------------------------------------------------- checks


def _raw_asset(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(raw_asset_name(dataset))


def _check_specs(region: Region) -> list[dg.AssetCheckSpec]:
    specs = []
    for source_id, source in region.sources.items():
        if source.dataset != WAITLIST_DATASET:
            specs.append(dg.AssetCheckSpec(
                f"freshness_{source_id}",
                asset=_raw_asset(source.dataset),
                description=(f"{source.partner}: the newest delivery of source {source_id} is at most "
                             f"{source.cadence.max_age_hours:g} h old (sources.{source_id}.cadence)."),
            ))
    for gemeente in region.gemeenten:
        specs.append(dg.AssetCheckSpec(
            f"freshness_{gemeente.code}",
            asset=_raw_asset(WAITLIST_DATASET),
            description=(f"{gemeente.naam} ({gemeente.code}): the municipality's youth-care waitlist was "
                         "delivered within its cadence (cadence.max_age_hours of its source)."),
        ))
    return specs


def _result(check_name: str, asset: dg.AssetKey, ages: list[SourceAge], missing: str | None = None) -> dg.AssetCheckResult:
    stale = [a for a in ages if a.stale]
    rows = ["| source | partner | newest delivery (UTC) | age (h) | max (h) | verdict |", "|---|---|---|---:|---:|---|",
            *(a.markdown_row() for a in ages)]
    metadata = {
        "deliveries": dg.MetadataValue.md("\n".join(rows)),
        "stale_sources": dg.MetadataValue.json(sorted(a.source_id for a in stale)),
    }
    delivered = [a.delivered_at for a in ages if a.delivered_at]
    if delivered:
        metadata["newest_delivery"] = dg.MetadataValue.timestamp(max(delivered))
    if ages:
        metadata["judged_at"] = dg.MetadataValue.timestamp(ages[0].now)
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=check_name,
        passed=not stale and missing is None,
        severity=dg.AssetCheckSeverity.WARN,
        description=missing or "; ".join(a.explain() for a in (stale or ages)),
        metadata=metadata,
    )


def build_freshness_checks(region: Region) -> list[dg.AssetChecksDefinition]:
    """The freshness checks of every source (and, for the waitlist, every municipality) of ``region``."""
    specs = _check_specs(region)

    @dg.multi_asset_check(
        specs=specs,
        can_subset=True,
        name="delivery_freshness",
        description="How old each partner's newest delivery is, against cadence.max_age_hours in the region YAML.",
    )
    def delivery_freshness(context: dg.AssetCheckExecutionContext, region_config: RegionConfig,
                           source_files: SourceFiles, raw_snapshots: RawSnapshots):
        current = region_config.region
        now = freshness_moment(region_config.evaluation())
        ages = source_ages(current, Folders.of(source_files, raw_snapshots), now)
        for key in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
            subject = key.name.removeprefix("freshness_")
            if subject in current.sources:
                yield _result(key.name, key.asset_key, [ages[subject]])
                continue
            waitlists = [a for a in ages.values() if a.dataset == WAITLIST_DATASET and a.gemeente == subject]
            missing = None if waitlists else f"{subject}: no youth_care_waitlist source is configured for this municipality"
            yield _result(key.name, key.asset_key, waitlists, missing)

    return [delivery_freshness]
