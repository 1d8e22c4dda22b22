"""Validated datasets: every raw row checked against its canonical contract; bad rows to quarantine.

One asset per canonical dataset, downstream of its raw asset. Two checks say what happened:

- ``delivery_contract`` (blocking, ERROR): a delivery that breaks the contract as a whole (a
  required column absent or empty throughout) is rejected. Raw ingest holds such a delivery back
  and passes on its source's last good delivery instead (``assets.bronnen.ingest``), so the table
  keeps that delivery's rows; this check is the safety net should one ever reach validation, and
  then downstream assets are not refreshed this night.
- ``row_rejects``: rows quarantined, with counts per rule. It passes up to
  ``validation.warn_reject_share`` of the region YAML (default 5 %: a few bad rows every night are
  normal), fails as WARN above it and as ERROR above ``validation.max_reject_share`` (default 20 %).

Every materialization carries ``dagster/column_schema`` from the Pandera model, the row count,
quarantine counts per rule, a Markdown summary of the top reasons and the night's quarantined rows
as a table (delivery, row, column, rule, message; ``quarantine_table``), never a personal value.
"""


import datetime as dt
import re

import dagster as dg
import pandas as pd

from assets.metadata import column_schema, preview_markdown
from connectors.region_config import RegionConfig
from connectors.warehouse import Warehouse
from connectors.xlsx import MAX_CELL_CHARACTERS, overlong_cells
from schemas.datasets import canonical_fields
from schemas.validate import ValidationResult, validate_dataset
from settings.constants import DATA_STEWARDS as OWNERS
from settings.datasets import DATASETS, DESCRIPTIONS, raw_asset_name, validated_asset_name
from settings.region import Region

VALIDATED_GROUP = "validatie"


def reject_summary_markdown(result: ValidationResult, top: int = 10) -> str:
    """Top reasons for quarantine, per rule and column, with the deliveries they came from."""
    if result.rejects.empty:
        return "No rows quarantined."
    distinct = result.rejects.drop_duplicates(["source_id", "delivery", "delivery_row", "rule", "column"])
    table = (distinct.groupby(["rule", "column"]).agg(rows=("delivery_row", "size"), deliveries=("delivery", "nunique"))
             .sort_values("rows", ascending=False).head(top).reset_index())
    return table.to_markdown(index=False)


SHOWN_QUARANTINE_ROWS = 50  # the UI lists the first ones; the warehouse and the partners' feedback hold all

# Whatever could be a BSN, an onderwijsnummer (8 or more digits in a row) or a date of birth. The
# messages name columns and rules only (schemas/checks.py RULE_MESSAGES); this is the second lock.
_IDENTIFIER_LIKE = re.compile(r"\d{8,}")
_DATE_LIKE = re.compile(r"\b(\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{4}[-/.]\d{1,2}[-/.]\d{1,2})\b")


def masked(text: str, *, dates: bool = True) -> str:
    """``text`` with anything shaped like a BSN, onderwijsnummer or (when ``dates``) a date replaced by
    ``•``: nothing personal in Dagster metadata (docs/domain.md §7). Delivery names keep their dates
    (``wachtlijst_2026-10-05.csv``: when it was delivered, not anyone's birthday)."""
    text = _IDENTIFIER_LIKE.sub(lambda m: "•" * len(m.group()), str(text))
    return _DATE_LIKE.sub("••-••-••••", text) if dates else text


QUARANTINE_TABLE_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("source", "string", description="Source id in the region file (the delivering partner)."),
    dg.TableColumn("delivery", "string", description="File or URL of the delivery."),
    dg.TableColumn("row", "int", description="Row number in the delivery (1 = first data row)."),
    dg.TableColumn("column", "string", description="Canonical field, '*' for the whole row."),
    dg.TableColumn("rule", "string", description="Rule name, see docs/validation.md."),
    dg.TableColumn("message", "string", description="What is wrong, in Dutch; never a value."),
])


def quarantine_table(rejects: pd.DataFrame, limit: int = SHOWN_QUARANTINE_ROWS) -> dg.TableMetadataValue:
    """The night's quarantine entries in delivery and row order, the first ``limit`` of them, masked."""
    ordered = rejects.sort_values(["source_id", "delivery", "delivery_row", "column", "rule"]).head(limit)
    records = [
        dg.TableRecord({"source": str(r.source_id), "delivery": masked(r.delivery, dates=False),
                        "row": int(r.delivery_row), "column": str(r.column), "rule": str(r.rule),
                        "message": masked(r.message)})
        for r in ordered.itertuples(index=False)
    ]
    return dg.MetadataValue.table(records, schema=QUARANTINE_TABLE_SCHEMA)


def quarantine_shown(rejects: pd.DataFrame, limit: int = SHOWN_QUARANTINE_ROWS) -> str:
    """What ``quarantine_table`` leaves out, said beside it."""
    if len(rejects) <= limit:
        return f"all {len(rejects)} quarantine entries of tonight are shown"
    return (f"the first {limit} of {len(rejects)} quarantine entries are shown, {len(rejects) - limit} more in the "
            "warehouse table quarantine and in the partners' feedback files (docs/validation.md)")


