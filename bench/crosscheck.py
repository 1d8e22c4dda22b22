"""Content cross-check: do the pipeline and the reference produce the same rows, not just as many?

Equal counts hide a reference that rejects one row the pipeline keeps and keeps another the
pipeline rejects. So the benchmark compares content, for four things:

- **validated**: the valid rows of every dataset, every column both sides have (provenance
  included: a row is identified by its source, delivery and row number);
- **quarantine**: per rejected row, the dataset, source, delivery, row number, column and rule; per
  linkage conflict, the pupil key and the rule;
- **alerts**: pupil key, reason, category (SWV or Doorstroompunt) and episode start;
- **handovers**: per PO→VO and VO→MBO handover file row, the route, year, receiving school and
  pupil key.

Each side is projected onto the same columns with the same text form (dates as ISO dates, booleans
``true``/``false``, numbers as Arrow writes them, missing as one marker), every row hashed to
64 bits, the hashes sorted, and the sorted array hashed again: an order-independent digest that
is equal exactly when the two multisets of rows are (up to 64-bit collisions). Where they differ,
a few examples name the rows by provenance or by a hashed pupil key, never by a BSN or a name.

The readers know where each side keeps its outputs: the pipeline's night under its ``SWV_VAR_DIR``
(lake Parquet, the SQLite warehouse's ``quarantine`` table, the outbox's handover CSVs), the
reference under its output folder (``bench.reference``). Neither side's code is imported.
"""

from __future__ import annotations

import glob
import hashlib
import hmac
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

DATASETS = ("po_transfers", "youth_care_waitlist", "vo_enrolment", "vo_absence", "mbo_outflow")
# Columns about the fetch, not the content: the pipeline records when it fetched a delivery.
NOT_CONTENT = ("fetched_at", "delivery_sha256")
ROW_IDENTITY = ("source_id", "delivery", "delivery_row")
QUARANTINE_COLUMNS = ["dataset", "source_id", "delivery", "delivery_row", "column", "rule", "pupil_key"]
# Linkage conflicts (two birth dates, two schools) are quarantined per pupil, not per delivered row.
CONFLICT = {"dataset": "pupils", "source_id": "koppeling", "delivery": "pupils", "delivery_row": 0,
            "column": "pupil_key"}
ALERT_COLUMNS = ["pupil_key", "reason", "category", "episode_start"]
HANDOVER_COLUMNS = ["route", "year", "school", "pupil_key"]
ROUTES = ("po-vo", "vo-mbo")
MISSING = "\x00"
EXAMPLES = 5


@dataclass
class Comparison:
    """One compared thing: equal or not, rows and digest per side, and a few differing rows."""

    thing: str
    equal: bool
    pipeline_rows: int
    reference_rows: int
    pipeline_digest: str
    reference_digest: str
    examples: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- reading each side


def _parquet(pattern: str) -> pd.DataFrame | None:
    files = sorted(glob.glob(pattern))
    if not files:
        return None
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def pipeline_outputs(var: Path) -> dict[str, dict[str, pd.DataFrame]]:
    """The pipeline night's outputs under its ``SWV_VAR_DIR`` (lake, SQLite warehouse, outbox)."""
    var = Path(var)
    lake = var / "lake" / "assets"
    validated = {name: frame for name in DATASETS
                 if (frame := _parquet(str(lake / name / "*.parquet"))) is not None}
    warehouse = var / "warehouse.sqlite"
    if not warehouse.exists():
        raise FileNotFoundError(f"{warehouse}: the pipeline night left no warehouse")
    with sqlite3.connect(f"file:{warehouse}?mode=ro", uri=True) as connection:
        rows = pd.read_sql_query(
            'SELECT dataset, source_id, delivery, delivery_row, "column", rule FROM quarantine '
            f"WHERE resolved_at IS NULL AND dataset IN ({', '.join('?' * len(DATASETS))})", connection,
            params=DATASETS)
    # The warehouse keeps a conflict's pupil only as a fingerprint; the lake has the key itself.
    quarantine = pd.concat([rows, _conflicts(_parquet(str(lake / "pupil_conflicts" / "*.parquet")))],
                           ignore_index=True)
    alerts = _parquet(str(lake / "thuiszitter_alerts" / "*.parquet"))
    alerts = pd.DataFrame(columns=ALERT_COLUMNS) if alerts is None else alerts
    handovers = _handover_rows(var / "outbox" / "overdracht", bsn="BSN", onderwijsnummer="Onderwijsnummer")
    return {"validated": validated, "quarantine": {"all": quarantine}, "alerts": {"all": alerts},
            "handovers": {"all": handovers}}


