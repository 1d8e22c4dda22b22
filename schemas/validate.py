"""Validation of one dataset: parse, check every rule at once, quarantine failing rows, re-check the rest.

1. **Contract.** A delivery without a required field (the column is absent, or empty in every row)
   breaks the contract as a whole: it becomes a ``DeliveryRejected`` and none of its rows is
   judged one by one (the asset turns it into a blocking ERROR check).
2. **Parse** (``schemas.parse``): text becomes typed values; unparsable cells are failures.
3. **Check** the typed frame against the dataset's schema with ``validate(lazy=True)``, so every
   failing rule of every row is collected; plus ``duplicate_row`` on the delivered text.
4. **Quarantine** every row whose index appears in any failure, with *all* its reasons.
5. **Re-validate** the survivors: they must pass, or the pipeline itself is wrong (``ValidationBug``).

Nothing is lost: for every source, raw rows = valid rows + quarantined rows + rows of rejected
deliveries, and ``validate_dataset`` raises if that ever fails to hold. Rejects carry provenance,
a row fingerprint and a masked value, never a personal value (docs/domain.md §7).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrorReason, SchemaErrors

from schemas.checks import control_character, describe, duplicate_row
from schemas.datasets import (
    PROVENANCE_COLUMNS,
    REQUIRED_WHEN_MAPPED,
    canonical_fields,
    dataset_schema,
    personal_fields,
)
from schemas.consent import without_withheld_fields
from schemas.frames import select_rows
from schemas.parse import FAILURE_COLUMNS, no_failures, parse_dataset
from settings.region import Region

DELIVERY_KEY = ["source_id", "delivery", "delivery_sha256"]
REJECT_COLUMNS = [
    "source_id", "delivery", "delivery_sha256", "delivery_row", "row_fingerprint", "column", "rule", "message",
    "value_masked",
]
WHOLE_ROW = "*"  # the column of a rule about the whole row (duplicate_row)
# Raw column of the cells a connector could not trust: ``field:rule:cell`` entries joined by ';' (else NA).
CELL_FLAGS = "cell_flags"
EMPTY = "(leeg)"
SHOWN_CHARACTERS = 80  # non-personal values are shown up to this length


class ValidationBug(AssertionError):
    """The pipeline contradicts itself (a survivor fails the schema, a check crashes, rows go missing).

    Never the partner's fault, so never a quarantine entry: fix the code. The message names rules
    and columns only, never a value.
    """


@dataclass(frozen=True)
class DeliveryRejected:
    """A delivery that breaks the contract as a whole; none of its rows reaches the valid table."""

    source_id: str
    delivery: str
    delivery_sha256: str
    rows: int
    reason: str


@dataclass(frozen=True)
class ValidationResult:
    """What one validation produced.

    ``valid``: typed rows that pass the whole schema, provenance kept, index 0..n-1, plus the flag
    ``buiten_regio`` (woongemeente outside the region: kept, not rejected); consent-gated fields
    are empty where consent is not given (``schemas.consent.without_withheld_fields``).
    ``rejects``: one row per rejected row × rule × column (``REJECT_COLUMNS``).
    ``counts``: per rule, the number of distinct rows it rejected.
    ``per_source``: rows per source: raw, valid, quarantined, in rejected deliveries.
    ``deliveries``: the (source_id, delivery, sha256) that were validated row by row: what
    ``Warehouse.record_quarantine`` needs to resolve entries a corrected re-delivery fixed.
    """

    dataset: str
    valid: pd.DataFrame
    rejects: pd.DataFrame
    raw_rows: int
    unknown_codes: pd.DataFrame
    counts: dict[str, int]
    per_source: pd.DataFrame
    deliveries: list[tuple[str, str, str]]
    rejected_deliveries: list[DeliveryRejected]

    @property
    def quarantined_rows(self) -> int:
        return len(self.rejects.drop_duplicates(["source_id", "delivery", "delivery_row"]))


def validate_dataset(dataset: str, raw: pd.DataFrame, region: Region, *, evaluation_date: dt.date) -> ValidationResult:
    """Validate a raw frame (text values, canonical names, provenance) of one dataset; see the module docstring."""
    missing = [name for name in PROVENANCE_COLUMNS if name not in raw.columns]
    if missing:
        raise ValueError(f"raw {dataset} frame lacks provenance column(s) {missing}")
    raw = raw.reset_index(drop=True)
    delivery_of_row, deliveries = delivery_ids(raw)
    rejected_deliveries, broken = contract_violations(dataset, raw, region, delivery_of_row, deliveries)
    accepted = select_rows(raw, ~broken.to_numpy())  # no copy of a million rows when nothing broke

    # Two pieces of work need nothing of what runs beside them, and go to a helper thread, where Arrow's
    # kernels and numpy release the GIL and so use the second core: the exact duplicates (found on the
    # delivered text, independently of parsing and rules) and the re-validation of the survivors
    # (its only outcome is a ValidationBug, awaited before anything is returned).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="validation") as helper:
        duplicates = helper.submit(_duplicate_failures, dataset, accepted)
        parsed = parse_dataset(dataset, accepted, region)
        schema = dataset_schema(
            dataset, evaluation_date=evaluation_date, school_year_start=region.calendar.school_year_start,
            school_registry=region.school_registry,
        )
        delivered = pd.concat([parsed.failures, cell_flag_failures(accepted),
                               control_character_failures(dataset, accepted),
                               empty_when_mapped_failures(dataset, accepted, region)], ignore_index=True)
        checked = _without_parse_failures(check_failures(schema, parsed.frame), delivered)
        failures = pd.concat([delivered, checked, duplicates.result()], ignore_index=True)
        failures = failures.drop_duplicates(["row", "column", "rule"])

        survivors = select_rows(parsed.frame, ~parsed.frame.index.isin(failures["row"].unique()))
        revalidated = helper.submit(_revalidate, schema, survivors)
        rejects = _rejects(dataset, accepted, failures)
        # Consent-gated values without consent stop here: only the raw snapshot keeps them (schemas.consent).
        valid = without_withheld_fields(dataset, survivors.assign(buiten_regio=outside_region(survivors, region)))
        valid = valid.reset_index(drop=True)
        per_source = _reconcile(raw, broken, valid, failures)
        revalidated.result()
    refused = {(r.source_id, r.delivery, r.delivery_sha256) for r in rejected_deliveries}
    return ValidationResult(
        dataset=dataset,
        valid=valid,
        rejects=rejects,
        raw_rows=len(raw),
        unknown_codes=parsed.unknown_codes,
        counts=_counts(rejects),
        per_source=per_source,
        deliveries=[key for key in deliveries if key not in refused],
        rejected_deliveries=rejected_deliveries,
    )


def contract_violations(dataset: str, raw: pd.DataFrame, region: Region, ids: np.ndarray,
                        deliveries: list[tuple[str, str, str]]) -> tuple[list[DeliveryRejected], pd.Series]:
    """Deliveries that break the contract as a whole, and the mask of their rows (``delivery_ids``
    gives ``ids`` and ``deliveries``).

    A delivery is rejected when its source is not a source of this dataset in the region YAML, or
    when a required field is absent or empty in every one of its rows (the column was not mapped,
    or the partner sent it blank): judging such rows one by one would bury the real problem.
    """
    required = [name for name, column in canonical_fields(dataset).items() if not column.nullable]
    sizes = np.bincount(ids, minlength=len(deliveries))
    filled = {  # per delivery: does any row fill the field?
        name: np.bincount(ids, weights=raw[name].notna().to_numpy(), minlength=len(deliveries)) > 0
        if name in raw.columns else np.zeros(len(deliveries), dtype=bool)
        for name in required
    }
    rejected, broken = [], np.zeros(len(raw), dtype=bool)
    for number, (source_id, delivery, sha256) in sorted(enumerate(deliveries), key=lambda item: item[1]):
        source = region.sources.get(source_id)
        if source is None or source.dataset != dataset:
            reason = f"bron {source_id} is geen bron van {dataset} in de regioconfiguratie"
        elif not all(filled[name][number] for name in required):
            empty = ", ".join(name for name in required if not filled[name][number])
            reason = (
                f"verplichte kolom(men) {empty} ontbreken of zijn in elke rij leeg "
                f"(controleer sources.{source_id}.columns in de regioconfiguratie en de levering)"
            )
        else:
            continue
        rejected.append(DeliveryRejected(source_id, delivery, sha256, int(sizes[number]), reason))
        broken |= ids == number
    return rejected, pd.Series(broken, index=raw.index)


def delivery_ids(raw: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    """Per row the number of its delivery, and the deliveries as (source_id, delivery, sha256) in
    the order of their first row. A frame holds a handful of deliveries in millions of rows: each
    provenance column is factorized once, not grouped on as text."""
    combined = np.zeros(len(raw), dtype=np.int64)
    for name in DELIVERY_KEY:
        codes, distinct = pd.factorize(raw[name])
        combined = combined * (len(distinct) + 1) + codes + 1
    ids, _ = pd.factorize(combined)
    first = np.unique(ids, return_index=True)[1]
    keys = raw[DELIVERY_KEY].iloc[first]
    return ids, [tuple(map(str, key)) for key in keys.itertuples(index=False)]


def check_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Every (row, column, rule) the schema rejects, from one lazy validation.

    Only data failures are expected: a wrong dtype, a missing column or a check that raises is the
    pipeline's own bug and raises ``ValidationBug``.
    """
    try:
        schema.validate(frame, lazy=True)
        return no_failures()
    except SchemaErrors as errors:
        # Handled outside this block: an exception raised in it would chain Pandera's message,
        # which quotes the failing values (BSNs, birth dates) into any traceback.
        schema_errors = errors.schema_errors
    return pd.concat([_failure_rows(error) for error in schema_errors], ignore_index=True)


