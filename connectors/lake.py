"""The lake: Parquet files under ``var/lake`` that carry bulk data between assets.

Bulk data stays in Parquet (0.2 s per million rows); only what needs SQL goes to the warehouse.
``LakeIOManager`` stores each asset output as ``<root>/assets/<asset>/<partition>.parquet``; an
unpartitioned asset that reads a partitioned one receives every partition's last good output
concatenated, so a municipality that failed tonight contributes yesterday's data instead of
blocking the night. ``RawSnapshots`` keeps immutable raw snapshots, one per delivery, named by the
delivery's sha256: ingesting the same delivery twice yields the same file, not duplicate rows.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.atomic import atomic_path

_UNPARTITIONED = "_all"


def write_parquet(frame: pd.DataFrame, target: Path, *, row_groups_by: str | None = None) -> None:
    """Written whole and atomically. Without column statistics: lake files are read whole, and
    min/max of every text column cost a quarter of the write (1.1 of 4.4 s per national night).

    ``row_groups_by``: the rows are ordered by this column (stable) and written as a row group per
    value, with statistics for this column only, so a reader that filters on it (an input's
    ``rows_of_partition``) reads its own group and skips the others.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(target) as tmp:
        if row_groups_by is None or not len(table):
            pq.write_table(table, tmp, compression="zstd", write_statistics=False)
            return
        table = table.take(pc.sort_indices(table, [(row_groups_by, "ascending", "at_end")]))
        with pq.ParquetWriter(tmp, table.schema, compression="zstd", write_statistics=[row_groups_by]) as writer:
            start = 0
            for end in pc.run_end_encode(table[row_groups_by].combine_chunks()).run_ends.to_numpy():
                writer.write_table(table.slice(start, end - start), row_group_size=end - start)
                start = end


def read_parquet(path: Path, columns: list[str] | None = None, filters=None) -> pd.DataFrame:
    """A lake file as a frame; ``columns`` (those the file has) and ``filters`` are applied while reading."""
    if columns is not None:
        present = set(pq.read_schema(path).names)
        columns = [c for c in columns if c in present]
    return pq.read_table(path, columns=columns, filters=filters).to_pandas()


def read_asset(root: str | Path, asset: str, columns: list[str] | None = None) -> pd.DataFrame:
    """An unpartitioned asset's latest output in the lake under ``root`` (as ``LakeIOManager`` wrote it),
    for work outside a run (the monitor's backfill); a missing file is an error that says so."""
    path = Path(root, "assets", asset, f"{_UNPARTITIONED}.parquet")
    if not path.exists():
        raise FileNotFoundError(f"{path}: asset {asset} has never been materialized in this lake; run a night first")
    return read_parquet(path, columns)


class LakeIOManager(dg.ConfigurableIOManager):
    """Parquet per asset (and partition) under ``root``; DataFrames only.

    An asset whose readers each take one value's rows says so in its metadata (``row_groups_by``:
    the column), and its file is written in a row group per value (``write_parquet``).
    """

    root: str

    def _path(self, key: dg.AssetKey, partition: str | None) -> Path:
        return Path(self.root, "assets", *key.path, f"{partition or _UNPARTITIONED}.parquet")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        partition = context.asset_partition_key if context.has_asset_partitions else None
        grouped = (context.definition_metadata or {}).get("row_groups_by")
        write_parquet(obj, self._path(context.asset_key, partition), row_groups_by=grouped)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """The upstream frame; an input may ask for less through its metadata (``dg.AssetIn(metadata=...)``):

        - ``columns``: only these columns (those the file has);
        - ``rows_of_partition``: only the rows whose value in this column is the run's partition key
          (a municipality's export reads the region-wide facts of its own residents only).
        """
        key = context.asset_key
        wanted = context.definition_metadata or {}
        columns = wanted.get("columns")
        filters = None
        if wanted.get("rows_of_partition") and context.has_partition_key:
            filters = [(wanted["rows_of_partition"], "=", context.partition_key)]
        if not context.has_asset_partitions:
            return read_parquet(self._path(key, None), columns, filters)
        frames = []
        for partition in context.asset_partition_keys:
            path = self._path(key, partition)
            if path.exists():
                frames.append(read_parquet(path, columns, filters))
            else:
                context.log.warning(f"{key.to_user_string()} partition {partition} has never been materialized; skipped")
        if not frames:
            raise FileNotFoundError(f"no partition of {key.to_user_string()} has been materialized yet")
        return pd.concat(frames, ignore_index=True)


class RawSnapshots(dg.ConfigurableResource):
    """Immutable raw snapshots: ``<root>/raw/<source_id>/<sha256>.parquet``, written once."""

    root: str

    def path(self, source_id: str, sha256: str) -> Path:
        return Path(self.root, "raw", source_id, f"{sha256}.parquet")

    def store(self, source_id: str, sha256: str, frame: pd.DataFrame) -> Path:
        path = self.path(source_id, sha256)
        if not path.exists():
            write_parquet(frame, path)
        return path

    def _pointer(self, source_id: str, delivery: str) -> Path:
        safe = delivery.replace("/", "__").replace(":", "_")
        return Path(self.root, "raw", source_id, "last_good", f"{safe}.txt")

    def mark_good(self, source_id: str, delivery: str, sha256: str) -> None:
        """Remember ``sha256`` as the last good snapshot of this delivery name (file or URL)."""
        from connectors.atomic import atomic_write_bytes

        atomic_write_bytes(self._pointer(source_id, delivery), sha256.encode())

    def last_good(self, source_id: str, delivery: str) -> pd.DataFrame | None:
        pointer = self._pointer(source_id, delivery)
        if not pointer.exists():
            return None
        return read_parquet(self.path(source_id, pointer.read_text().strip()))

    def last_good_all(self, source_id: str) -> list[tuple[str, pd.DataFrame]]:
        """Every delivery name of a source with its last good snapshot (for a partner that failed tonight)."""
        folder = Path(self.root, "raw", source_id, "last_good")
        if not folder.exists():
            return []
        return [
            (p.stem, read_parquet(self.path(source_id, p.read_text().strip())))
            for p in sorted(folder.glob("*.txt"))
        ]
