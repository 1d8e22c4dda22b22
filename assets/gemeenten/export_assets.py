"""The municipal exports as a Dagster asset: every municipality in one step, each on its own (docs/exports.md).

For each municipality it writes ``<outbox>/gemeenten/<GMcode>/<evaluation date>/``: the monitoring
table, the suppressed aggregates and the data dictionary in the formats of the region file
(``exports.formats``: CSV, XLSX and Parquet by default), and ``manifest.json`` (files, rows, sha256,
schema version, period, legal basis, stale sources). Then it logs every file in the warehouse's
``export_log`` and, where the region file gives the municipality a receiver (``exports.upload``),
uploads the files (manifest last) through the ``export_uploads`` resource and records the
receiver's checksums.

Each municipality succeeds or fails on its own: a missing key, a refusal by the privacy guard or a
failed upload is that municipality's ``export_<GMcode>`` check failing (ERROR), while the others are
written and delivered. One municipality's export is re-run alone with run configuration
(``gemeenten: [GM0118]``); the checks of the others then report the export they already have.

Order of safety: nothing is written unless the privacy guard passes (own residents only, no
identifier of any pupil in any published cell, no count 1-5); files are written atomically with the
manifest last; a file that was not confirmed by the receiver is sent again on the next run.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.signalen.alert_rules import ABSENCE_FIELDS
from assets.koppeling.linkage import KEY_FIELDS
from assets.gemeenten.export_settings import ExportSettings
from assets.gemeenten.identifier_leaks import GUARDED_IDENTIFIERS, GuardedIdentifiers, leaked_identifiers
from assets.gemeenten.published_tables import ColumnDoc, MONITORING_COLUMNS, MunicipalExport, export_from_facts
from assets.gemeenten.resident_facts import ExportInputs, RESIDENT_FIELDS, resident_facts
from assets.gemeenten.retention import build_retention_asset
from connectors.export_log import ExportedFile, ExportLog, HasEngine
from connectors.outbox import Outbox, WrittenFolder, sha256, write_folder
from connectors.region_config import RegionConfig
from connectors.secrets import ExportKeyMissing, ExportKeys
from connectors.upload import ExportUploads, UploadError, UploadTarget
from settings.constants import DATA_STEWARDS
from settings.region import EXPORT_FORMATS, Exports, RetentionPeriods

GROUP = "gemeenten"
EXPORTS_FOLDER = "gemeenten"
MANIFEST = "manifest.json"

StaleSources = Callable[[dg.AssetExecutionContext], Sequence[str]]


def export_folder(outbox: Outbox, gemeente: str, evaluation_date) -> Path:
    return outbox.folder(EXPORTS_FOLDER, gemeente, evaluation_date.isoformat())


def write_export(export: MunicipalExport, outbox: Outbox, formats: Sequence[str] = EXPORT_FORMATS) -> WrittenFolder:
    """Write one municipality's export in ``formats`` atomically (manifest last); an unchanged export is
    not rewritten."""
    folder = export_folder(outbox, export.gemeente, export.evaluation_date)
    # The tables in the chosen formats; what is no table (the legend) always goes along.
    files = {name: content for name, content in export.files.items()
             if (suffix := name.rsplit(".", 1)[-1]) in formats or suffix not in EXPORT_FORMATS}
    manifest = {**export.manifest, "formaten": [f for f in export.manifest["formaten"] if f.split()[0] in formats]}
    return write_folder(folder, files, manifest)


def privacy_problems(export: MunicipalExport, pupils: pd.DataFrame | GuardedIdentifiers, max_small: int) -> list[str]:
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


class ExportSelection(dg.Config):
    """Run configuration of ``municipal_exports``: which municipalities this run exports."""

    gemeenten: list[str] = Field(
        default_factory=list,
        description="CBS codes of the municipalities to export in this run (e.g. [GM0118]); empty: all of them.",
    )


def export_check_name(gemeente: str) -> str:
    return f"export_{gemeente}"


@dataclass
class ExportOutcome:
    """What happened to one municipality's export in this run; names and counts only, no personal data."""

    gemeente: str
    passed: bool
    description: str
    rows: int = 0
    metadata: dict = field(default_factory=dict)

    def check_result(self, naam: str) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(check_name=export_check_name(self.gemeente), passed=self.passed,
                                   severity=dg.AssetCheckSeverity.ERROR, description=f"{naam}: {self.description}",
                                   metadata={"gemeente": f"{naam} ({self.gemeente})", **self.metadata})