def cell_flag_failures(raw: pd.DataFrame) -> pd.DataFrame:
    """The cells a connector flagged (``CELL_FLAGS``: a formula without a value, a covered merged cell)."""
    if CELL_FLAGS not in raw.columns or not raw[CELL_FLAGS].notna().any():
        return no_failures()
    entries = raw[CELL_FLAGS].dropna().str.split(";").explode()
    parts = entries.str.split(":", n=2, expand=True)
    rows = entries.index.to_numpy(dtype="int64")
    messages = [describe(rule, column, {"cell": cell}) for column, rule, cell in zip(parts[0], parts[1], parts[2])]
    return pd.DataFrame({"row": rows, "column": parts[0].to_numpy(), "rule": parts[1].to_numpy(), "message": messages},
                        columns=FAILURE_COLUMNS)


def empty_when_mapped_failures(dataset: str, raw: pd.DataFrame, region: Region) -> pd.DataFrame:
    """Rule ``required`` for the fields of ``REQUIRED_WHEN_MAPPED``: empty on a row of a source that maps them."""
    parts = []
    for name in REQUIRED_WHEN_MAPPED.get(dataset, ()):
        mapping = [sid for sid, source in region.sources.items() if name in source.columns.values()]
        text = raw[name].str.strip() if name in raw.columns else pd.Series(pd.NA, index=raw.index, dtype="str")
        bad = raw["source_id"].isin(mapping) & (text.isna() | (text == ""))
        if bad.any():
            parts.append(pd.DataFrame({"row": raw.index[bad.to_numpy()], "column": name, "rule": "required",
                                       "message": describe("required", name)}, columns=FAILURE_COLUMNS))
    return pd.concat([no_failures(), *parts], ignore_index=True)


