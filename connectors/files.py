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
import zipfile
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
    """Read one delivered file; ``name`` is how messages and provenance refer to it.

    Whatever goes wrong while reading is a ``DeliveryError`` about this file: an error the readers do
    not foresee is reported by its class only (its text could quote delivered values).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
            mtime = dt.datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, dt.UTC)
    except OSError as error:
        raise DeliveryError(f"{name}: cannot be opened ({error.strerror})", delivery=name) from None
    flags = None
    try:
        if isinstance(fmt, CsvFormat):
            frame = _read_csv(data, fmt, name)
        else:
            frame, flags = _read_xlsx(data, fmt, name)
    except DeliveryError as error:
        raise DeliveryError(str(error), delivery=name) from None
    except Exception as error:  # noqa: BLE001 - one unreadable file must never stop the night
        raise DeliveryError(f"{name}: cannot be read ({type(error).__name__} in the reader; the file is "
                            "held back, please report it with the file)", delivery=name) from None
    return Delivery(
        name=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        modified_at=mtime.isoformat(timespec="seconds"),
        frame=frame,
        cell_flags=flags,
    )


class SourceFiles(dg.ConfigurableResource):
    """The folder where partners drop their files; every file matching a source's glob is one delivery.

    Hidden files (``.name``: uploads in progress) and Excel lock files (``~$name``) are not
    deliveries and are skipped.
    """

    root: str

    def read(self, location: FileLocation) -> list[Delivery]:
        """Every delivery; the first that cannot be read raises (``read_each`` keeps going)."""
        results = self.read_each(location)
        for result in results:
            if isinstance(result, DeliveryError):
                raise result
        return results

    def read_each(self, location: FileLocation) -> list[Delivery | DeliveryError]:
        """Every matching file, read on its own: one bad file is a rejection of that file only.

        Raises ``DeliveryError`` when no file matches at all.
        """
        root = Path(self.root)
        paths = sorted(
            p for p in root.glob(location.path) if p.is_file() and not p.name.startswith((".", "~$"))
        )
        if not paths:
            raise DeliveryError(f"no file matches {location.path!r} in {root}")
        results: list[Delivery | DeliveryError] = []
        for path in paths:
            try:
                results.append(read_file_delivery(path, location.format, name=path.relative_to(root).as_posix()))
            except DeliveryError as error:
                results.append(error)
        return results


# --- CSV ------------------------------------------------------------------------------------------


def _read_csv(data: bytes, fmt: CsvFormat, name: str) -> pd.DataFrame:
    """Parse with pyarrow (multi-threaded) into text columns."""
    _not_text(data, name, "CSV")
    utf8 = _as_utf8(data, fmt.encoding, name)
    if not utf8.strip():
        raise DeliveryError(f"{name}: the file is empty (not even a header line)")
    header_line = re.split(rb"\r\n|\r|\n", utf8, maxsplit=1)[0].decode("utf-8")  # CR alone: old Mac files
    if not header_line.strip():
        raise DeliveryError(f"{name}: line 1 is blank; the header must be the first line")
    delimiter = fmt.delimiter or _sniff_delimiter(header_line, fmt.quotechar)
    try:
        header = next(csv.reader([header_line], delimiter=delimiter, quotechar=fmt.quotechar, strict=True))
    except csv.Error:
        raise DeliveryError(f"{name}: line 1 (the header) has a quote that is not closed properly") from None
    # A byte-order mark inside the header (files joined together) is invisible and never part of a name;
    # in a Windows-1252 file it reads as 'ï»¿'.
    header = [column.replace("\ufeff", "").replace("ï»¿", "") for column in header]
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
    elif utf16 := _utf16_without_bom(data):
        encoding = utf16
    elif encoding == "auto":
        encoding = "utf-8" if _decodes(data, "utf-8") else "cp1252"
    encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = len(re.findall(rb"\r\n|\r|\n", data[: error.start])) + 1
        raise DeliveryError(
            f"{name}: line {line} has bytes that are not valid {encoding} "
            f"(set the source's format.encoding to the file's real encoding)"
        ) from None
    return data if encoding == "utf-8" else text.encode("utf-8")


_MAGIC = {
    b"PK\x03\x04": "a ZIP archive or an Excel workbook (.xlsx)",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "an old Excel workbook (.xls) or a password-protected Office file",
    b"\x1f\x8b": "a gzip-compressed file",
    b"%PDF": "a PDF document",
}


def _not_text(data: bytes, name: str, expected: str) -> None:
    """Reject a file that is recognisably something else than ``expected`` (by its first bytes)."""
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise DeliveryError(f"{name}: the file is {what}, not {expected}; ask the partner for the {expected} "
                                "export (or change the source's format.type)")


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' for text saved as UTF-16 without a byte-order mark, else None.

    Such text has a zero byte beside every Latin character: at odd positions (little-endian) or at
    even ones (big-endian). Text in any 8-bit encoding has no zero bytes at all.
    """
    head = data[:4096]
    if len(head) < 4 or b"\x00" not in head:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


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
        # A quote that is never closed swallows the line breaks after it: say that, not "too few fields".
        _check_quotes(utf8, delimiter, quotechar, name)
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