def existing_export(outbox: Outbox, gemeente: str, evaluation_date) -> ExportOutcome:
    """The verdict on a municipality that this run did not export: does it have tonight's export already?"""
    folder = export_folder(outbox, gemeente, evaluation_date)
    relative = f"{EXPORTS_FOLDER}/{gemeente}/{evaluation_date.isoformat()}"
    if (folder / MANIFEST).exists():
        return ExportOutcome(gemeente, True, f"not exported in this run; {relative} is complete (manifest present)",
                             metadata={"folder": relative, "in_this_run": False})
    return ExportOutcome(gemeente, False, f"not exported in this run, and {relative} has no export yet",
                         metadata={"folder": relative, "in_this_run": False})


def _outcomes_markdown(outcomes: Sequence[ExportOutcome], names: Mapping[str, str]) -> str:
    lines = ["| gemeente | rows | outcome |", "|---|---:|---|"]
    lines += [f"| {names.get(o.gemeente, o.gemeente)} ({o.gemeente}) | {o.rows} | "
              f"{'ok' if o.passed else 'FAILED'}: {o.description} |" for o in outcomes]
    return "\n".join(lines)


def build_export_assets(
    gemeenten: Sequence,
    *,
    exports: Exports | None = None,
    retention: RetentionPeriods | None = None,
    stale_sources: StaleSources | None = None,
    settings: ExportSettings | None = None,
) -> list[dg.AssetsDefinition]:
    """``export_facts``, ``municipal_exports`` (every municipality, each with its own check) and ``retention_purge``.

    ``gemeenten``: the region's municipalities (``settings.region.Gemeente``: code and naam).

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
        owners=DATA_STEWARDS,
        kinds={"pandas", "parquet"},
        io_manager_key="lake_io_manager",
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

    def export_one(gemeente: str, context, region, evaluation_date, facts: pd.DataFrame, guarded: GuardedIdentifiers,
                   thuiszitter_alerts: pd.DataFrame, stale: list[str], outbox: Outbox, log: ExportLog,
                   export_keys: ExportKeys, export_uploads: ExportUploads) -> ExportOutcome:
        """Write, log and deliver one municipality's export; every refusal is its outcome, never an exception."""
        relative = f"{EXPORTS_FOLDER}/{gemeente}/{evaluation_date.isoformat()}"
        try:
            key = export_keys.key(gemeente)
        except ExportKeyMissing as error:
            return ExportOutcome(gemeente, False, f"{error}; nothing written", metadata={"folder": relative})
        export = export_from_facts(facts, thuiszitter_alerts, gemeente=gemeente, evaluation_date=evaluation_date,
                                   key=key, swv_code=region.swv.code, stale_sources=stale, settings=settings)

        problems = privacy_problems(export, guarded, settings.max_small_count)
        if problems:  # nothing is rendered or written before the guard has passed
            return ExportOutcome(gemeente, False, "export refused by the privacy guard, nothing written",
                                 metadata={"folder": relative, "problems": dg.MetadataValue.json(problems)})

        written = write_export(export, outbox, exports.formats)
        metadata = {"folder": relative, "rows": len(export.monitoring), "changed": written.changed,
                    "files": dg.MetadataValue.md(_files_markdown(written))}
        try:
            delivery = deliver(export, written, log, relative, targets.get(gemeente), export_uploads)
        except UploadError as error:
            return ExportOutcome(gemeente, False, f"written and logged, upload failed: {error}; the next run sends "
                                 "the files not yet confirmed", len(export.monitoring), metadata)
        context.log.info(f"{relative}: {len(written.files)} files ({'written' if written.changed else 'unchanged'}), "
                         f"{delivery['logged']} logged, {delivery['uploaded']} uploaded")
        upload = "not configured" if gemeente not in targets else f"{delivery['uploaded']} file(s) confirmed"
        return ExportOutcome(gemeente, True, f"{relative}: {len(written.files)} files, upload {upload}",
                             len(export.monitoring), {**metadata, "upload": upload})

    @dg.asset(
        name="municipal_exports",
        description=(
            "Per municipality, its own residents only: a pseudonymised monitoring table, suppressed aggregates "
            "(counts 1-5 as '<5', secondary suppression), a data dictionary and manifest.json with sha256 and "
            "legal basis; logged in export_log and, where configured, uploaded and verified (docs/exports.md). "
            "Each municipality succeeds or fails on its own (check export_{GMcode})."
        ),
        group_name=GROUP,
        owners=DATA_STEWARDS,
        kinds={"pandas", *exports.formats},
        metadata={"grondslag": dg.MetadataValue.json(dict(settings.grondslag)),
                  "formats": dg.MetadataValue.json(list(exports.formats)),
                  "receivers": dg.MetadataValue.json({g: t.url for g, t in sorted(targets.items())})},
        check_specs=[dg.AssetCheckSpec(
            export_check_name(g.code), asset="municipal_exports",
            description=(f"{g.naam} ({g.code}): tonight's export is written, passed the privacy guard and, where "
                         "a receiver is configured, was delivered and confirmed."),
        ) for g in gemeenten],
        ins={"pupils": dg.AssetIn(metadata={"columns": list(GUARDED_IDENTIFIERS)})},
    )
    def municipal_exports(
        context: dg.AssetExecutionContext,
        config: ExportSelection,
        region_config: RegionConfig,
        outbox: Outbox,
        warehouse: dg.ResourceParam[HasEngine],
        export_keys: ExportKeys,
        export_uploads: ExportUploads,
        export_facts: pd.DataFrame,
        pupils: pd.DataFrame,
        thuiszitter_alerts: pd.DataFrame,
    ):
        region = region_config.region
        names = {g.code: g.naam for g in gemeenten}  # the municipalities the checks were declared for
        unknown = sorted(set(config.gemeenten) - set(names))
        if unknown:
            raise dg.Failure(description=f"gemeenten {unknown} in the run configuration are not municipalities of "
                                         f"{region.swv.code} ({', '.join(names)})")
        selected = [code for code in names if not config.gemeenten or code in config.gemeenten]
        evaluation_date = region_config.evaluation()
        stale = list(stale_sources(context)) if stale_sources else []
        facts = export_facts.set_index("pupil_key")
        residents = facts.groupby("woongemeente_code", sort=False, observed=True).indices
        log = ExportLog(warehouse.engine)
        log.create()
        outcomes = []
        guarded = GuardedIdentifiers(pupils)  # the region's identifiers, looked for in every export
        for gemeente in names:
            if gemeente not in selected:
                outcomes.append(existing_export(outbox, gemeente, evaluation_date))
                continue
            own = facts.iloc[residents.get(gemeente, [])]
            outcomes.append(export_one(gemeente, context, region, evaluation_date, own, guarded,
                                       thuiszitter_alerts, stale, outbox, log, export_keys, export_uploads))
        failed = [o.gemeente for o in outcomes if not o.passed]
        if failed:
            context.log.error(f"export failed for {', '.join(f'{names[g]} ({g})' for g in failed)}: see the "
                              "export_{GMcode} checks")
        yield dg.MaterializeResult(metadata={
            "dagster/row_count": sum(o.rows for o in outcomes if o.metadata.get("in_this_run", True)),
            "dagster/column_schema": _column_schema(),
            "preview": dg.MetadataValue.md(_outcomes_markdown(outcomes, names)),
            "exported": len([o for o in outcomes if o.passed and o.gemeente in selected]),
            "failed": len(failed),
            "grondslag": dg.MetadataValue.json(dict(settings.grondslag)),
            "verouderde_bronnen": dg.MetadataValue.json(stale),
            "privacy_guard": "every export written passed it: own residents only, no identifiers, no counts 1-5",
        })
        for outcome in outcomes:  # the UI's check page names the municipality beside its code
            yield outcome.check_result(names[outcome.gemeente])

    return [export_facts, municipal_exports, build_retention_asset(retention)]
