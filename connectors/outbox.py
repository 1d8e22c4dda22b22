"""The outbox: files delivered to partners (schools, colleges, municipalities), written safely.

Every table goes out in the formats its readers use: CSV for Dutch Excel and imports (UTF-8 with
BOM, ``;``, decimals with a comma), XLSX that a school administrator can use directly (Dutch headers, dd-mm-jjjj dates,
frozen header, filters, column widths), and, where asked, Parquet with its schema. A folder gets a
``manifest.json`` (rows and sha256 per file) so the receiver can verify what arrived.

Guarantees:
- atomic: each file is written under a temporary name and renamed (``connectors.atomic``);
- no formula injection: text cells starting with ``= + - @``, tab or carriage return get a
  leading apostrophe in CSV and are stored as plain strings in XLSX;
- reproducible: a re-run with the same rows rewrites nothing (the manifest's content fingerprint
  is compared first), so files stay byte-identical; changed rows replace the folder's files and the
  previous version is kept under ``_versies/<fingerprint>/``;
- paths are built only from validated codes (``safe_segment``), never from free text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from connectors import xlsx
from connectors.atomic import atomic_path, atomic_write_bytes


_FORMULA_STARTS = pa.array(["=", "+", "-", "@", "\t", "\r"])
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def safe_segment(value: str) -> str:
    """A path segment made from a validated code (BRIN, GM code, date); anything else is refused."""
    if not _SEGMENT.fullmatch(value) or ".." in value:
        raise ValueError(f"refusing to use {value!r} as a file or folder name")
    return value


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text that Excel would run as a formula with an apostrophe (OWASP CSV injection).

    Every formula start is one character, so a cell's first character is looked up among them
    (Arrow, one pass): as fast as ``str.startswith`` on a large column, and faster on the small
    tables of a school's handover, where pandas' per-call overhead dominates.
    """
    out = frame.copy(deep=False)  # copy-on-write: the caller's frame is never changed
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_string_dtype(series) or series.dtype == object:
            text = series if series.dtype == "str" else series.astype("str")
            first = pc.utf8_slice_codeunits(pa.array(text, from_pandas=True), 0, 1)
            risky = pc.fill_null(pc.is_in(first, value_set=_FORMULA_STARTS), False)
            if pc.any(risky).as_py():
                risky = pd.Series(risky.to_numpy(zero_copy_only=False), index=text.index)
                out[column] = text.where(~risky, "'" + text)
    return out


