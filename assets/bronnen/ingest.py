"""Raw ingest: every delivery of every source, mapped onto canonical names, as an immutable snapshot.

One raw asset per canonical dataset, whatever the number of partners behind it: the youth-care
waitlist asset reads every municipality's source in the same step. Values stay text here; parsing
and validation come next (``assets.validatie.validated``).

No single delivery can cost data or stop the night. A delivery is **held back** when

- it cannot be read (unreachable API, truncated or undecodable file, a missing header or mapped
  column): ``unreadable``;
- it breaks the contract of its dataset as a whole (a required field empty in every row): ``contract``;
- it is empty or much smaller than the last good delivery it replaces (``volume`` of the source in the
  region YAML, docs/configuration.md), unless a steward accepted exactly that delivery
  (``swv accept``): ``volume``.

A held-back delivery is replaced by the last good delivery of the same file (or pull), so the night
goes on with the freshest data known to be good. Every source has its own check,
``delivery_<source id>``: it fails (ERROR) with the cause, the numbers and what was kept when a
delivery of that source was held back, and warns when a delivery of the last good state did not
come. One partner that is down (say one municipality's waitlist API) turns only its own check red
and leaves the other partners' checks and data as they are. The hold is recorded in the warehouse
(``connectors.delivery_holds``) and the steward is notified (``pipelines.sensors``). Each source has
one last good state (``RawSnapshots.last_good``): what the night used, whatever the files or URLs
were called, so a fallback never loads a delivery twice.
"""


import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import pandas as pd

from assets.metadata import preview_markdown
from connectors.deliveries import Delivery, DeliveryError
from connectors.delivery_holds import WHOLE_SOURCE, DeliveryHolds, Hold
from connectors.files import SourceFiles
from connectors.http_api import JsonApi
from connectors.lake import KeptDelivery, RawSnapshots
from connectors.region_config import RegionConfig
from connectors.warehouse import Warehouse
from schemas.datasets import PROVENANCE_COLUMNS, canonical_fields
from schemas.validate import CELL_FLAGS, contract_violations
from settings.constants import DATA_STEWARDS
from settings.datasets import DATASETS, DESCRIPTIONS, raw_asset_name
from settings.region import Region, Source

RAW_GROUP = "bronnen"


def _invisible_free(name: str) -> str:
    """A column name as a person reads it: case, spacing and invisible characters ignored."""
    return " ".join(name.replace("\ufeff", "").replace("\u200b", "").replace("\u00a0", " ").split()).casefold()


def _missing_columns_message(delivery: Delivery, source_id: str, missing: list[str]) -> str:
    """Which mapped columns the header lacks, with what the header has that looks like them."""
    delivered = [c for c in delivery.frame.columns if c != "delivery_row"]
    lookalikes = {_invisible_free(c): c for c in delivered}
    hints = [f"{name!r} is delivered as {lookalikes[_invisible_free(name)]!r}" for name in missing
             if _invisible_free(name) in lookalikes]
    message = (f"{delivery.name}: missing column(s) {missing} in the header "
               f"(mapped in sources.{source_id}.columns of the region YAML)")
    if hints:
        message += "; " + "; ".join(hints) + " (differs in case, spaces or invisible characters)"
    elif len(delivered) == 1 and len(missing) > 1:
        message += "; the header has a single column: is the delimiter right (format.delimiter)?"
    return message


def to_canonical(delivery: Delivery, source_id: str, source: Source, fetched_at: str) -> pd.DataFrame:
    """Rename delivered columns onto canonical fields and add provenance.

    A mapped column that the delivery lacks rejects the delivery: it breaks the contract as a whole.
    Columns the YAML does not map are dropped (they are listed in the metadata, not kept). Cells the
    connector could not trust (``Delivery.cell_flags``) of mapped columns go along in ``cell_flags``.
    """
    if delivery.frame.empty and len(delivery.frame.columns) <= 1:
        # An empty API answer has no fields to check: an empty table (the volume guard judges it).
        delivery = Delivery(delivery.name, delivery.size, delivery.sha256, delivery.modified_at,
                            pd.DataFrame({**{c: pd.Series(dtype="str") for c in source.columns},
                                          "delivery_row": pd.Series(dtype="int64")}))
    missing = [column for column in source.columns if column not in delivery.frame.columns]
    if missing:
        raise DeliveryError(_missing_columns_message(delivery, source_id, missing), delivery=delivery.name)
    frame = delivery.frame.loc[:, [*source.columns, "delivery_row"]].rename(columns=source.columns)
    for field_name in canonical_fields(source.dataset):
        if field_name not in frame.columns:
            frame[field_name] = pd.Series(pd.NA, index=frame.index, dtype="str")
    frame["source_id"] = source_id
    frame["delivery"] = delivery.name
    frame["delivery_sha256"] = delivery.sha256
    frame["fetched_at"] = fetched_at
    frame["delivery_row"] = frame["delivery_row"].astype("int64")
    frame[CELL_FLAGS] = _cell_flags(delivery, source, frame["delivery_row"])
    return frame.loc[:, [*canonical_fields(source.dataset), *PROVENANCE_COLUMNS, CELL_FLAGS]]


