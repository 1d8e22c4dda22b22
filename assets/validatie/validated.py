"""Validated datasets: every raw row checked against its canonical contract; bad rows to quarantine.

One asset per canonical dataset, downstream of its raw asset. Two checks say what happened:

- ``delivery_contract`` (blocking, ERROR): a delivery that breaks the contract as a whole (a
  required column absent or empty throughout) is rejected. Raw ingest holds such a delivery back
  and passes on its source's last good delivery instead (``assets.bronnen.ingest``), so the table
  keeps that delivery's rows; this check is the safety net should one ever reach validation, and
  then downstream assets are not refreshed this night.
- ``row_rejects`` (WARN): rows quarantined, with counts per rule; it turns ERROR when the share of
  rejected rows exceeds ``validation.max_reject_share`` of the region YAML (default 20 %).

Every materialization carries ``dagster/column_schema`` from the Pandera model, the row count,
quarantine counts per rule and a Markdown summary of the top reasons, never a personal value.
"""


import datetime as dt

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
                              description="Rows quarantined per rule; ERROR above the configured share."),
        ],
    )
    def validated(context: dg.AssetExecutionContext, raw: pd.DataFrame, region_config: RegionConfig, warehouse: Warehouse):
        region = region_config.region
        result = validate_dataset(dataset, raw, region, evaluation_date=region_config.evaluation())
        warehouse.ensure_schema()
        summary = warehouse.record_quarantine(dataset, result.rejects, result.deliveries, dt.datetime.now(dt.UTC))
        share = result.quarantined_rows / max(result.raw_rows, 1)
        limit = region.validation.max_reject_share
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
        yield dg.AssetCheckResult(
            check_name="row_rejects",
            passed=result.quarantined_rows == 0,
            severity=dg.AssetCheckSeverity.ERROR if share > limit else dg.AssetCheckSeverity.WARN,
            description=(f"{result.quarantined_rows} of {result.raw_rows} rows quarantined ({share:.1%}; "
                         f"ERROR above {limit:.0%})"),
            metadata={
                "quarantined_rows": result.quarantined_rows,
                "share": round(share, 4),
                "per_rule": dg.MetadataValue.json(counts),
                "top_reasons": dg.MetadataValue.md(reject_summary_markdown(result)),
            },
        )

    return validated