_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")  # the stream an encrypted Office file keeps its workbook in


def _open_workbook(data: bytes, name: str) -> python_calamine.CalamineWorkbook:
    """The workbook, or a ``DeliveryError`` that says in words why it cannot be opened."""
    if not data:
        raise DeliveryError(f"{name}: the file is empty (0 bytes)")
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") and _ENCRYPTED in data:
        raise DeliveryError(f"{name}: the workbook is password-protected; ask the partner to deliver it without "
                            "a password (over a secure channel)")
    try:
        return python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except python_calamine.PasswordError:
        raise DeliveryError(f"{name}: the workbook is password-protected; ask the partner to deliver it "
                            "without a password (over a secure channel)") from None
    except python_calamine.CalamineError as error:
        if data.startswith(b"PK\x03\x04"):
            cause = "the workbook is damaged or incomplete (was it still being uploaded?)"
        elif _decodes(data[:4096], "utf-8") or _decodes(data[:4096], "cp1252"):
            cause = "the file is text (CSV?), not an Excel workbook; ask for the .xlsx or set format.type: csv"
        else:
            cause = "the file is not an Excel workbook"
        raise DeliveryError(f"{name}: {cause} ({type(error).__name__})") from None


def _sheet_rows(workbook: python_calamine.CalamineWorkbook, sheet: str) -> list[list[object]]:
    return workbook.get_sheet_by_name(sheet).to_python(skip_empty_area=False)


def _read_sheet(workbook: python_calamine.CalamineWorkbook, sheet: str, name: str):
    """The sheet and its rows; a sheet whose XML is damaged is a ``DeliveryError`` that says so."""
    try:
        calamine_sheet = workbook.get_sheet_by_name(sheet)
        return calamine_sheet, calamine_sheet.to_python(skip_empty_area=False)
    except python_calamine.CalamineError as error:
        raise DeliveryError(f"{name}: sheet {sheet!r} is damaged and cannot be read ({type(error).__name__}); "
                            "ask the partner to save the workbook again") from None


def _other_sheets_with_data(workbook: python_calamine.CalamineWorkbook, sheet: str | None) -> str:
    """A hint naming the sheets (other than ``sheet``) that hold values: the data may be there."""
    filled = []
    for other in workbook.sheet_names:
        if other != sheet:
            try:
                rows = [row for row in _sheet_rows(workbook, other) if any(text_value(v) is not None for v in row)]
            except python_calamine.CalamineError:  # a damaged sheet: no hint from it
                continue
            if rows:
                filled.append(f"{other!r} ({len(rows)} rows)")
    if not filled:
        return ""
    return f"; sheets with data: {', '.join(filled)} (set format.sheet to the sheet the partner fills)"