def _cell_flags(delivery: Delivery, source: Source, rows: pd.Series) -> pd.Series:
    """Per row ``field:rule:cell`` entries joined by ';' for the flagged cells of mapped columns, else NA."""
    flags = pd.Series(pd.NA, index=rows.index, dtype="str")
    if delivery.cell_flags is None or delivery.cell_flags.empty:
        return flags
    mapped = delivery.cell_flags.loc[delivery.cell_flags["column"].isin(list(source.columns))]
    if mapped.empty:
        return flags
    entries = (mapped["column"].map(source.columns) + ":" + mapped["rule"] + ":" + mapped["cell"])
    per_row = entries.groupby(mapped["delivery_row"].to_numpy()).agg(";".join)
    return pd.Series(rows.map(per_row).to_numpy(), index=rows.index, dtype="str")


@dataclass(frozen=True)
class Snapshot:
    """A delivery read tonight, to keep as its immutable raw snapshot (``keep_snapshots``)."""

    source_id: str
    delivery: str
    sha256: str
    frame: pd.DataFrame


def keep_snapshots(snapshots: RawSnapshots, fresh: list[Snapshot]) -> None:
    """Store each delivery read tonight as its snapshot (immutable: a known sha256 is not rewritten)."""
    for snapshot in fresh:
        snapshots.store(snapshot.source_id, snapshot.sha256, snapshot.frame)


@dataclass
class SourceIngest:
    """What one source delivered tonight and what the night uses of it.

    ``frames``: tonight's rows (fresh deliveries and the last good ones standing in for held-back
    ones); ``state``: the source's new last good state; ``fresh``: snapshots to store first;
    ``holds``: deliveries held back; ``vanished``: last good deliveries that did not come tonight.
    """

    source_id: str
    frames: list[pd.DataFrame] = field(default_factory=list)
    state: list[KeptDelivery] = field(default_factory=list)
    fresh: list[Snapshot] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    deliveries: list[dict] = field(default_factory=list)
    vanished: list[KeptDelivery] = field(default_factory=list)

    def markdown(self) -> str:
        lines = []
        for d in self.deliveries:
            lines.append(f"| {self.source_id} | {d['delivery']} | {d['rows']} | {d['bytes']} | {d['sha256'][:12]} "
                         f"| {d['status']} |")
        for hold in self.holds:
            lines.append(f"| {self.source_id} | {hold.delivery} | {'' if hold.rows is None else hold.rows} | | "
                         f"{hold.sha256[:12]} | held back ({hold.kind}): {hold.reason}; kept: {hold.kept} |")
        for kept in self.vanished:
            lines.append(f"| {self.source_id} | {kept.delivery} | | | | not delivered tonight (last good had "
                         f"{kept.rows} rows) |")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Candidate:
    """One delivery of tonight on its way through the guards."""

    name: str
    delivery: Delivery | None
    frame: pd.DataFrame | None
    hold: tuple[str, str] | None  # (kind, reason)


def _pair(names: list[str], last: list[KeptDelivery]) -> dict[str, KeptDelivery]:
    """Tonight's delivery names matched to the last good deliveries they follow up.

    By name; a source that delivers one file or pull (an API whose URL changed, a file renamed
    every night) also when its one new name follows its one old name.
    """
    by_name = {kept.delivery: kept for kept in last}
    paired = {name: by_name[name] for name in names if name in by_name}
    new = [name for name in names if name not in by_name]
    orphans = [kept for kept in last if kept.delivery not in names]
    if len(new) == 1 and len(orphans) == 1:
        paired[new[0]] = orphans[0]
    return paired