def control_character_failures(dataset: str, raw: pd.DataFrame) -> pd.DataFrame:
    """Every delivered cell with a control character (rule ``control_character``, ``schemas.checks``)."""
    parts = []
    for name in canonical_fields(dataset):
        if name not in raw.columns:
            continue
        bad = ~control_character(raw[name])
        if bad.any():
            parts.append(pd.DataFrame({"row": raw.index[bad.to_numpy()], "column": name, "rule": "control_character",
                                       "message": describe("control_character", name)}, columns=FAILURE_COLUMNS))
    return pd.concat([no_failures(), *parts], ignore_index=True)


def outside_region(frame: pd.DataFrame, region: Region) -> pd.Series:
    """True where the woongemeente is not one of the region's gemeenten; NA where it is unknown."""
    if "woongemeente_code" not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="boolean")
    code = frame["woongemeente_code"]
    return (~code.isin(region.gemeente_codes)).astype("boolean").where(code.notna(), pd.NA)


def row_fingerprints(raw: pd.DataFrame, fields: list[str], rows: pd.Index, copies: pd.Index) -> pd.Series:
    """sha256 of the delivered values of each row in ``rows``, with its copy number.

    Provenance is left out, so the same row delivered again (in a later file, at another line) has
    the same fingerprint. ``copies`` are the rows ``duplicate_row`` flagged: the n-th copy of a row
    hashes with n appended, so every row of a delivery keeps its own fingerprint.
    Hashing runs in Python per *rejected* row only: sha256 has no vectorised form in numpy or Arrow.
    """
    absent = pd.Series(pd.NA, index=rows, dtype="str")
    values = pd.DataFrame({name: raw.loc[rows, name] if name in raw.columns else absent for name in fields}).astype("str")
    copy_number = pd.Series(0, index=rows, dtype="int64")
    if len(copies):
        groups = [raw.loc[copies, name] for name in ["source_id", "delivery", *fields] if name in raw.columns]
        copy_number.loc[copies] = raw.loc[copies].groupby(groups, dropna=False).cumcount() + 1
    text = values[fields[0]].str.cat([values[name] for name in fields[1:]], sep="\x1f", na_rep="\x00")
    text = text + "\x1e" + copy_number.astype("str")
    return pd.Series([hashlib.sha256(line.encode("utf-8")).hexdigest() for line in text], index=rows, dtype="str")