def _read_xlsx(data: bytes, fmt: XlsxFormat, name: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The sheet's rows as text, and the cells whose value cannot be trusted (``Delivery.cell_flags``)."""
    _not_a_workbook(data, name)
    workbook = _open_workbook(data, name)
    sheet = fmt.sheet or workbook.sheet_names[0]
    if sheet not in workbook.sheet_names:
        raise DeliveryError(f"{name}: no sheet named {sheet!r}; the workbook has {workbook.sheet_names}"
                            + _other_sheets_with_data(workbook, None))
    # skip_empty_area=False: row index + 1 is the Excel row number a steward sees.
    calamine_sheet, cells = _read_sheet(workbook, sheet, name)
    if not any(text_value(v) is not None for row in cells[:HEADER_SCAN_ROWS] for v in row):
        raise DeliveryError(f"{name}: sheet {sheet!r} is empty" + _other_sheets_with_data(workbook, sheet))
    header_index = fmt.skip_rows if fmt.skip_rows is not None else _detect_header(cells, name, sheet)
    if header_index >= len(cells):
        raise DeliveryError(f"{name}: skip_rows={header_index}, but sheet {sheet!r} has only {len(cells)} rows")
    body = cells[header_index + 1 :]
    frame = pd.DataFrame(
        {str(i): text_column([row[i] for row in body]) for i in range(len(cells[0]))},
        index=range(len(body)),
    )
    header = [text_value(cell) or "" for cell in cells[header_index]]
    flags = _untrusted_cells(data, workbook, calamine_sheet, sheet, header, header_index, len(body))
    return _named(frame, header, np.arange(1, len(body) + 1), name), flags


def _not_a_workbook(data: bytes, name: str) -> None:
    if data.startswith((b"\x1f\x8b", b"%PDF")):
        _not_text(data, name, "an Excel workbook")


def _untrusted_cells(data: bytes, workbook, calamine_sheet, sheet: str, header: list[str], header_index: int,
                     n_rows: int) -> pd.DataFrame | None:
    """Data cells whose delivered value is not what the sheet shows: covered by a merged range (only its
    first cell holds the value) or a formula saved without its computed value (read as empty)."""
    found: list[tuple[int, int, str]] = []  # (0-based sheet row, 0-based column, rule)
    for (top, left), (bottom, right) in calamine_sheet.merged_cell_ranges or []:
        for row in range(top, bottom + 1):
            for column in range(left, right + 1):
                if (row, column) != (top, left):
                    found.append((row, column, "excel_merged_cell"))
    found += [(row, column, "excel_formula") for row, column in _formulas_without_value(data, workbook, sheet)]
    rows = [(row - header_index, column, rule) for row, column, rule in found
            if header_index < row <= header_index + n_rows and column < len(header) and header[column].strip()]
    if not rows:
        return None
    return pd.DataFrame({
        "delivery_row": [row for row, _, _ in rows],
        "column": [header[column].strip() for _, column, _ in rows],
        "rule": [rule for _, _, rule in rows],
        "cell": [f"{_column_letters(column)}{row + header_index + 1}" for row, column, _ in rows],
    }).drop_duplicates(["delivery_row", "column"]).reset_index(drop=True)


def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - 64
    return index - 1


_FORMULA_CELL = re.compile(rb'<c r="([A-Z]+)(\d+)"[^>]*?(?:/>|>((?:(?!</c>).)*)</c>)', re.S)


def _formulas_without_value(data: bytes, workbook, sheet: str) -> list[tuple[int, int]]:
    """(row, column), 0-based, of the sheet's formula cells that carry no computed value.

    calamine reads the computed value Excel saved with a formula; a workbook written by a program
    that does not compute formulas has none, and the cell reads as empty. Only an .xlsx holds the
    formulas as XML; the sheet's part is found through the workbook's relationships.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            part = _sheet_part(package, workbook.sheet_names.index(sheet), sheet)
            if part is None:
                return []
            xml = package.read(part)
    except (zipfile.BadZipFile, KeyError):
        return []
    if b"<f" not in xml:
        return []
    cells = []
    for match in _FORMULA_CELL.finditer(xml):
        inner = match.group(3) or b""
        if b"<f" in inner and b"<v>" not in inner and b"<is>" not in inner:
            cells.append((int(match.group(2)) - 1, _column_index(match.group(1).decode())))
    return cells


def _sheet_part(package: zipfile.ZipFile, position: int, sheet: str) -> str | None:
    """The zip member of a sheet, from xl/workbook.xml and its relationships."""
    names = set(package.namelist())
    if "xl/workbook.xml" not in names or "xl/_rels/workbook.xml.rels" not in names:
        return None
    workbook = package.read("xl/workbook.xml").decode("utf-8", "replace")
    rels = package.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    ids = re.findall(r'<(?:\w+:)?sheet\b[^>]*?r:id="([^"]+)"', workbook)
    if position >= len(ids):
        return None
    target = re.search(rf'<Relationship\b[^>]*?Id="{re.escape(ids[position])}"[^>]*?Target="([^"]+)"', rels) or \
        re.search(rf'<Relationship\b[^>]*?Target="([^"]+)"[^>]*?Id="{re.escape(ids[position])}"', rels)
    if target is None:
        return None
    path = target.group(1).lstrip("/")
    return path if path.startswith("xl/") else f"xl/{path}"


def _detect_header(cells: list[list[object]], name: str, sheet: str) -> int:
    """The first row that looks like column names: mostly text, at least half as wide as the widest row.

    Partners put a title block (name, peildatum, a blank line) above the table; those rows are
    narrow, and data rows hold numbers and dates, so the header is the first wide row of words.
    Only the top of the sheet is looked at: a header lower down is a job for ``skip_rows``.
    """
    filled = [[v for v in row if text_value(v) is not None] for row in cells[:HEADER_SCAN_ROWS]]
    widest = max(len(values) for values in filled)
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
