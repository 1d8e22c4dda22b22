"""The lake: Parquet files under ``var/lake`` that carry bulk data between assets.

Bulk data stays in Parquet (fast to write and read whole); only what needs SQL goes to the warehouse.
``LakeIOManager`` stores each asset output as ``<root>/assets/<asset>/_all.parquet``.
``RawSnapshots`` keeps immutable raw snapshots, one per delivery, named by the delivery's sha256:
ingesting the same delivery twice yields the same file, not duplicate rows; and per source the last
good state the night fell back on. Temporary files go to ``<root>/tmp``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.atomic import atomic_path

_UNPARTITIONED = "_all"


def write_parquet(frame: pd.DataFrame, target: Path, *, scratch: Path | None = None) -> None:
    """Written whole and atomically. Without column statistics: lake files are read whole, and
    min/max of every text column were a large share of the write (bench/README.md, "Design notes").

    ``scratch``: the folder of the temporary file (``connectors.atomic.atomic_path``).
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic_path(target, scratch=scratch) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A lake file as a frame; only ``columns`` (those the file has) are read."""
    if columns is not None:
        present = set(pq.read_schema(path).names)
        columns = [c for c in columns if c in present]
    return pq.read_table(path, columns=columns).to_pandas()


def read_asset(root: str | Path, asset: str, columns: list[str] | None = None) -> pd.DataFrame:
    """An unpartitioned asset's latest output in the lake under ``root`` (as ``LakeIOManager`` wrote it),
    for work outside a run (the monitor's backfill); a missing file is an error that says so."""
    path = Path(root, "assets", asset, f"{_UNPARTITIONED}.parquet")
    if not path.exists():
        raise FileNotFoundError(f"{path}: asset {asset} has never been materialized in this lake; run a night first")
    return read_parquet(path, columns)


class LakeIOManager(dg.ConfigurableIOManager):
    """Parquet per asset under ``root``; DataFrames only.

    An input may ask for only some columns through its metadata (``dg.AssetIn(metadata={"columns":
    [...]})``): the columns the file has are read, the others skipped.
    """

    root: str

    def _path(self, key: dg.AssetKey) -> Path:
        return Path(self.root, "assets", *key.path, f"{_UNPARTITIONED}.parquet")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        write_parquet(obj, self._path(context.asset_key), scratch=Path(self.root, "tmp"))

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return read_parquet(self._path(context.asset_key), (context.definition_metadata or {}).get("columns"))


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
