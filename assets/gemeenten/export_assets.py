"""The municipal exports as a Dagster asset: one partition per municipality (docs/exports.md).

Each partition writes ``<outbox>/gemeenten/<GMcode>/<evaluation date>/``: the monitoring table, the
suppressed aggregates and the data dictionary in the formats of the region file (``exports.formats``:
CSV, XLSX and Parquet by default), and ``manifest.json`` (files, rows, sha256, schema version, period,
legal basis, stale sources). Then it logs every file in the warehouse's ``export_log`` and, where the
region file gives the municipality a receiver (``exports.upload``), uploads the files (manifest last)
through the ``export_uploads`` resource and records the receiver's checksums.

Order of safety: nothing is written unless the privacy guard passes (own residents only, no
identifier of any pupil in any published cell, no count 1-5); files are written atomically with the
manifest last; a file that was not confirmed by the receiver is sent again on the next run.
"""

import json
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.signalen.alert_rules import ABSENCE_FIELDS
from assets.koppeling.linkage import KEY_FIELDS
from assets.gemeenten.exports import (
    GUARDED_IDENTIFIERS,
    MONITORING_COLUMNS,
    RESIDENT_FIELDS,
    SECONDARY_CELL,
    SMALL_CELL,
    ColumnDoc,
    ExportInputs,
    ExportSettings,
    MunicipalExport,
    export_from_facts,
    leaked_identifiers,
    resident_facts,
)
from assets.gemeenten.retention import build_retention_asset
from connectors.export_log import ExportedFile, ExportLog, HasEngine
from connectors.outbox import Outbox, WrittenFolder, sha256, write_folder
from connectors.region_config import RegionConfig
from connectors.secrets import ExportKeyMissing, ExportKeys
from connectors.upload import ExportUploads, UploadError, UploadTarget
from settings.region import EXPORT_FORMATS, Exports, RetentionPeriods

OWNERS = ["team:datastewards"]
GROUP = "gemeenten"
EXPORTS_FOLDER = "gemeenten"
MANIFEST = "manifest.json"

# A temporary file of connectors.atomic: ".<name>.<pid>.tmp". One that is still there when an export
# starts was left by a process that was killed while writing.
_INTERRUPTED_WRITE = re.compile(r"^\..+\.\d+\.tmp$")

StaleSources = Callable[[dg.AssetExecutionContext], Sequence[str]]


def export_folder(outbox: Outbox, gemeente: str, evaluation_date) -> Path:
    return outbox.folder(EXPORTS_FOLDER, gemeente, evaluation_date.isoformat())


def clear_interrupted_writes(folder: Path) -> list[Path]:
    """Remove temporary files that a killed export left behind (never a finished file)."""
    if not folder.exists():
        return []
    leftovers = [p for p in folder.iterdir() if p.is_file() and _INTERRUPTED_WRITE.match(p.name)]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def write_export(export: MunicipalExport, outbox: Outbox, formats: Sequence[str] = EXPORT_FORMATS) -> WrittenFolder:
    """Write one municipality's export in ``formats`` atomically (manifest last); an unchanged export is
    not rewritten."""
    folder = export_folder(outbox, export.gemeente, export.evaluation_date)
    clear_interrupted_writes(folder)
    files = {name: content for name, content in export.files.items() if name.rsplit(".", 1)[-1] in formats}
    manifest = {**export.manifest, "formaten": [f for f in export.manifest["formaten"] if f.split()[0] in formats]}
    return write_folder(folder, files, manifest)


def privacy_problems(export: MunicipalExport, pupils: pd.DataFrame, max_small: int) -> list[str]:
    """Reasons not to write this export; empty when it may go out (domain.md §7, §9 item 14)."""
    problems = [f"identifier in {column}" for column in leaked_identifiers(export, pupils)]
    others = export.monitoring["woongemeente_code"] != export.gemeente
    if others.any():
        problems.append(f"{int(others.sum())} monitoring row(s) of another municipality")
    for name, table in export.aggregates.items():
        numbers = pd.to_numeric(table.iloc[:, 1:].stack(), errors="coerce")
        small = numbers[(numbers >= 1) & (numbers <= max_small)]
        if len(small):
            problems.append(f"{name}: {len(small)} unsuppressed count(s) from 1 to {max_small}")
    return problems


def logged_files(export: MunicipalExport, written: WrittenFolder) -> list[ExportedFile]:
    """Every written file plus the manifest, with its legal basis, as the export log records them."""
    files = [ExportedFile(name, entry["rows"], entry["sha256"], export.grondslag(name))
             for name, entry in written.files.items()]
    manifest = (written.folder / MANIFEST).read_bytes()
    files.append(ExportedFile(MANIFEST, len(written.files), sha256(manifest), export.grondslag(MANIFEST)))
    return files


