"""The lake: Parquet files under ``var/lake`` that carry bulk data between assets.

Bulk data stays in Parquet (0.2 s per million rows); only what needs SQL goes to the warehouse.
``LakeIOManager`` stores each asset output as ``<root>/assets/<asset>/<partition>.parquet``; an
unpartitioned asset that reads a partitioned one receives every partition's last good output
concatenated, so a municipality that failed tonight contributes yesterday's data instead of
blocking the night. ``RawSnapshots`` keeps immutable raw snapshots, one per delivery, named by the
delivery's sha256: ingesting the same delivery twice yields the same file, not duplicate rows; and
per source the last good state the night fell back on. Temporary files go to ``<root>/tmp``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.atomic import atomic_path

_UNPARTITIONED = "_all"


def write_parquet(frame: pd.DataFrame, target: Path, *, row_groups_by: str | None = None,
                  scratch: Path | None = None) -> None:
    """Written whole and atomically. Without column statistics: lake files are read whole, and
    min/max of every text column cost a quarter of the write (1.1 of 4.4 s per national night).

    ``scratch``: the folder of the temporary file (``connectors.atomic.atomic_path``).
    ``row_groups_by``: the rows are ordered by this column (stable) and written as a row group per
    value, with statistics for this column only, so a reader that filters on it (an input's
    ``rows_of_partition``) reads its own group and skips the others.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(target, scratch=scratch) as tmp:
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
        write_parquet(obj, self._path(context.asset_key, partition), row_groups_by=grouped,
                      scratch=Path(self.root, "tmp"))

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


@dataclass(frozen=True)
class KeptDelivery:
    """One delivery of a source's last good state: which snapshot stands for it, and what it held."""

    delivery: str  # file name (relative to the sources folder) or URL
    sha256: str
    rows: int
    read_at: str  # when it was read fresh (ISO 8601, UTC); a stand-in keeps the time it was read

    def describe(self) -> str:
        return f"{self.delivery} ({self.rows} rows, read {self.read_at[:16]}, sha256 {self.sha256[:12]})"


class RawSnapshots(dg.ConfigurableResource):
    """Immutable raw snapshots, ``<root>/raw/<source_id>/<sha256>.parquet`` (written once), and per source
    its last good state, ``<root>/raw/<source_id>/last_good.json``: the deliveries the night used.

    One state per source, whatever the deliveries were called: a fallback loads exactly what the last
    good night used, never every file or URL the source was ever read from.
    """

    root: str

    def path(self, source_id: str, sha256: str) -> Path:
        return Path(self.root, "raw", source_id, f"{sha256}.parquet")

    def store(self, source_id: str, sha256: str, frame: pd.DataFrame) -> Path:
        path = self.path(source_id, sha256)
        if not path.exists():
            write_parquet(frame, path, scratch=self.scratch)
        return path

    def read(self, source_id: str, sha256: str) -> pd.DataFrame:
        return read_parquet(self.path(source_id, sha256))

    @property
    def scratch(self) -> Path:
        """Temporary files of the lake's writers: cleaned by the next writer (``connectors.atomic``)."""
        return Path(self.root, "tmp")

    def _state_path(self, source_id: str) -> Path:
        return Path(self.root, "raw", source_id, "last_good.json")

    def last_good(self, source_id: str) -> list[KeptDelivery]:
        """The deliveries of the source's last good state (empty when it never had one)."""
        path = self._state_path(source_id)
        if not path.exists():
            return self._legacy_state(source_id)
        entries = json.loads(path.read_text(encoding="utf-8"))["deliveries"]
        return [KeptDelivery(**entry) for entry in entries]

    def keep(self, source_id: str, deliveries: list[KeptDelivery]) -> None:
        """Make ``deliveries`` (their snapshots stored before) the source's last good state, atomically."""
        document = {"source_id": source_id, "deliveries": [asdict(d) for d in sorted(deliveries, key=_by_name)]}
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        with atomic_path(self._state_path(source_id), scratch=self.scratch) as tmp:
            tmp.write_text(text, encoding="utf-8")

    def _legacy_state(self, source_id: str) -> list[KeptDelivery]:
        """The pointers of earlier versions (``last_good/<name>.txt``, one per name ever read) as a state.

        An API source kept a pointer per URL it was ever pulled from; only the newest one is its state.
        """
        folder = Path(self.root, "raw", source_id, "last_good")
        pointers = sorted(folder.glob("*.txt"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
        kept = []
        for pointer in pointers:
            sha256 = pointer.read_text().strip()
            if not self.path(source_id, sha256).exists():
                continue
            name = pointer.stem.replace("__", "/")
            read_at = dt.datetime.fromtimestamp(pointer.stat().st_mtime, dt.UTC).isoformat(timespec="seconds")
            rows = pq.read_metadata(self.path(source_id, sha256)).num_rows
            kept.append(KeptDelivery(name, sha256, rows, read_at))
        if kept and kept[-1].delivery.startswith("http"):  # the pointer names of URLs ('http___host__path')
            return kept[-1:]
        return kept


def _by_name(delivery: KeptDelivery) -> str:
    return delivery.delivery