def reference_outputs(out: Path) -> dict[str, dict[str, pd.DataFrame]]:
    """The reference's outputs under its output folder (``bench.reference.run_reference``)."""
    out = Path(out)
    validated = {name: pd.read_parquet(out / "validated" / f"{name}.parquet") for name in DATASETS
                 if (out / "validated" / f"{name}.parquet").exists()}
    quarantine = pd.concat([*(pd.read_parquet(path).assign(dataset=path.stem)
                              for path in sorted((out / "quarantine").glob("*.parquet"))),
                            _conflicts(pd.read_parquet(out / "pupil_conflicts.parquet"))], ignore_index=True)
    alerts = pd.read_parquet(out / "signalen" / "signalen.parquet")
    handovers = _handover_rows(out / "overdracht", bsn="bsn", onderwijsnummer="onderwijsnummer")
    return {"validated": validated, "quarantine": {"all": quarantine}, "alerts": {"all": alerts},
            "handovers": {"all": handovers}}


def _conflicts(conflicts: pd.DataFrame | None) -> pd.DataFrame:
    """Linkage conflicts as quarantine rows: the pupil and the rule."""
    if conflicts is None:
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    return conflicts.loc[:, ["pupil_key", "rule"]].assign(**CONFLICT).loc[:, QUARANTINE_COLUMNS]


def _handover_rows(root: Path, *, bsn: str, onderwijsnummer: str) -> pd.DataFrame:
    """One row per pupil in every current handover file: ``<route>/<year>/<school>/overdracht.csv``."""
    parts = []
    for route in ROUTES:
        for path in sorted((root / route).glob("*/*/overdracht.csv")):
            frame = pd.read_csv(path, sep=";", dtype="str", encoding="utf-8-sig", keep_default_na=False)
            key = _pupil_key(frame[bsn].replace("", None), frame[onderwijsnummer].replace("", None))
            parts.append(pd.DataFrame({"route": route, "year": path.parent.parent.name, "school": path.parent.name,
                                       "pupil_key": key.to_numpy()}))
    return pd.concat([pd.DataFrame(columns=HANDOVER_COLUMNS), *parts], ignore_index=True)


def _pupil_key(bsn: pd.Series, onderwijsnummer: pd.Series) -> pd.Series:
    return ("bsn:" + bsn.astype("str")).fillna("onr:" + onderwijsnummer.astype("str"))


# --------------------------------------------------------------------------- canonical form and digest


def canonical_text(column: pd.Series) -> pa.Array:
    """One column as text in a form both sides share: ISO dates, true/false, Arrow's numbers."""
    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = column.astype("datetime64[ns]")
        midnight = (stamps.isna() | (stamps == stamps.dt.normalize())).all()
        text = stamps.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%dT%H:%M:%S")
        array = pa.array(text.astype("str"), type=pa.large_string(), from_pandas=True)
    elif pd.api.types.is_bool_dtype(column) or isinstance(column.dtype, pd.BooleanDtype):
        array = pc.cast(pa.array(column.astype("boolean"), type=pa.bool_(), from_pandas=True), pa.large_string())
    elif pd.api.types.is_numeric_dtype(column):
        numbers = pa.array(column, from_pandas=True)
        if pa.types.is_floating(numbers.type):  # 3.0 and 3 are the same number on both sides
            whole = pc.fill_null(pc.equal(numbers, pc.round(numbers)), False)
            numbers = pc.if_else(whole, pc.cast(pc.cast(pc.if_else(whole, numbers, 0.0), pa.int64()), pa.float64()),
                                 numbers)
        array = pc.cast(numbers, pa.large_string())
    else:
        array = pa.array(column.astype("str"), type=pa.large_string(), from_pandas=True)
    return pc.fill_null(array, MISSING)