def _display_column(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    """One column as a Dutch reader expects it: dates dd-mm-jjjj, booleans ja/nee, decimals with a comma
    (``12,5``: Dutch Excel reads a point as text or as thousands), missing empty."""
    if pd.api.types.is_float_dtype(series):
        return pc.replace_substring(pc.cast(pa.array(series, from_pandas=True), pa.string()), ".", ",")
    if pd.api.types.is_datetime64_any_dtype(series):
        # A million rows hold a few thousand distinct dates: format those, then pick per row.
        codes, dates = pd.factorize(series)
        shown = pa.array(dates.strftime("%d-%m-%Y"), type=pa.string())
        return pc.take(shown, pa.array(codes, mask=codes < 0))
    if pd.api.types.is_bool_dtype(series):
        return xlsx.ja_nee(series)
    if series.dtype == object:  # mixed cells (counts and "<5"): each as its text
        return pa.array(series.astype("str"), from_pandas=True)
    return pa.array(series, from_pandas=True)


_CSV_OPTIONS = pa_csv.WriteOptions(delimiter=";", quoting_style="needed", eol="\r\n")


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 with BOM, ``;``, CRLF and decimal commas, as Dutch Excel opens it; text quoted, formula-like
    text neutralised.

    Written by Arrow's CSV writer (faster than ``DataFrame.to_csv`` on Arrow-backed text).
    """
    return _csv(neutralise(frame))


def _csv(shown: pd.DataFrame) -> bytes:
    table = pa.table({str(name): _display_column(shown[name]) for name in shown.columns})
    buffer = io.BytesIO()
    buffer.write("\ufeff".encode("utf-8"))
    if shown.columns.size:
        pa_csv.write_csv(table, buffer, write_options=_CSV_OPTIONS)
    return buffer.getvalue()


def xlsx_bytes(frame: pd.DataFrame, sheet: str, *, printing: xlsx.Print = xlsx.Print()) -> bytes:
    """A workbook a school administrator can use directly: frozen header, filters, widths, dd-mm-jjjj
    dates, ja/nee, printable on A4 landscape (``printing``: title, repeated columns); formula-like text
    neutralised as in the CSV (``connectors.xlsx`` writes it)."""
    return xlsx.xlsx_bytes(neutralise(frame), sheet, printing=printing)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class WrittenFolder:
    folder: Path
    files: dict[str, dict]  # file name -> {"rows", "sha256", "bytes"}
    fingerprint: str
    changed: bool


def write_folder(folder: Path, files: dict[str, tuple[bytes, int]], manifest_extra: dict) -> WrittenFolder:
    """Deliver a set of files plus ``manifest.json`` atomically; unchanged content is not rewritten.

    ``files`` maps file name -> (bytes, rows). The fingerprint covers the file contents and the
    stable parts of the manifest; ``generated_at`` is kept from the previous version when nothing
    changed, so a re-run leaves every byte as it was.
    """
    folder = Path(folder)
    entries = {name: {"rows": rows, "sha256": sha256(data), "bytes": len(data)} for name, (data, rows) in sorted(files.items())}
    stable = json.dumps({"files": entries, **manifest_extra}, sort_keys=True, default=str)
    fingerprint = sha256(stable.encode())[:16]
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        if previous.get("fingerprint") == fingerprint and all((folder / n).exists() for n in entries):
            return WrittenFolder(folder, entries, fingerprint, changed=False)
        old = previous.get("fingerprint")
        if old:
            archive = folder / "_versies" / old
            for name in [*previous.get("files", {}), "manifest.json"]:
                # A write killed halfway is repeated: what the archive already holds is the old version.
                if (folder / name).exists() and not (archive / name).exists():
                    atomic_write_bytes(archive / name, (folder / name).read_bytes())
    for name, (data, _) in files.items():
        atomic_write_bytes(folder / safe_segment(name), data)
    manifest = {
        "fingerprint": fingerprint,
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        **manifest_extra,
        "files": entries,
    }
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return WrittenFolder(folder, entries, fingerprint, changed=True)


def table_files(stem: str, frame: pd.DataFrame, *, sheet: str, parquet: bool = False,
                printing: xlsx.Print = xlsx.Print()) -> dict[str, tuple[bytes, int]]:
    """The same rows as CSV and XLSX (and Parquet when asked), ready for ``write_folder``; ``printing``
    says how the workbook prints (title on every page, columns repeated on every page across)."""
    stem = safe_segment(stem)
    shown = neutralise(frame)  # once for both: CSV and XLSX show the same neutralised text

    def csv_and_parquet() -> dict[str, tuple[bytes, int]]:
        files = {f"{stem}.csv": (_csv(shown), len(frame))}
        if parquet:
            files[f"{stem}.parquet"] = (parquet_bytes(frame), len(frame))
        return files

    if len(frame) > xlsx.BLOCK_ROWS:  # Arrow and ISA-L release the GIL: the workbook is made beside the rest
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlsx") as pool:
            workbook = pool.submit(xlsx.xlsx_bytes, shown, sheet, printing=printing)
            files = csv_and_parquet()
            files[f"{stem}.xlsx"] = (workbook.result(), len(frame))
    else:  # a small table (a school's handover): a helper thread costs more than it overlaps
        files = csv_and_parquet()
        files[f"{stem}.xlsx"] = (xlsx.xlsx_bytes(shown, sheet, printing=printing), len(frame))
    return dict(sorted(files.items()))


class Outbox(dg.ConfigurableResource):
    """Where partner files land: ``<root>/overdracht``, ``<root>/signalen``, ``<root>/gemeenten/<GM>``."""

    root: str

    def folder(self, *segments: str) -> Path:
        return Path(self.root).joinpath(*(safe_segment(s) for s in segments))