def volume_problem(rows: int, expected: int | None, source: Source) -> str | None:
    """Why ``rows`` is too few against the last good delivery's ``expected`` rows (``volume`` of the source)."""
    guard = source.volume
    if rows < guard.min_rows and (expected is None or expected >= guard.min_rows):
        what = "no data rows" if rows == 0 else f"{rows} data row(s)"
        return f"{what}, fewer than the minimum of {guard.min_rows} (volume.min_rows)"
    if expected and guard.max_drop < 1 and rows < (1 - guard.max_drop) * expected:
        drop = 1 - rows / expected
        return (f"{rows} rows where the last good delivery had {expected}: {drop:.0%} fewer, more than "
                f"volume.max_drop {guard.max_drop:.0%}")
    return None


def _fingerprint(shas: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(shas)).encode()).hexdigest()


def ingest_source(
    source_id: str,
    source: Source,
    files: SourceFiles,
    api: JsonApi,
    snapshots: RawSnapshots,
    log,
    accepted: Callable[[str], set[tuple[str, str]]] = lambda source_id: set(),
    *,
    region: Region | None = None,
) -> SourceIngest:
    """Read every delivery of one source and decide what the night uses of it (see the module docstring).

    Nothing is written: the snapshots, the new last good state and the holds are returned for the
    caller to keep before it hands the rows on. ``accepted(source_id)``: the (delivery, sha256) of the
    source's volume drops a steward accepted. ``region``: for the contract of the dataset (None: not judged).
    """
    fetched_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    result = SourceIngest(source_id)
    last = snapshots.last_good(source_id)
    location = source.location

    def stand_in(kept: KeptDelivery) -> None:
        result.frames.append(snapshots.read(source_id, kept.sha256))
        result.state.append(kept)

    def held(name: str, sha256: str, kind: str, reason: str, kept: KeptDelivery | None, rows=None) -> None:
        log.error(f"{source_id}: delivery held back ({kind}): {reason}")
        result.holds.append(Hold(source_id, name, sha256, kind, reason,
                                 kept.describe() if kept else "nothing (no earlier good delivery)",
                                 rows, None if kept is None else kept.rows))
        if kept is not None:
            stand_in(kept)

    try:
        read = files.read_each(location) if location.kind == "file" else [api.fetch(location, name=location.url)]
    except DeliveryError as error:
        whole = location.path if location.kind == "file" else location.url
        log.error(f"{source_id}: nothing could be read: {error}")
        result.holds.append(Hold(source_id, whole, "", "unreadable", str(error),
                                 "; ".join(k.describe() for k in last) or "nothing (no earlier good delivery)"))
        for kept in last:
            stand_in(kept)
        return result

    candidates = [_candidate(item, source_id, source, fetched_at, region) for item in read]
    paired = _pair([c.name for c in candidates], last)
    acceptances = accepted(source_id)
    passed: list[_Candidate] = []
    for candidate in candidates:
        previous = paired.get(candidate.name)
        if candidate.hold is not None:
            sha256 = candidate.delivery.sha256 if candidate.delivery else ""
            rows = None if candidate.frame is None else len(candidate.frame)
            held(candidate.name, sha256, *candidate.hold, previous, rows)
            continue
        problem = volume_problem(len(candidate.frame), previous.rows if previous else None, source)
        if problem and (candidate.name, candidate.delivery.sha256) not in acceptances:
            held(candidate.name, candidate.delivery.sha256, "volume", f"{candidate.name}: {problem}", previous,
                 len(candidate.frame))
            continue
        passed.append(candidate)

    # The source as a whole: deliveries that stopped coming count too (a folder emptied overnight). A drop
    # a steward accepted is left out on both sides: it was judged already.
    accepted_now = {c.name for c in passed if (c.name, c.delivery.sha256) in acceptances}
    expected = sum(kept.rows for kept in last) - sum(paired[name].rows for name in accepted_now if name in paired)
    total = sum(len(c.frame) for c in passed if c.name not in accepted_now) + sum(k.rows for k in result.state)
    tonight = _fingerprint(c.delivery.sha256 for c in passed)
    guard = source.volume
    if (expected and guard.max_drop < 1 and total < (1 - guard.max_drop) * expected and passed
            and (WHOLE_SOURCE, tonight) not in acceptances):
        reason = (f"{source_id} as a whole: {total} rows where the last good state had {expected} "
                  f"({1 - total / expected:.0%} fewer, more than volume.max_drop {guard.max_drop:.0%})")
        log.error(f"{source_id}: held back (volume): {reason}")
        result.holds.append(Hold(source_id, WHOLE_SOURCE, tonight, "volume", reason,
                                 "; ".join(k.describe() for k in last), total, expected))
        result.fresh = [Snapshot(source_id, c.name, c.delivery.sha256, c.frame) for c in passed]
        result.frames, result.state = [], []
        for kept in last:
            stand_in(kept)
        return result

    for candidate in passed:
        delivery = candidate.delivery
        result.fresh.append(Snapshot(source_id, candidate.name, delivery.sha256, candidate.frame))
        result.frames.append(candidate.frame)
        result.state.append(KeptDelivery(candidate.name, delivery.sha256, len(candidate.frame), fetched_at))
        result.deliveries.append(
            {"delivery": candidate.name, "rows": len(candidate.frame), "bytes": delivery.size,
             "sha256": delivery.sha256, "modified_at": delivery.modified_at,
             "status": "read" if (candidate.name, delivery.sha256) not in acceptances else "read (drop accepted)"}
        )
    result.vanished = [kept for kept in last if kept not in paired.values()]
    return result