def projection(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame``'s ``columns`` in canonical text form (a missing column is missing in every row)."""
    out = {}
    for name in columns:
        column = frame[name] if name in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="str")
        if name == "delivery":  # an API delivery is its URL: the same endpoint whichever port served it
            column = column.astype("str").str.replace(r"^https?://[^/]+", "", regex=True)
        out[name] = pd.Series(canonical_text(column.reset_index(drop=True)).to_pandas(types_mapper=pd.ArrowDtype),
                              dtype="str")
    return pd.DataFrame(out, columns=columns)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of a canonical projection (order of the rows irrelevant to the digest)."""
    if frame.empty:
        return np.zeros(0, dtype=np.uint64)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


def digest(hashes: np.ndarray) -> str:
    """Order-independent: the sorted row hashes, hashed."""
    return hashlib.sha256(np.sort(hashes).tobytes()).hexdigest()[:16]


_EXAMPLE_SALT = os.urandom(16)  # per run: an example's hashed key cannot be looked up by hashing every BSN


def _hashed(key: str) -> str:
    return "#" + hmac.new(_EXAMPLE_SALT, key.encode(), hashlib.sha256).hexdigest()[:10]


def _describe(row: pd.Series, identity: list[str]) -> str:
    """A differing row by its identity, pupil keys hashed."""
    return ", ".join(f"{name}={_hashed(row[name]) if name == 'pupil_key' else row[name]}"
                     for name in identity).replace(MISSING, "–")


def compare_frames(thing: str, pipeline: pd.DataFrame, reference: pd.DataFrame, columns: list[str],
                   identity: list[str], *, distinct: bool = False) -> Comparison:
    """Equal as multisets of rows over ``columns`` (as sets with ``distinct``)? Examples are
    identified by ``identity``."""
    left, right = projection(pipeline, columns), projection(reference, columns)
    if distinct:
        left, right = left.drop_duplicates(ignore_index=True), right.drop_duplicates(ignore_index=True)
    lh, rh = row_hashes(left), row_hashes(right)
    equal = len(lh) == len(rh) and np.array_equal(np.sort(lh), np.sort(rh))
    comparison = Comparison(thing, bool(equal), len(left), len(right), digest(lh), digest(rh))
    if equal:
        return comparison
    only_left = left.loc[~np.isin(lh, rh)]
    only_right = right.loc[~np.isin(rh, lh)]
    by_identity = right.drop_duplicates(identity).set_index(identity) if len(identity) < len(columns) else None
    for side, rows in (("pipeline only", only_left), ("reference only", only_right)):
        for _, row in rows.head(EXAMPLES).iterrows():
            note = ""
            if side == "pipeline only" and by_identity is not None:
                key = tuple(row[name] for name in identity) if len(identity) > 1 else row[identity[0]]
                if key in by_identity.index:
                    other = by_identity.loc[key]
                    differing = [name for name in columns if name not in identity and other[name] != row[name]]
                    note = f" (both have this row; columns differ: {', '.join(differing)})"
            comparison.examples.append(f"{side}: {_describe(row, identity)}{note}")
    if len(lh) != len(rh) and not comparison.examples:
        comparison.examples.append("the same rows, repeated a different number of times")
    return comparison


def compare(pipeline: dict, reference: dict) -> dict[str, Comparison]:
    """The four compared things; ``validated`` over every dataset's common columns."""
    results: dict[str, Comparison] = {}
    parts = []
    for name in DATASETS:
        left, right = pipeline["validated"].get(name), reference["validated"].get(name)
        if left is None or right is None:
            parts.append(Comparison(f"validated:{name}", False, 0 if left is None else len(left),
                                    0 if right is None else len(right), "", "", [f"{name}: missing on one side"]))
            continue
        columns = sorted(c for c in set(left.columns) & set(right.columns) if c not in NOT_CONTENT)
        parts.append(compare_frames(f"validated:{name}", left, right, columns, list(ROW_IDENTITY)))
    results["validated"] = Comparison(
        "validated", all(p.equal for p in parts), sum(p.pipeline_rows for p in parts),
        sum(p.reference_rows for p in parts), digest(np.array([int(p.pipeline_digest or "0", 16) for p in parts],
                                                               dtype=np.uint64)),
        digest(np.array([int(p.reference_digest or "0", 16) for p in parts], dtype=np.uint64)),
        [f"{p.thing}: {example}" for p in parts for example in p.examples])
    results["quarantine"] = compare_frames("quarantine", pipeline["quarantine"]["all"], reference["quarantine"]["all"],
                                           QUARANTINE_COLUMNS, QUARANTINE_COLUMNS, distinct=True)
    results["alerts"] = compare_frames("alerts", pipeline["alerts"]["all"], reference["alerts"]["all"], ALERT_COLUMNS,
                                       ["pupil_key", "reason"])
    results["handovers"] = compare_frames("handovers", pipeline["handovers"]["all"], reference["handovers"]["all"],
                                          HANDOVER_COLUMNS, HANDOVER_COLUMNS)
    return results


def crosscheck(pipeline_var: Path, reference_out: Path) -> dict[str, Comparison]:
    """Compare a pipeline night (its ``SWV_VAR_DIR``) with a reference night (its output folder)."""
    return compare(pipeline_outputs(pipeline_var), reference_outputs(reference_out))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.crosscheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("pipeline", type=Path, help="the pipeline night's var folder (bench/out/run-*/N/pipeline-1)")
    parser.add_argument("reference", type=Path, help="the reference's output folder (bench/out/run-*/N/reference-1)")
    args = parser.parse_args(argv)
    results = crosscheck(args.pipeline, args.reference)
    for thing, result in results.items():
        print(f"{thing}: {'equal' if result.equal else 'NOT EQUAL'} ({result.pipeline_rows:,} / "
              f"{result.reference_rows:,} rows; {result.pipeline_digest} / {result.reference_digest})")
        for example in result.examples[:20]:
            print(f"    {example}")
    return 0 if all(r.equal for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
