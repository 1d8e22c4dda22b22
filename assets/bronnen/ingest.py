"""Raw ingest: every delivery of every source, mapped onto canonical names, as an immutable snapshot.

One raw asset per canonical dataset, whatever the number of partners behind it: the youth-care
waitlist asset reads every municipality's source in the same step. Values stay text here; parsing
and validation come next (``assets.validatie.validated``).

A delivery that cannot be read (unreachable API, truncated file, missing header) is reported by
name and replaced by the last good snapshot of the same delivery, so the night goes on with the
freshest data that is known to be good. Every source has its own check, ``delivery_<source id>``:
one partner that is down (say one municipality's waitlist API) turns only its own check red, names
the delivery and the error, and leaves the other partners' checks and data as they are.
"""


import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from assets.metadata import preview_markdown
from connectors.deliveries import Delivery, DeliveryError
from connectors.files import SourceFiles
from connectors.http_api import JsonApi
from connectors.lake import RawSnapshots
from connectors.region_config import RegionConfig
from schemas.datasets import PROVENANCE_COLUMNS, canonical_fields
from settings.region import Region, Source

OWNERS = ["team:datastewards"]
RAW_GROUP = "bronnen"

DATASET_DESCRIPTIONS = {
    "po_transfers": "PO→VO transfers (overstapdossiers) from the PO school boards' LAS exports.",
    "youth_care_waitlist": "Youth-care (jeugdhulp) waitlists, one delivery per municipality.",
    "vo_enrolment": "VO enrolments (inschrijvingen) from each VO school location.",
    "vo_absence": "Weekly absence per pupil from each VO school location.",
    "mbo_outflow": "VO leavers and their MBO application status (VVA).",
}


def to_canonical(delivery: Delivery, source_id: str, source: Source, fetched_at: str) -> pd.DataFrame:
    """Rename delivered columns onto canonical fields and add provenance.

    A mapped column that the delivery lacks rejects the delivery: it breaks the contract as a whole.
    Columns the YAML does not map are dropped (they are listed in the metadata, not kept).
    """
    if delivery.frame.empty:
        # An empty API answer (no child waiting) has no fields to check: an empty table, not an error.
        delivery = Delivery(delivery.name, delivery.size, delivery.sha256, delivery.modified_at,
                            pd.DataFrame({**{c: pd.Series(dtype="str") for c in source.columns},
                                          "delivery_row": pd.Series(dtype="int64")}))
    missing = [column for column in source.columns if column not in delivery.frame.columns]
    if missing:
        raise DeliveryError(
            f"{delivery.name}: missing column(s) {missing} in the header "
            f"(mapped in sources.{source_id}.columns of the region YAML)"
        )
    frame = delivery.frame.loc[:, [*source.columns, "delivery_row"]].rename(columns=source.columns)
    for field in canonical_fields(source.dataset):
        if field not in frame.columns:
            frame[field] = pd.Series(pd.NA, index=frame.index, dtype="str")
    frame["source_id"] = source_id
    frame["delivery"] = delivery.name
    frame["delivery_sha256"] = delivery.sha256
    frame["fetched_at"] = fetched_at
    frame["delivery_row"] = frame["delivery_row"].astype("int64")
    return frame.loc[:, [*canonical_fields(source.dataset), *PROVENANCE_COLUMNS]]


@dataclass(frozen=True)
class Snapshot:
    """A delivery read tonight, to keep as its immutable raw snapshot (``keep_snapshots``)."""

    source_id: str
    delivery: str
    sha256: str
    frame: pd.DataFrame


def keep_snapshots(snapshots: RawSnapshots, fresh: list[Snapshot]) -> None:
    """Store each delivery read tonight as its snapshot, then remember it as the delivery's last good one."""
    for snapshot in fresh:
        snapshots.store(snapshot.source_id, snapshot.sha256, snapshot.frame)
        snapshots.mark_good(snapshot.source_id, snapshot.delivery, snapshot.sha256)


@dataclass
class IngestReport:
    """What one raw materialization read, rejected and fell back on; names and counts only."""

    deliveries: list[dict]
    rejected: list[dict]

    def markdown(self) -> str:
        lines = ["| delivery | rows | bytes | sha256 | status |", "|---|---:|---:|---|---|"]
        for d in self.deliveries:
            lines.append(f"| {d['delivery']} | {d['rows']} | {d['bytes']} | {d['sha256'][:12]} | {d['status']} |")
        for r in self.rejected:
            lines.append(f"| {r['delivery']} | | | | rejected: {r['error']} |")
        return "\n".join(lines)


def ingest_source(
    source_id: str,
    source: Source,
    files: SourceFiles,
    api: JsonApi,
    snapshots: RawSnapshots,
    log,
) -> tuple[list[pd.DataFrame], IngestReport, list[Snapshot]]:
    """Read every delivery of one source; a rejected one is replaced by its last good snapshot.

    The deliveries read are returned as snapshots to keep (``keep_snapshots``), not yet written.
    """
    fetched_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    frames: list[pd.DataFrame] = []
    report = IngestReport(deliveries=[], rejected=[])
    fresh: list[Snapshot] = []
    location = source.location

    def fall_back(name: str, error: str, stale: list[pd.DataFrame]) -> None:
        log.error(f"{source_id}: delivery rejected: {error}")
        report.rejected.append({"source_id": source_id, "delivery": name, "error": error})
        for frame in stale:
            frames.append(frame)
            report.deliveries.append(
                {"delivery": str(frame["delivery"].iat[0]) if len(frame) else name, "rows": len(frame), "bytes": 0,
                 "sha256": str(frame["delivery_sha256"].iat[0]) if len(frame) else "", "modified_at": None,
                 "status": "stale (last good snapshot)"}
            )

    try:
        deliveries = files.read(location) if location.kind == "file" else [api.fetch(location, name=location.url)]
    except DeliveryError as exc:
        whole = location.path if location.kind == "file" else location.url
        fall_back(whole, str(exc), [frame for _, frame in snapshots.last_good_all(source_id)])
        return frames, report, fresh

    for delivery in deliveries:
        try:
            frame = to_canonical(delivery, source_id, source, fetched_at)
        except DeliveryError as exc:
            last = snapshots.last_good(source_id, delivery.name)
            fall_back(delivery.name, str(exc), [] if last is None else [last])
            continue
        fresh.append(Snapshot(source_id, delivery.name, delivery.sha256, frame))
        frames.append(frame)
        report.deliveries.append(
            {"delivery": delivery.name, "rows": len(frame), "bytes": delivery.size, "sha256": delivery.sha256,
             "modified_at": delivery.modified_at, "status": "read"}
        )
    return frames, report, fresh