def _candidate(item: Delivery | DeliveryError, source_id: str, source: Source, fetched_at: str,
               region: Region | None) -> _Candidate:
    """A delivery read (or not) tonight, with the hold it earns before its volume is judged."""
    if isinstance(item, DeliveryError):
        return _Candidate(item.delivery or "?", None, None, ("unreadable", str(item)))
    try:
        frame = to_canonical(item, source_id, source, fetched_at)
    except DeliveryError as error:
        return _Candidate(item.name, item, None, ("unreadable", str(error)))
    if region is not None and len(frame):
        broken, _ = contract_violations(source.dataset, frame, region, np.zeros(len(frame), dtype=np.int64),
                                        [(source_id, item.name, item.sha256)])
        if broken:
            return _Candidate(item.name, item, frame, ("contract", f"{item.name}: {broken[0].reason}"))
    return _Candidate(item.name, item, frame, None)


def _kinds(region: Region, dataset: str) -> set[str]:
    kinds = {"pandas", "parquet"}
    for source in region.sources_for(dataset).values():
        kinds.add("api" if source.location.kind == "http" else source.location.format.type)
    return kinds


@dataclass(frozen=True)
class RawNight:
    """The raw output of one materialization and what it held back."""

    frame: pd.DataFrame
    sources: list[SourceIngest]

    @property
    def holds(self) -> list[Hold]:
        return [hold for source in self.sources for hold in source.holds]

    def markdown(self) -> str:
        lines = ["| source | delivery | rows | bytes | sha256 | status |", "|---|---|---:|---:|---|---|"]
        lines += [line for source in self.sources if (line := source.markdown())]
        return "\n".join(lines)


def ingest_night(dataset: str, sources: dict[str, Source], files: SourceFiles, api: JsonApi,
                 snapshots: RawSnapshots, holds: DeliveryHolds, region: Region, log) -> RawNight:
    """Ingest every source of ``dataset`` and make it durable: snapshots stored, each source's last good
    state kept and the holds recorded, all before the caller hands the rows on (docs: issue 21, point 5).
    """
    results = [ingest_source(source_id, source, files, api, snapshots, log, holds.accepted, region=region)
               for source_id, source in sources.items()]
    for result in results:
        keep_snapshots(snapshots, result.fresh)
        snapshots.keep(result.source_id, result.state)
    holds.record([hold for result in results for hold in result.holds], dt.datetime.now(dt.UTC))
    frames = [frame for result in results for frame in result.frames]
    if not frames:  # nothing usable and nothing good before (a first night): an empty table, the checks say why
        frames = [_empty_raw(dataset)]
    frame = pd.concat(frames, ignore_index=True)
    if CELL_FLAGS not in frame.columns:  # stand-ins stored before cell flags existed
        frame[CELL_FLAGS] = pd.Series(pd.NA, index=frame.index, dtype="str")
    return RawNight(frame, results)


def _empty_raw(dataset: str) -> pd.DataFrame:
    columns = {name: pd.Series(dtype="str") for name in [*canonical_fields(dataset), *PROVENANCE_COLUMNS, CELL_FLAGS]}
    columns["delivery_row"] = pd.Series(dtype="int64")
    return pd.DataFrame(columns)


def delivery_check_name(source_id: str) -> str:
    return f"delivery_{source_id}"