def deliver(export: MunicipalExport, written: WrittenFolder, log: ExportLog, relative_folder: str,
            target: UploadTarget | None, uploads: ExportUploads) -> dict[str, int]:
    """Log the export and, with a target, upload what the receiver has not confirmed yet (manifest last).

    Each confirmation is logged as it arrives, so after a failed upload the next run sends only the
    rest. Raises ``UploadError`` when a file cannot be delivered or is not confirmed.
    """
    manifest = json.loads((written.folder / MANIFEST).read_text(encoding="utf-8"))
    files = logged_files(export, written)
    added = log.record_export(export.gemeente, relative_folder, files,
                              pd.Timestamp(manifest["generated_at"]).to_pydatetime())
    if target is None:
        return {"logged": added, "uploaded": 0}
    pending = log.not_uploaded(export.gemeente, relative_folder, {f.file: f.sha256 for f in files})
    uploaded = 0
    with uploads.uploader(target) as uploader:
        for name in sorted(pending, key=lambda name: (name == MANIFEST, name)):
            receipt = uploader.upload_file(written.folder / name, export.evaluation_date.isoformat())
            log.record_upload(export.gemeente, relative_folder, [receipt])
            uploaded += 1
    return {"logged": added, "uploaded": uploaded}


def _column_schema() -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, doc.type, description=f"{doc.betekenis} (bron: {doc.bron})")
                                   for name, doc in MONITORING_COLUMNS.items()])


# The internal columns of ``export_facts`` that the published monitoring table does not have.
_FACT_ONLY_COLUMNS = {
    "pupil_key": ColumnDoc("tekst", "interne leerlingsleutel (bsn:… of onr:…); nooit gepubliceerd, de export "
                           "vervangt hem door het pseudoniem", "pupils"),
    "leeftijdsklasse": ColumnDoc("tekst", "leeftijdsklasse op de peildatum, voor de aggregaten", "pupils"),
}


def _facts_schema(facts: pd.DataFrame) -> dg.TableSchema:
    docs = {**MONITORING_COLUMNS, **_FACT_ONLY_COLUMNS}
    return dg.TableSchema(columns=[
        dg.TableColumn(name, docs[name].type if name in docs else str(facts[name].dtype),
                       description=f"{docs[name].betekenis} (bron: {docs[name].bron})" if name in docs else None)
        for name in facts.columns])


def _files_markdown(written: WrittenFolder) -> str:
    lines = ["| file | rows | sha256 |", "|---|---:|---|"]
    lines += [f"| {name} | {entry['rows']} | {entry['sha256'][:12]} |" for name, entry in written.files.items()]
    return "\n".join(lines)