def masked_values(dataset: str, raw: pd.DataFrame, rows: pd.Series, columns: pd.Series) -> pd.Series:
    """The delivered value of each failure's (row, column): personal fields as '*** (9 tekens)', others shown."""
    personal = personal_fields(dataset)
    masked = pd.Series(EMPTY, index=rows.index, dtype="str")
    for column, where in columns.groupby(columns).groups.items():
        if column == WHOLE_ROW:
            masked.loc[where] = "(hele rij)"
        elif column in raw.columns:
            delivered = raw.loc[rows.loc[where], column].str.strip().set_axis(where)
            if column in personal:
                shown = "*** (" + delivered.str.len().astype("Int64").astype("str") + " tekens)"
            else:
                shown = delivered.str.slice(0, SHOWN_CHARACTERS)
            masked.loc[where] = shown.where(delivered.fillna("") != "", EMPTY)
    return masked


def _failure_rows(error: SchemaError) -> pd.DataFrame:
    """One schema error as (row, column, rule, message) rows; anything but a data failure is a bug."""
    if error.reason_code is SchemaErrorReason.SERIES_CONTAINS_NULLS:
        rule, column, statistics = "required", error.schema.name, {}
    elif error.reason_code is SchemaErrorReason.DATAFRAME_CHECK and isinstance(error.check, pa.Check):
        rule, statistics = error.check.name, dict(error.check.statistics)
        column = statistics["column"] if isinstance(error.schema, pa.DataFrameSchema) else error.schema.name
    else:
        where = getattr(error.schema, "name", None)
        raise ValidationBug(f"schema error {error.reason_code.name} on {where}: the parsing or a check is wrong")
    rows = pd.unique(error.failure_cases["index"]).astype("int64")
    return pd.DataFrame(
        {"row": rows, "column": column, "rule": rule, "message": describe(rule, column, statistics)},
        columns=FAILURE_COLUMNS,
    )