def _delivery_checks(region: Region, dataset: str, asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    names = {g.code: g.naam for g in region.gemeenten}
    specs = []
    for source_id, source in region.sources_for(dataset).items():
        whose = f"{names[source.gemeente]} ({source.gemeente}), {source.partner}" if source.gemeente else source.partner
        specs.append(dg.AssetCheckSpec(
            delivery_check_name(source_id),
            asset=asset_key,
            description=(f"{whose}: tonight's deliveries of source {source_id} could be read, have the mapped "
                         "columns, fill every required field and are not much smaller than the last good ones "
                         "(volume in the region YAML). ERROR when one is held back (the last good one is used "
                         "instead), WARN when a delivery of the last good state did not come."),
        ))
    return specs


def _delivery_result(result: SourceIngest) -> dg.AssetCheckResult:
    """One source's verdict: ERROR with what was held back and what was kept, WARN for deliveries that stopped."""
    holds = result.holds
    vanished = [{"source_id": result.source_id, "delivery": k.delivery, "rows": k.rows} for k in result.vanished]
    if holds:
        description = (f"{len(holds)} delivery(ies) held back, last good used: "
                       + "; ".join(f"{h.reason} (kept: {h.kept})" for h in holds))
        if any(h.kind == "volume" for h in holds):
            description += "; a real drop is accepted with `swv accept`"
    elif vanished:
        description = (f"{len(vanished)} delivery(ies) of the last good state did not come tonight: "
                       + ", ".join(v["delivery"] for v in vanished))
    else:
        description = None
    return dg.AssetCheckResult(
        check_name=delivery_check_name(result.source_id),
        passed=not holds and not vanished,
        severity=dg.AssetCheckSeverity.ERROR if holds else dg.AssetCheckSeverity.WARN,
        metadata={"held_back": dg.MetadataValue.json([h.as_dict() for h in holds]),
                  "not_delivered_tonight": dg.MetadataValue.json(vanished),
                  "rows": sum(len(frame) for frame in result.frames),
                  "deliveries": dg.MetadataValue.md(
                      "| source | delivery | rows | bytes | sha256 | status |\n|---|---|---:|---:|---|---|\n"
                      + result.markdown())},
        description=description,
    )


def build_raw_assets(region: Region) -> list[dg.AssetsDefinition]:
    """One raw asset per canonical dataset that the region's YAML delivers."""
    return [_raw_asset(region, dataset) for dataset in DATASETS if region.sources_for(dataset)]


def _raw_asset(region: Region, dataset: str) -> dg.AssetsDefinition:
    key = dg.AssetKey(raw_asset_name(dataset))

    @dg.asset(
        key=key,
        description=f"Raw deliveries: {DESCRIPTIONS[dataset]} Text values, canonical names, provenance.",
        group_name=RAW_GROUP,
        owners=DATA_STEWARDS,
        kinds=_kinds(region, dataset),
        # Partner APIs share one concurrency pool, so a deployment can cap the load on partners.
        pool="partner_api" if any(s.location.kind == "http" for s in region.sources_for(dataset).values()) else None,
        check_specs=_delivery_checks(region, dataset, key),
        io_manager_key="lake_io_manager",
    )
    def raw(context: dg.AssetExecutionContext, region_config: RegionConfig, source_files: SourceFiles,
            json_api: JsonApi, raw_snapshots: RawSnapshots, warehouse: Warehouse):
        region_now = region_config.region
        sources = region_now.sources_for(dataset)
        night = ingest_night(dataset, sources, source_files, json_api, raw_snapshots,
                             DeliveryHolds(warehouse.engine), region_now, context.log)
        deliveries = [d for source in night.sources for d in source.deliveries]
        frame = night.frame
        yield dg.Output(
            frame,
            metadata={
                "dagster/row_count": len(frame),
                "bytes": sum(d["bytes"] for d in deliveries),
                "deliveries": dg.MetadataValue.md(night.markdown()),
                "held_back_deliveries": len(night.holds),
                "rows_per_source": dg.MetadataValue.json(
                    {source.source_id: sum(len(f) for f in source.frames) for source in night.sources}),
                "delivery_date": max((d["modified_at"] or "" for d in deliveries), default="")
                or dt.date.today().isoformat(),
                "preview": dg.MetadataValue.md(preview_markdown(frame, dataset)),
            },
        )
        for source in night.sources:
            yield _delivery_result(source)

    return raw