def build_export_assets(
    gemeenten: dg.StaticPartitionsDefinition,
    *,
    exports: Exports | None = None,
    retention: RetentionPeriods | None = None,
    stale_sources: StaleSources | None = None,
    settings: ExportSettings | None = None,
) -> list[dg.AssetsDefinition]:
    """``export_facts`` (once a night), ``municipal_exports`` (one partition per gemeente) and ``retention_purge``.

    ``exports``: the region file's formats and receivers (``exports.upload``: municipalities without
    one collect their files from the outbox); ``retention``: the region file's periods.
    ``stale_sources``: returns the source ids whose latest delivery is stale tonight; the manifest
    names them.
    """
    exports = exports or Exports()
    targets = exports.upload
    settings = settings or ExportSettings()

    @dg.asset(
        name="export_facts",
        description=(
            "Per resident of every municipality in the region: what the exports show (status, absence in the last 4 "
            "school weeks, youth-care waiting time and norms, transfer, MBO status, open signals), keyed by pupil; "
            "computed once a night so each municipality's export only selects its own rows. Internal: never "
            "published as it is (docs/exports.md)."
        ),
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pandas", "parquet"},
        io_manager_key="lake_io_manager",
        # Each municipality's export reads its own residents' rows: a row group per municipality.
        metadata={"row_groups_by": "woongemeente_code"},
        ins={"vo_absence": dg.AssetIn(metadata={"columns": [*KEY_FIELDS, *ABSENCE_FIELDS]}),
             "pupils": dg.AssetIn(metadata={"columns": list(RESIDENT_FIELDS)})},
    )
    def export_facts(
        region_config: RegionConfig,
        pupils: pd.DataFrame,
        vo_absence: pd.DataFrame,
        youth_care_waitlist: pd.DataFrame,
        po_transfers: pd.DataFrame,
        mbo_outflow: pd.DataFrame,
        thuiszitter_alerts: pd.DataFrame,
    ) -> dg.Output:
        region = region_config.region
        inputs = ExportInputs(pupils, vo_absence, youth_care_waitlist, po_transfers, mbo_outflow, thuiszitter_alerts)
        facts = resident_facts(inputs, region.gemeente_codes, region_config.evaluation(), region.calendar, settings)
        per_gemeente = facts["woongemeente_code"].value_counts().sort_index()
        facts = facts.reset_index()
        return dg.Output(facts, metadata={
            "dagster/row_count": len(facts),
            "dagster/column_schema": _facts_schema(facts),
            "per_woongemeente": dg.MetadataValue.json({k: int(v) for k, v in per_gemeente.items()}),
        })

    @dg.asset(
        name="municipal_exports",
        description=(
            "Per municipality, its own residents only: a pseudonymised monitoring table, suppressed aggregates "
            "(counts 1-5 as '<5', secondary suppression), a data dictionary and manifest.json with sha256 and "
            "legal basis; logged in export_log and, where configured, uploaded and verified (docs/exports.md)."
        ),
        partitions_def=gemeenten,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pandas", *exports.formats},
        metadata={"grondslag": dg.MetadataValue.json(dict(settings.grondslag)),
                  "formats": dg.MetadataValue.json(list(exports.formats)),
                  "receivers": dg.MetadataValue.json({g: t.url for g, t in sorted(targets.items())})},
        ins={
            # Read only what a partition uses: its own residents' facts, the identifiers the guard looks for.
            "export_facts": dg.AssetIn(metadata={"rows_of_partition": "woongemeente_code"}),
            "pupils": dg.AssetIn(metadata={"columns": list(GUARDED_IDENTIFIERS)}),
        },
    )
    def municipal_exports(
        context: dg.AssetExecutionContext,
        region_config: RegionConfig,
        outbox: Outbox,
        warehouse: dg.ResourceParam[HasEngine],
        export_keys: ExportKeys,
        export_uploads: ExportUploads,
        export_facts: pd.DataFrame,
        pupils: pd.DataFrame,
        thuiszitter_alerts: pd.DataFrame,
    ) -> dg.MaterializeResult:
        gemeente = context.partition_key
        region = region_config.region
        evaluation_date = region_config.evaluation()
        try:
            key = export_keys.key(gemeente)
        except ExportKeyMissing as error:
            raise dg.Failure(description=str(error)) from None
        stale = list(stale_sources(context)) if stale_sources else []
        export = export_from_facts(export_facts.set_index("pupil_key"), thuiszitter_alerts, gemeente=gemeente,
                                   evaluation_date=evaluation_date, key=key, swv_code=region.swv.code,
                                   stale_sources=stale, settings=settings)

        # The files are rendered in memory while the guard checks the tables: Arrow and zlib release the
        # GIL, so both cores work. Nothing is written before the guard has passed.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") as pool:
            rendering = pool.submit(lambda: export.files)
            problems = privacy_problems(export, pupils, settings.max_small_count)
            if problems:
                rendering.cancel()
                raise dg.Failure(description=f"{gemeente}: export refused by the privacy guard, nothing written",
                                 metadata={"problems": dg.MetadataValue.json(problems)})
            rendering.result()

        written = write_export(export, outbox, exports.formats)
        relative = f"{EXPORTS_FOLDER}/{gemeente}/{evaluation_date.isoformat()}"
        log = ExportLog(warehouse.engine)
        log.create()
        try:
            delivery = deliver(export, written, log, relative, targets.get(gemeente), export_uploads)
        except UploadError as error:
            raise dg.Failure(description=f"{relative}: written and logged, upload failed: {error}; "
                                         "the next run sends the files not yet confirmed") from None
        context.log.info(f"{relative}: {len(written.files)} files ({'written' if written.changed else 'unchanged'}), "
                         f"{delivery['logged']} logged, {delivery['uploaded']} uploaded")

        return dg.MaterializeResult(metadata={
            "dagster/row_count": len(export.monitoring),
            "dagster/column_schema": _column_schema(),
            "folder": relative,
            "files": dg.MetadataValue.md(_files_markdown(written)),
            "changed": written.changed,
            "grondslag": dg.MetadataValue.json(export.manifest["grondslag"]),
            "verouderde_bronnen": dg.MetadataValue.json(export.manifest["verouderde_bronnen"]),
            "upload": "not configured" if gemeente not in targets else f"{delivery['uploaded']} file(s) confirmed",
            "privacy_guard": "passed: own residents only, no identifiers, no counts 1-5",
            "preview": dg.MetadataValue.md(
                export.aggregates["aggregaat_per_leeftijd"].to_markdown(index=False)
                + f"\n\n_{SMALL_CELL} = 1 t/m {settings.max_small_count}; {SECONDARY_CELL} = verborgen "
                "(secundaire onderdrukking). The monitoring rows are pseudonymised personal data and not shown._"
            ),
        })

    return [export_facts, municipal_exports, build_retention_asset(retention)]