def _without_parse_failures(checked: pd.DataFrame, parse_failures: pd.DataFrame) -> pd.DataFrame:
    """Drop check failures on cells that already failed to parse (their NA would be reported twice)."""
    cells = checked.merge(parse_failures[["row", "column"]].drop_duplicates(), how="left", indicator=True)
    return checked.loc[(cells["_merge"] == "left_only").to_numpy()]


def _duplicate_failures(dataset: str, raw: pd.DataFrame) -> pd.DataFrame:
    fields = [name for name in canonical_fields(dataset) if name in raw.columns]
    duplicated = duplicate_row(raw, fields)
    rows = raw.index[duplicated.to_numpy()]
    return pd.DataFrame(
        {"row": rows, "column": WHOLE_ROW, "rule": "duplicate_row", "message": describe("duplicate_row", WHOLE_ROW)},
        columns=FAILURE_COLUMNS,
    )


def _revalidate(schema: pa.DataFrameSchema, survivors: pd.DataFrame) -> None:
    try:
        schema.validate(survivors, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases.drop_duplicates(["schema_context", "check"])
        rules = sorted(f"{context}:{check}" for context, check in zip(cases["schema_context"], cases["check"]))
        raise ValidationBug(f"rows that passed validation fail on a second run: {rules}") from None


def _rejects(dataset: str, raw: pd.DataFrame, failures: pd.DataFrame) -> pd.DataFrame:
    if failures.empty:
        return pd.DataFrame(
            {name: pd.Series(dtype="int64" if name == "delivery_row" else "str") for name in REJECT_COLUMNS}
        )
    failures = failures.reset_index(drop=True)
    rows = pd.Index(failures["row"].unique())
    # The rejected rows are few; picking them out once keeps every lookup below off the whole frame
    # (a lookup per column in millions of rows of Arrow chunks costs more than all the rest).
    raw = select_rows(raw, raw.index.isin(rows))
    copies = pd.Index(failures.loc[failures["rule"] == "duplicate_row", "row"].unique())
    fingerprints = row_fingerprints(raw, list(canonical_fields(dataset)), rows, copies)
    provenance = raw.loc[failures["row"], ["source_id", "delivery", "delivery_sha256", "delivery_row"]]
    rejects = provenance.reset_index(drop=True).assign(
        row_fingerprint=fingerprints.loc[failures["row"]].to_numpy(),
        column=failures["column"].astype("str"),
        rule=failures["rule"].astype("str"),
        message=failures["message"].astype("str"),
        value_masked=masked_values(dataset, raw, failures["row"], failures["column"]),
    )
    return rejects.sort_values(["source_id", "delivery", "delivery_row", "column", "rule"], ignore_index=True)


def _counts(rejects: pd.DataFrame) -> dict[str, int]:
    distinct = rejects.drop_duplicates(["source_id", "delivery", "delivery_row", "rule"])
    return {rule: int(n) for rule, n in distinct["rule"].value_counts().sort_index().items()}


def _reconcile(raw: pd.DataFrame, broken: pd.Series, valid: pd.DataFrame, failures: pd.DataFrame) -> pd.DataFrame:
    """Rows per source: raw = valid + quarantined + rejected with their delivery, or a ValidationBug."""
    table = pd.DataFrame(
        {
            "raw": raw["source_id"].value_counts(),
            "valid": valid["source_id"].value_counts(),
            "quarantined": raw.loc[failures["row"].unique(), "source_id"].value_counts(),
            "rejected_delivery": raw.loc[broken, "source_id"].value_counts(),
        }
    ).fillna(0).astype("int64")
    lost = table.index[table["raw"] != table["valid"] + table["quarantined"] + table["rejected_delivery"]]
    if len(lost):
        raise ValidationBug(f"rows do not reconcile for source(s) {list(lost)}")
    return table.rename_axis("source_id").reset_index()
