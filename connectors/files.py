"""Delivered files (CSV and Excel) read into text frames, exactly as the partner wrote them.

Each file is read once: its bytes are hashed and then parsed from memory, so the fingerprint and
the rows always describe the same content even if the partner overwrites the file meanwhile.
Values stay text (leading zeros survive); blank cells become NA. Anything that makes the file as a
whole untrustworthy (undecodable bytes, a row with the wrong number of fields, a broken header)
raises ``DeliveryError`` naming the file and the line or column, never a value.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import os
import re
from collections import Counter
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import python_calamine

from connectors.deliveries import Delivery, DeliveryError, text_column, text_value
from settings.region import CsvFormat, FileLocation, XlsxFormat

DELIMITERS = (";", ",", "\t", "|")
ROW_COLUMN = "delivery_row"
HEADER_SCAN_ROWS = 100


def read_file_delivery(path: Path, fmt: CsvFormat | XlsxFormat, *, name: str) -> Delivery:
    """Read one delivered file; ``name`` is how messages and provenance refer to it."""
    with open(path, "rb") as handle:
        data = handle.read()
        mtime = dt.datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, dt.UTC)
    frame = _read_csv(data, fmt, name) if isinstance(fmt, CsvFormat) else _read_xlsx(data, fmt, name)
    return Delivery(
        name=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        modified_at=mtime.isoformat(timespec="seconds"),
        frame=frame,
    )


class SourceFiles(dg.ConfigurableResource):
    """The folder where partners drop their files; every file matching a source's glob is one delivery.

    Hidden files (``.name``: uploads in progress) and Excel lock files (``~$name``) are not
    deliveries and are skipped.
    """

    root: str

    def read(self, location: FileLocation) -> list[Delivery]:
        root = Path(self.root)
        paths = sorted(
            p for p in root.glob(location.path) if p.is_file() and not p.name.startswith((".", "~$"))
        )
        if not paths:
            raise DeliveryError(f"no file matches {location.path!r} in {root}")
        return [read_file_delivery(p, location.format, name=p.relative_to(root).as_posix()) for p in paths]


# --- CSV ------------------------------------------------------------------------------------------


def _read_csv(data: bytes, fmt: CsvFormat, name: str) -> pd.DataFrame:
    """Parse with pyarrow (multi-threaded: a million rows in about a second) into text columns."""
    utf8 = _as_utf8(data, fmt.encoding, name)
    if not utf8.strip():
        raise DeliveryError(f"{name}: the file is empty (not even a header line)")
    header_line = utf8.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8")
    if not header_line.strip():
        raise DeliveryError(f"{name}: line 1 is blank; the header must be the first line")
    delimiter = fmt.delimiter or _sniff_delimiter(header_line, fmt.quotechar)
    header = next(csv.reader([header_line], delimiter=delimiter, quotechar=fmt.quotechar))
    table = _parse_csv(utf8, header, delimiter, fmt.quotechar, name)
    columns = [_clean_text(column) for column in table.columns]
    frame = pa.table(columns, names=[str(i) for i in range(len(columns))]).to_pandas()
    return _named(frame, header, np.arange(1, len(frame) + 1), name)


def _as_utf8(data: bytes, encoding: str, name: str) -> bytes:
    """The file's text as UTF-8 bytes (what pyarrow parses), checking every byte on the way.

    ``auto``: a byte-order mark says UTF-8 or UTF-16 (Excel's "Unicode text"); text that decodes
    as UTF-8 is UTF-8; anything else is taken to be Windows-1252, the default of Dutch Excel and
    most LAS exports. A byte-order mark also overrides a configured encoding: it cannot start a
    cp1252 header line.
    """
    if data.startswith(codecs.BOM_UTF8):
        encoding, data = "utf-8", data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif encoding == "auto":
        encoding = "utf-8" if _decodes(data, "utf-8") else "cp1252"
    encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DeliveryError(
            f"{name}: line {line} has bytes that are not valid {encoding} "
            f"(set the source's format.encoding to the file's real encoding)"
        ) from None
    return data if encoding == "utf-8" else text.encode("utf-8")


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _sniff_delimiter(header_line: str, quotechar: str) -> str:
    """The candidate delimiter that occurs most often in the header, outside quoted names."""
    unquoted = re.sub(f"{re.escape(quotechar)}[^{re.escape(quotechar)}]*{re.escape(quotechar)}", "", header_line)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    return max(DELIMITERS, key=lambda d: counts[d])


def _parse_csv(utf8: bytes, header: list[str], delimiter: str, quotechar: str, name: str) -> pa.Table:
    """Every data record as strings; a record with the wrong number of fields rejects the file."""

    def parse(use_threads: bool) -> tuple[pa.Table, list[pa_csv.InvalidRow]]:
        bad: list[pa_csv.InvalidRow] = []

        def skip(row: pa_csv.InvalidRow) -> str:
            # Record and skip, never "error": pyarrow's own message quotes the row's values.
            bad.append(row)
            return "skip"

        table = pa_csv.read_csv(
            io.BytesIO(utf8),
            read_options=pa_csv.ReadOptions(
                column_names=[str(i) for i in range(len(header))], skip_rows=1, use_threads=use_threads
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                quote_char=quotechar,
                newlines_in_values=True,
                invalid_row_handler=skip,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={str(i): pa.string() for i in range(len(header))}, strings_can_be_null=False
            ),
        )
        return table, bad

    if not utf8.endswith(b"\n"):
        utf8 += b"\n"  # pyarrow cannot skip a header line that has no end
    try:
        table, bad = parse(use_threads=True)
    except pa.ArrowInvalid:
        # Its messages can quote the data; the likely cause is a quote that swallows the rest of the file.
        _check_quotes(utf8, delimiter, quotechar, name)
        raise DeliveryError(f"{name}: cannot be parsed as CSV with delimiter {delimiter!r}") from None
    if bad:
        # Threads do not know line numbers; the failure path re-reads single-threaded to find it.
        _, bad = parse(use_threads=False)
        row = bad[0]
        # pyarrow counts records from the top of the file; that is the line unless a quoted value spans lines.
        raise DeliveryError(
            f"{name}: line {row.number} has {row.actual_columns} fields where the header has "
            f"{row.expected_columns} (a truncated file, or a delimiter inside an unquoted value)"
        )
    if any(pc.any(pc.match_substring(column, "\n")).as_py() for column in table.columns):
        _check_quotes(utf8, delimiter, quotechar, name)
    return table


def _check_quotes(utf8: bytes, delimiter: str, quotechar: str, name: str) -> None:
    """Reject a quote that is never closed: it turns every following line into part of one value.

    Only run when a value spans lines (rare, and legitimate for multi-line notes); Python's csv
    module in strict mode then says where the offending record starts.
    """
    text = io.StringIO(utf8.decode("utf-8"), newline="")
    reader = csv.reader(text, delimiter=delimiter, quotechar=quotechar, strict=True)
    line = 1
    try:
        for _ in reader:
            line = reader.line_num + 1
    except csv.Error:
        raise DeliveryError(f"{name}: line {line} starts a record whose quoted value is not closed properly") from None


def _clean_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    stripped = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)


# --- Excel ----------------------------------------------------------------------------------------


def _read_xlsx(data: bytes, fmt: XlsxFormat, name: str) -> pd.DataFrame:
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except python_calamine.CalamineError as error:
        raise DeliveryError(f"{name}: not a readable Excel workbook ({type(error).__name__})") from None
    sheet = fmt.sheet or workbook.sheet_names[0]
    if sheet not in workbook.sheet_names:
        raise DeliveryError(f"{name}: no sheet named {sheet!r}; the workbook has {workbook.sheet_names}")
    # skip_empty_area=False: row index + 1 is the Excel row number a steward sees.
    cells = workbook.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    header_index = fmt.skip_rows if fmt.skip_rows is not None else _detect_header(cells, name, sheet)
    if header_index >= len(cells):
        raise DeliveryError(f"{name}: skip_rows={header_index}, but sheet {sheet!r} has only {len(cells)} rows")
    body = cells[header_index + 1 :]
    frame = pd.DataFrame(
        {str(i): text_column([row[i] for row in body]) for i in range(len(cells[0]))},
        index=range(len(body)),
    )
    header = [text_value(cell) or "" for cell in cells[header_index]]
    return _named(frame, header, np.arange(1, len(body) + 1), name)


def _detect_header(cells: list[list[object]], name: str, sheet: str) -> int:
    """The first row that looks like column names: mostly text, at least half as wide as the widest row.

    Partners put a title block (name, peildatum, a blank line) above the table; those rows are
    narrow, and data rows hold numbers and dates, so the header is the first wide row of words.
    Only the top of the sheet is looked at: a header lower down is a job for ``skip_rows``.
    """
    filled = [[v for v in row if text_value(v) is not None] for row in cells[:HEADER_SCAN_ROWS]]
    widest = max((len(values) for values in filled), default=0)
    if widest == 0:
        raise DeliveryError(f"{name}: sheet {sheet!r} is empty")
    for index, values in enumerate(filled):
        texts = sum(isinstance(v, str) for v in values)
        if len(values) * 2 >= widest and texts * 2 > len(values):
            return index
    raise DeliveryError(f"{name}: no header row found in sheet {sheet!r}; set skip_rows in the source's format")


# --- shared ---------------------------------------------------------------------------------------


def _named(frame: pd.DataFrame, header: list[str], rows: np.ndarray, name: str) -> pd.DataFrame:
    """Give positional columns their delivered names and number the rows; reject a broken header.

    A column without a name is dropped when it holds nothing (a trailing ';' or a formatted Excel
    column) and rejects the file when it holds values nobody can map. Rows in which every cell is
    blank are dropped; the others keep their number in the delivery. Messages give positions, not
    names: if the header line is missing, the 'names' are somebody's data.
    """
    names = [h.strip() for h in header]
    positions = [i for i, n in enumerate(names) if n]
    counts = Counter(names)
    duplicates = [i + 1 for i in positions if counts[names[i]] > 1]
    if duplicates:
        raise DeliveryError(f"{name}: header columns {duplicates} have the same name; names must be unique")
    if ROW_COLUMN in names:
        position = names.index(ROW_COLUMN) + 1
        raise DeliveryError(f"{name}: header column {position} uses the reserved name {ROW_COLUMN!r}")
    for i, n in enumerate(names):
        if not n and frame.iloc[:, i].notna().any():
            raise DeliveryError(f"{name}: column {i + 1} holds values but has no name in the header")
    named = frame.iloc[:, positions].set_axis([names[i] for i in positions], axis=1)
    named[ROW_COLUMN] = rows
    return named.loc[named.drop(columns=ROW_COLUMN).notna().any(axis=1)].reset_index(drop=True)