def _kinds(region: Region, dataset: str) -> set[str]:
    kinds = {"pandas", "parquet"}
    for source in region.sources_for(dataset).values():
        kinds.add("api" if source.location.kind == "http" else source.location.format.type)
    return kinds


def _materialize(dataset: str, sources: dict[str, Source], files, api, snapshots, context
                 ) -> tuple[dg.Output, list[Snapshot], dict[str, IngestReport]]:
    """The night's raw output, the snapshots still to keep, and what each source read or fell back on."""
    frames: list[pd.DataFrame] = []
    reports: dict[str, IngestReport] = {}
    fresh: list[Snapshot] = []
    for source_id, source in sources.items():
        source_frames, report, source_fresh = ingest_source(source_id, source, files, api, snapshots, context.log)
        frames.extend(source_frames)
        reports[source_id] = report
        fresh.extend(source_fresh)
    deliveries = [d for r in reports.values() for d in r.deliveries]
    rejected = [x for r in reports.values() for x in r.rejected]
    if not frames:
        problems = "; ".join(x["error"] for x in rejected) or "no source configured"
        raise dg.Failure(
            description=f"{dataset}: no readable delivery and no earlier good snapshot ({problems})",
            metadata={"rejected": dg.MetadataValue.json(rejected)},
        )
    frame = pd.concat(frames, ignore_index=True)
    merged = IngestReport(deliveries=deliveries, rejected=rejected)
    output = dg.Output(
        frame,
        metadata={
            "dagster/row_count": len(frame),
            "bytes": sum(d["bytes"] for d in deliveries),
            "deliveries": dg.MetadataValue.md(merged.markdown()),
            "rejected_deliveries": len(rejected),
            "rows_per_source": dg.MetadataValue.json(
                {sid: sum(d["rows"] for d in r.deliveries) for sid, r in reports.items()}),
            "delivery_date": max((d["modified_at"] or "" for d in deliveries), default="") or dt.date.today().isoformat(),
            "preview": dg.MetadataValue.md(preview_markdown(frame, dataset)),
        },
    )
    return output, fresh, reports


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
            description=(f"{whose}: tonight's delivery of source {source_id} could be read and has the mapped "
                         "columns; a rejected delivery is named with its error and its last good snapshot is used."),
        ))
    return specs


def _delivery_result(source_id: str, report: IngestReport) -> dg.AssetCheckResult:
    rejected = len(report.rejected)
    return dg.AssetCheckResult(
        check_name=delivery_check_name(source_id),
        passed=rejected == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rejected_deliveries": rejected, "rows": sum(d["rows"] for d in report.deliveries),
                  "deliveries": dg.MetadataValue.md(report.markdown())},
        description=(None if rejected == 0 else
                     f"{rejected} delivery(ies) rejected, last good snapshot used: "
                     + "; ".join(x["error"] for x in report.rejected)),
    )


def build_raw_assets(region: Region) -> list[dg.AssetsDefinition]:
    """One raw asset per canonical dataset that the region's YAML delivers."""
    return [_raw_asset(region, dataset) for dataset in DATASET_DESCRIPTIONS if region.sources_for(dataset)]


def _raw_asset(region: Region, dataset: str) -> dg.AssetsDefinition:
    key = dg.AssetKey(f"{dataset}_raw")

    @dg.asset(
        key=key,
        description=f"Raw deliveries: {DATASET_DESCRIPTIONS[dataset]} Text values, canonical names, provenance.",
        group_name=RAW_GROUP,
        owners=OWNERS,
        kinds=_kinds(region, dataset),
        # Partner APIs share one concurrency pool, so a deployment can cap the load on partners.
        pool="partner_api" if any(s.location.kind == "http" for s in region.sources_for(dataset).values()) else None,
        check_specs=_delivery_checks(region, dataset, key),
        io_manager_key="lake_io_manager",
    )
    def raw(context: dg.AssetExecutionContext, region_config: RegionConfig, source_files: SourceFiles,
            json_api: JsonApi, raw_snapshots: RawSnapshots):
        sources = region_config.region.sources_for(dataset)
        output, fresh, reports = _materialize(dataset, sources, source_files, json_api, raw_snapshots, context)
        # Writing Parquet releases the GIL: tonight's snapshots are written in a helper thread while the
        # lake IO manager writes the raw output yielded here (Dagster stores an output when it is
        # yielded), on two cores instead of one after the other. The step ends only when both are kept.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="raw-snapshots") as pool:
            kept = pool.submit(keep_snapshots, raw_snapshots, fresh)
            yield output
            kept.result()
        for source_id, report in reports.items():
            yield _delivery_result(source_id, report)

    return raw