def reject_verdict(share: float, warn_share: float, error_share: float) -> tuple[bool, dg.AssetCheckSeverity]:
    """``row_rejects``: passed up to ``warn_share``, WARN above it, ERROR above ``error_share``
    (``validation`` in the region file, docs/configuration.md)."""
    if share > error_share:
        return False, dg.AssetCheckSeverity.ERROR
    return share <= warn_share, dg.AssetCheckSeverity.WARN


def _unknown_codes_markdown(result: ValidationResult) -> str:
    if result.unknown_codes is None or result.unknown_codes.empty:
        return "No unknown code-list labels."
    return result.unknown_codes.head(20).to_markdown(index=False)


def build_validated_assets(region: Region) -> list[dg.AssetsDefinition]:
    return [_validated_asset(dataset) for dataset in DATASETS if region.sources_for(dataset)]


def _validated_asset(dataset: str) -> dg.AssetsDefinition:
    key = dg.AssetKey(validated_asset_name(dataset))
    raw_key = dg.AssetKey(raw_asset_name(dataset))
    text_fields = {name for name, column in canonical_fields(dataset).items() if str(column.dtype).startswith("str")}

    @dg.asset(
        key=key,
        ins={"raw": dg.AssetIn(raw_key)},
        description=f"Validated: {DESCRIPTIONS[dataset]} Typed, checked rows; rejects in the quarantine table.",
        group_name=VALIDATED_GROUP,
        owners=OWNERS,
        kinds={"pandas", "pandera", "parquet"},
        io_manager_key="lake_io_manager",
        check_specs=[
            dg.AssetCheckSpec("delivery_contract", asset=key, blocking=True,
                              description="No delivery breaks the contract as a whole (required column absent or empty)."),
            dg.AssetCheckSpec("row_rejects", asset=key,
                              description=("Rows quarantined per rule: passes up to validation.warn_reject_share of "
                                           "the region file, WARN above it, ERROR above validation.max_reject_share.")),
        ],
    )
    def validated(context: dg.AssetExecutionContext, raw: pd.DataFrame, region_config: RegionConfig, warehouse: Warehouse):
        region = region_config.region
        result = validate_dataset(dataset, raw, region, evaluation_date=region_config.evaluation())
        warehouse.ensure_schema()
        summary = warehouse.record_quarantine(dataset, result.rejects, result.deliveries, dt.datetime.now(dt.UTC))
        share = result.quarantined_rows / max(result.raw_rows, 1)
        warn_share, limit = region.validation.warn_reject_share, region.validation.max_reject_share
        counts = result.counts
        context.log.info(
            f"{dataset}: {result.raw_rows} rows, {len(result.valid)} valid, {result.quarantined_rows} quarantined "
            f"({share:.1%}), {len(result.rejected_deliveries)} delivery(ies) rejected"
        )
        too_long = overlong_cells(result.valid.loc[:, [c for c in result.valid.columns if c in text_fields]])
        if too_long:
            context.log.warning(f"{dataset}: text longer than an Excel cell holds ({MAX_CELL_CHARACTERS:,} characters) "
                                f"in {too_long}: the XLSX outputs cut and mark it, the CSV files keep it whole")
        yield dg.Output(
            result.valid,
            metadata={
                "dagster/row_count": len(result.valid),
                "dagster/column_schema": column_schema(dataset),
                "raw_rows": result.raw_rows,
                "quarantined_rows": result.quarantined_rows,
                "quarantine_per_rule": dg.MetadataValue.json(counts),
                "top_reasons": dg.MetadataValue.md(reject_summary_markdown(result)),
                "rows_per_source": dg.MetadataValue.md(result.per_source.to_markdown(index=False)),
                "unknown_codes": dg.MetadataValue.md(_unknown_codes_markdown(result)),
                "quarantine_table": quarantine_table(result.rejects),
                "quarantine_shown": quarantine_shown(result.rejects),
                "quarantine_new": summary.new,
                "quarantine_resolved": summary.resolved,
                "texts_longer_than_an_excel_cell": dg.MetadataValue.json(too_long),
                "preview": dg.MetadataValue.md(preview_markdown(result.valid, dataset)),
            },
        )
        rejected = [
            {"source_id": r.source_id, "delivery": r.delivery, "rows": r.rows, "reason": r.reason}
            for r in result.rejected_deliveries
        ]
        yield dg.AssetCheckResult(
            check_name="delivery_contract",
            passed=not rejected,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if not rejected else "; ".join(f"{r['delivery']}: {r['reason']}" for r in rejected),
            metadata={"rejected_deliveries": dg.MetadataValue.json(rejected)},
        )
        passed, severity = reject_verdict(share, warn_share, limit)
        yield dg.AssetCheckResult(
            check_name="row_rejects",
            passed=passed,
            severity=severity,
            description=(f"{result.quarantined_rows} of {result.raw_rows} rows quarantined ({share:.1%}; "
                         f"WARN above {warn_share:.0%}, ERROR above {limit:.0%}; "
                         "docs/validation.md \"What happens to a delivery\")"),
            metadata={
                "quarantined_rows": result.quarantined_rows,
                "share": round(share, 4),
                "per_rule": dg.MetadataValue.json(counts),
                "top_reasons": dg.MetadataValue.md(reject_summary_markdown(result)),
                "quarantine_table": quarantine_table(result.rejects),
            },
        )

    return validated
