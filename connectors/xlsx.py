"""XLSX workbooks written a column at a time: one sheet, bold frozen header, filters, widths, dates.

Why not xlsxwriter: it formats every cell in Python (a call and a few string operations per cell),
which made writing the national-scale handovers and monitoring tables (some 20 million cells) take
over a minute, the largest cost of the night (bench/results.md). Here each column becomes its cells'
XML in a handful of Arrow string kernels, and a row is the concatenation of its cells; the Python
work is per column and per block of rows, not per cell.

What is written is deliberately small and the same as xlsxwriter wrote before (the test suite
reads it back with openpyxl and python-calamine):

- text as shared strings (each distinct text once in ``xl/sharedStrings.xml``, as Excel writes it),
  escaped for XML, never interpreted: no formulas, numbers or links from text; the header row's
  names as inline strings;
- numbers as numbers, dates and timestamps as serial numbers with the ``dd-mm-yyyy`` format;
  missing values as absent cells;
- in object columns (the published aggregates mix counts and ``"<5"``) each cell by its own type;
- a fixed creation time and fixed zip timestamps, so the same rows give the same bytes;
- every part compressed with ISA-L's DEFLATE (``isal``), several times as fast as zlib's;
- a print setup, so the sheet prints as a reader expects: A4 landscape, fitted to the page width
  (``Print``), the header row repeated on every page, grid lines, an optional title and
  "Pagina x van y" on every page; long or multi-line text wraps in a column of at most ``MAX_WIDTH``
  characters instead of being cut off at the column edge (the header wraps too, so a long header does
  not widen its column). A table too wide to read on one page is fitted to as few pages across as
  keep the text at least ``MIN_PRINT_SCALE`` of its size, printed across before down, with columns
  that say whose row it is (e.g. the pupil's name) repeated on each of them.

Excel's limits: more than 1,048,576 rows or 16,384 columns is refused with an error (the CSV and
Parquet files hold every row); a text longer than 32,767 characters, Excel's limit per cell, is cut
there and ends in a visible mark saying so (``cut_mark``; the CSV keeps it whole). ``overlong_cells``
counts such texts, for the steward's flag.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import numbers
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from queue import Full, Queue
from threading import Event, Thread

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from isal import isal_zlib

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
BLOCK_ROWS = 50_000  # rows rendered at once: bounds the memory of the XML text
MAX_WIDTH = 32  # characters; longer text of several words wraps within the column
MAX_TOKEN_WIDTH = 66  # a column of single long words (a 64-character pseudonym) is as wide as they are, up to this
MIN_WIDTH = 6
LINE_HEIGHT = 15  # points per line of the default font: a row with wrapped text gets a line per line
# Column-width units (a digit of the default font) across A4 landscape within the margins, at 100 %, and
# the smallest scale a printed page may shrink to before the table is spread over more pages across.
PAGE_WIDTH_UNITS = 150
MIN_PRINT_SCALE = 0.6
MAX_CELL_CHARACTERS = 32_767  # Excel's limit per cell; longer text is cut and marked (the CSV keeps all of it)

_STYLE_HEADER = 1
_STYLE_DATE = 2
_STYLE_WRAP = 3
_STYLE_TOP = 4  # every other cell: some viewers show the default style bottom-aligned whatever it says
_EXCEL_EPOCH = np.datetime64("1899-12-30T00:00:00", "ns")
_NS_PER_DAY = 86_400 * 10**9
# Characters XML 1.0 does not allow; Excel reads them back from the _xHHHH_ escape (as xlsxwriter writes them).
_CONTROL = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"]
_CONTROL_CLASS = "[\x00-\x08\x0b\x0c\x0e-\x1f]"
_NEEDS_ESCAPING = "[&<>\x00-\x08\x0b\x0c\x0e-\x1f]"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

_CONTENT_TYPES = _XML + (
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/docProps/app.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
    '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
_ROOT_RELS = _XML + (
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/'
    'core-properties" Target="docProps/core.xml"/>'
    f'<Relationship Id="rId3" Type="{_REL}/extended-properties" Target="docProps/app.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = _XML + (
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL}/styles" Target="styles.xml"/>'
    f'<Relationship Id="rId3" Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)
_FONT = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
_STYLES = _XML + (
    f'<styleSheet xmlns="{_MAIN}">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="dd-mm-yyyy"/></numFmts>'
    f'<fonts count="2"><font>{_FONT}</font><font><b/>{_FONT}</font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    "</fills>"
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    # Every cell top-aligned, so a row with a wrapped cell still reads across; header bold and wrapped.
    '<cellXfs count="5">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" applyAlignment="1"><alignment vertical="top"/></xf>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1" applyAlignment="1">'
    '<alignment vertical="top" wrapText="1"/></xf>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1" applyAlignment="1">'
    '<alignment vertical="top"/></xf>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" applyAlignment="1">'
    '<alignment vertical="top" wrapText="1"/></xf>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" applyAlignment="1"><alignment vertical="top"/></xf>'
    '</cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '<dxfs count="0"/><tableStyles count="0"/></styleSheet>'
)
_CORE = _XML + (
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:dcmitype="http://purl.org/dc/dcmitype/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    '<dcterms:created xsi:type="dcterms:W3CDTF">2000-01-01T00:00:00Z</dcterms:created>'
    '<dcterms:modified xsi:type="dcterms:W3CDTF">2000-01-01T00:00:00Z</dcterms:modified></cp:coreProperties>'
)


def _escape(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    for char in _CONTROL:
        text = text.replace(char, f"_x{ord(char):04X}_")
    return text


def _escape_array(text: pa.Array) -> pa.Array:
    """XML text of every value. One scan finds whether any needs it (most texts of the night are
    codes, digits and hex pseudonyms that need nothing)."""
    if not pc.any(pc.match_substring_regex(text, _NEEDS_ESCAPING)).as_py():
        return text
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        if pc.any(pc.match_substring(text, char)).as_py():
            text = pc.replace_substring(text, char, entity)
    if pc.any(pc.match_substring_regex(text, _CONTROL_CLASS)).as_py():
        for char in _CONTROL:
            text = pc.replace_substring(text, char, f"_x{ord(char):04X}_")
    return text


def cut_mark(length: int) -> str:
    """What ends a text cut at Excel's limit, so the reader sees it is not whole and where it is."""
    def dutch(number: int) -> str:
        return f"{number:,}".replace(",", ".")

    return (f" [… afgekapt: de tekst heeft {dutch(length)} tekens, een Excel-cel er {dutch(MAX_CELL_CHARACTERS)}; "
            "volledig in het CSV-bestand]")


def _cut(text: pa.Array) -> pa.Array:
    """Text longer than Excel's cell limit cut and marked (``cut_mark``); bytes ≥ characters, so the
    byte length is a cheap first test."""
    longest = pc.max(pc.binary_length(text)).as_py() or 0
    if longest <= MAX_CELL_CHARACTERS:
        return text
    lengths = pc.utf8_length(text)
    too_long = pc.fill_null(pc.greater(lengths, MAX_CELL_CHARACTERS), False)
    if not pc.any(too_long).as_py():
        return text
    values = text.to_pylist()
    for index in np.flatnonzero(too_long.to_numpy(zero_copy_only=False)):
        values[index] = _cut_text(values[index])
    return pa.array(values, type=text.type)


def _cut_text(value: str) -> str:
    mark = cut_mark(len(value))
    return value[: MAX_CELL_CHARACTERS - len(mark)] + mark


def overlong_cells(frame: pd.DataFrame) -> dict[str, int]:
    """Per column, the texts longer than an Excel cell holds (they are cut and marked in the workbook)."""
    counts = {}
    for name in frame.columns:
        series = frame[name]
        if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            continue
        text = pa.array(series.astype("str"), type=pa.large_string(), from_pandas=True)
        if (pc.max(pc.binary_length(text)).as_py() or 0) <= MAX_CELL_CHARACTERS:  # the usual case: one pass
            continue
        over = pc.sum(pc.greater(pc.utf8_length(text), MAX_CELL_CHARACTERS)).as_py() or 0
        if over:
            counts[str(name)] = int(over)
    return counts


def column_letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: the column part of a cell reference."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


# ---------------------------------------------------------------------------------------------
# One column as cells: each cell's value text and kind, then its XML for a block of rows


_TEXT, _NUMBER, _DATE = "text", "number", "date"
# What surrounds a cell's value, after ``<c r="B7``: text is an index into the shared strings.
_CELL_OPEN = {_TEXT: f'" s="{_STYLE_TOP}" t="s"><v>', _NUMBER: f'" s="{_STYLE_TOP}"><v>',
              _DATE: f'" s="{_STYLE_DATE}"><v>'}
_WRAPPED_OPEN = {**_CELL_OPEN, _TEXT: f'" s="{_STYLE_WRAP}" t="s"><v>'}
_CELL_CLOSE = "</v></c>"


class _Column:
    """A column's cells: the text of each cell's ``<v>`` (null = no cell) and whether it is text, number or date.

    A text cell's ``<v>`` is its string's index in the workbook's shared strings (``_share_strings``
    puts it there); until then ``values`` holds the text itself.
    """

    def __init__(self, series: pd.Series) -> None:
        self.values, self.kinds = _cells(series)
        self.kind = None if isinstance(self.kinds, pa.Array) else self.kinds
        self.wrap = False  # text of several words wider than MAX_WIDTH, or on several lines: wrapped (``refer``)
        self.lines: np.ndarray | None = None  # per cell, the lines its wrapped text takes (``_share_strings``)
        # Characters of the longest cell as written (an escaped ``&`` counts a few more): the column's
        # width. Text cells are measured among the shared strings (``refer``).
        self.longest = 0 if self.texts() is not None else (pc.max(pc.utf8_length(self.values)).as_py() or 0)

    def texts(self) -> pa.Array | None:
        """The text cells' values (null in other cells), or None when the column has no text cell."""
        if self.kind is not None:
            return self.values if self.kind == _TEXT else None
        is_text = pc.equal(self.kinds, _TEXT)
        return pc.if_else(is_text, self.values, pa.scalar(None, pa.string())) if pc.any(is_text).as_py() else None

    def refer(self, indices: pa.Array, longest: int, multiline: bool, words: bool) -> None:
        """Text cells hold their shared-string index from now on (``indices``: null in other cells)."""
        text = pc.cast(indices, pa.string())
        self.values = text if self.kind == _TEXT else pc.coalesce(text, self.values)
        self.longest = max(self.longest, longest)
        self.wrap = multiline or (words and self.longest > MAX_WIDTH)

    @property
    def width(self) -> int:
        """Characters of text the column shows on a line."""
        return MAX_WIDTH if self.wrap else min(self.longest, MAX_TOKEN_WIDTH)

    def xml(self, letter: str, rows: pa.Array, start: int, stop: int) -> list[pa.Array | str]:
        """The block's cells as pieces of its rows' concatenation (reference, row number, value, end); or,
        where some cells are absent or kinds differ, as one array with "" for each absent cell."""
        values = self.values.slice(start, stop - start)
        ref = f'<c r="{letter}'
        opening = _WRAPPED_OPEN if self.wrap else _CELL_OPEN
        if self.kind is not None:
            pieces = [ref, rows, opening[self.kind], values, _CELL_CLOSE]
            if values.null_count == 0:
                return pieces
            return [pc.fill_null(pc.binary_join_element_wise(*pieces, ""), "")]
        kinds = self.kinds.slice(start, stop - start)
        out = pa.nulls(len(values), pa.string())
        for kind in (_TEXT, _NUMBER, _DATE):
            mask = pc.equal(kinds, kind)
            if pc.any(mask).as_py():
                out = pc.if_else(mask, pc.binary_join_element_wise(ref, rows, opening[kind], values, _CELL_CLOSE, ""),
                                 out)
        return [pc.fill_null(out, "")]


def _share_strings(columns: list[_Column]) -> bytes:
    """The shared strings part (``xl/sharedStrings.xml``): every distinct text of the sheet once.

    What Excel itself writes. Against the text in every cell (inline strings) it makes the sheet
    several times smaller for the repeated codes, statuses and ja/nee of the night's tables, and
    only the distinct texts are escaped. Each column's text cells are pointed at their entries.
    """
    texts = [(column, column.texts()) for column in columns]
    texts = [(column, values) for column, values in texts if values is not None]
    cells = sum(len(values) - values.null_count for _, values in texts)
    distinct = pa.array([], pa.string())
    if texts:
        encoded = pc.dictionary_encode(pa.concat_arrays([values for _, values in texts]))
        distinct = _escape_array(encoded.dictionary)
        lengths = pc.utf8_length(distinct)
        breaks = pc.match_substring(distinct, "\n")
        spaces = pc.match_substring_regex(distinct, r"\S\s+\S")
        offset = 0
        for column, values in texts:
            indices = encoded.indices.slice(offset, len(values))
            offset += len(values)
            column.refer(indices, pc.max(pc.take(lengths, indices)).as_py() or 0,
                         bool(pc.any(pc.take(breaks, indices)).as_py()), bool(pc.any(pc.take(spaces, indices)).as_py()))
            if column.wrap:
                column.lines = _lines_per_cell(distinct, indices, column.width)
    head = f'{_XML}<sst xmlns="{_MAIN}" count="{cells}" uniqueCount="{len(distinct)}">'
    if not len(distinct):
        return (head + "</sst>").encode("utf-8")
    preserve = pc.match_substring_regex(distinct, r"^\s|\s$")
    items = pc.binary_join_element_wise(pc.if_else(preserve, '<si><t xml:space="preserve">', "<si><t>"), distinct,
                                        "</t></si>", "")
    return head.encode("utf-8") + bytes(_concatenated(items)) + b"</sst>"


def _lines_of(text: str, width: int) -> int:
    """Lines ``text`` takes when wrapped at spaces in a column ``width`` characters wide (a word longer than
    the column is broken where it reaches the edge)."""
    lines = 0
    for paragraph in text.split("\n"):
        lines += 1
        used = 0
        for word in paragraph.split():
            need = len(word) if used == 0 else used + 1 + len(word)
            if need <= width:
                used = need
                continue
            if used:
                lines += 1
            used = len(word)
            while used > width:
                lines += 1
                used -= width
    return lines


def _lines_per_cell(distinct: pa.Array, indices: pa.Array, width: int) -> np.ndarray:
    """Per cell, the lines of its text in a wrapped column (1 for an empty cell); each distinct text counted once."""
    used = pc.unique(indices.drop_null())
    counts = np.ones(len(distinct), dtype=np.int64)
    texts = pc.take(distinct, used).to_pylist()
    counts[used.to_numpy(zero_copy_only=False)] = [_lines_of(text, width) for text in texts]
    positions = indices.fill_null(0).to_numpy(zero_copy_only=False)
    return np.where(indices.is_null().to_numpy(zero_copy_only=False), 1, counts[positions])


def _arrow(series: pd.Series, type_: pa.DataType) -> pa.Array:
    values = pa.array(series, type=type_, from_pandas=True)
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def ja_nee(series: pd.Series) -> pa.Array:
    """A boolean column as a Dutch reader reads it: ja or nee; missing stays missing."""
    return pc.if_else(_arrow(series, pa.bool_()), "ja", "nee")


def _cells(series: pd.Series) -> tuple[pa.Array, pa.Array | str]:
    """(value texts, kind): one kind for a typed column, a kind per cell for an object column."""
    if pd.api.types.is_bool_dtype(series):
        return ja_nee(series), _TEXT
    if pd.api.types.is_datetime64_any_dtype(series):
        return _serials(series), _DATE
    if pd.api.types.is_integer_dtype(series):
        return pc.cast(_arrow(series, pa.int64()), pa.string()), _NUMBER
    if pd.api.types.is_numeric_dtype(series):
        return _number_text(series.to_numpy(dtype="float64", na_value=np.nan)), _NUMBER
    if series.dtype != object:
        return _cut(_arrow(series.astype("str"), pa.string())), _TEXT
    return _object_cells(series.to_numpy(dtype=object))


def _number_text(values: np.ndarray) -> pa.Array:
    finite = np.isfinite(values)
    as_int = finite & (values == np.round(values)) & (np.abs(values) < 2**53)
    text = pc.cast(pa.array(values, mask=~finite), pa.string())
    whole = pc.cast(pa.array(np.where(as_int, values, 0).astype(np.int64), mask=~as_int), pa.string())
    return pc.coalesce(whole, text)


def _serials(series: pd.Series) -> pa.Array:
    stamps = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) is not None else series
    nanos = stamps.to_numpy(dtype="datetime64[ns]")
    missing = np.isnat(nanos)
    offset = (nanos - _EXCEL_EPOCH).astype(np.int64)
    days = np.where(missing, 0, offset) / _NS_PER_DAY
    return _number_text(np.where(missing, np.nan, days))


def _object_cells(values: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Each cell by its own type: numbers stay numbers, ``"<5"`` stays text (aggregates)."""
    texts: list[str | None] = []
    kinds: list[str | None] = []
    for value in values:
        if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
            texts.append(None)
            kinds.append(None)
        elif isinstance(value, bool | np.bool_):
            texts.append("ja" if value else "nee")
            kinds.append(_TEXT)
        elif isinstance(value, numbers.Integral):
            texts.append(str(int(value)))
            kinds.append(_NUMBER)
        elif isinstance(value, numbers.Real):
            number = float(value)
            finite = number == number and abs(number) != float("inf")
            texts.append((str(int(number)) if number.is_integer() else repr(number)) if finite else None)
            kinds.append(_NUMBER if finite else None)
        elif isinstance(value, dt.date):
            days = (pd.Timestamp(value).tz_localize(None) - pd.Timestamp(_EXCEL_EPOCH)) / pd.Timedelta(days=1)
            texts.append(str(int(days)) if float(days).is_integer() else repr(float(days)))
            kinds.append(_DATE)
        else:
            text = str(value)
            texts.append(text if len(text) <= MAX_CELL_CHARACTERS else _cut_text(text))
            kinds.append(_TEXT)
    return pa.array(texts, type=pa.string()), pa.array(kinds, type=pa.string())


# ---------------------------------------------------------------------------------------------
# The sheet and the package


def _height(lines: int) -> str:
    """A row's ``ht``: viewers do not all size rows to wrapped text themselves, so it is written."""
    return f' ht="{lines * LINE_HEIGHT}" customHeight="1"' if lines > 1 else ""


def _header(columns: list[str], widths: list[float]) -> str:
    cells = []
    for index, name in enumerate(columns):
        space = ' xml:space="preserve"' if name != name.strip() else ""
        cells.append(f'<c r="{column_letters(index)}1" s="{_STYLE_HEADER}" t="inlineStr"><is><t{space}>'
                     f"{_escape(name)}</t></is></c>")
    lines = max((_lines_of(name, int(width) - 2) for name, width in zip(columns, widths)), default=1)
    return f'<row r="1"{_height(lines)}>{"".join(cells)}</row>'


def _row_heights(columns: list[_Column]) -> np.ndarray | None:
    """Per row the lines of its tallest wrapped cell; None when no column wraps."""
    wrapped = [column.lines for column in columns if column.lines is not None]
    return np.maximum.reduce(wrapped) if wrapped else None


def _row_blocks(columns: list[_Column], letters: list[str], n_rows: int) -> Iterator[memoryview]:
    lines = _row_heights(columns)
    for start in range(0, n_rows, BLOCK_ROWS):
        stop = min(n_rows, start + BLOCK_ROWS)
        rows = pc.cast(pa.array(np.arange(start + 2, stop + 2, dtype=np.int64)), pa.string())
        cells = [piece for column, letter in zip(columns, letters) for piece in column.xml(letter, rows, start, stop)]
        heights = ""
        if lines is not None:
            block = lines[start:stop]
            points = pc.cast(pa.array(block * LINE_HEIGHT), pa.string())
            heights = pc.if_else(pa.array(block > 1), pc.binary_join_element_wise('" ht="', points,
                                                                                '" customHeight="1', ""), "")
        joined = pc.binary_join_element_wise('<row r="', rows, heights, '">', *cells, "</row>", "")
        yield _concatenated(joined)


def _concatenated(strings: pa.Array) -> memoryview:
    """The values of a string array back to back: its data buffer, without a copy per value."""
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(strings.buffers()[1], dtype=width, count=len(strings) + 1,
                            offset=strings.offset * np.dtype(width).itemsize)
    return memoryview(strings.buffers()[2])[offsets[0]:offsets[-1]]


def _ahead(parts: Iterator[bytes | memoryview], depth: int = 2) -> Iterator[bytes | memoryview]:
    """``parts`` rendered in a helper thread, at most ``depth`` ahead of the consumer.

    Rendering (Arrow string kernels) and compressing (zlib) both release the GIL, so the sheet's
    next rows are built while the previous ones are compressed: two cores instead of one. A failure
    in the helper is raised to the consumer; a consumer that stops early stops the helper too.
    """
    queue: Queue = Queue(maxsize=depth)
    stopped = Event()
    done = object()

    def offer(item: object) -> bool:
        while not stopped.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for part in parts:
                if not offer(part):
                    return
            offer(done)
        except BaseException as error:  # handed to the consumer, raised there
            offer(error)

    Thread(target=produce, name="xlsx-rows", daemon=True).start()
    try:
        while (part := queue.get()) is not done:
            if isinstance(part, BaseException):
                raise part
            yield part
    finally:
        stopped.set()


def _width(name: str, column: _Column | None) -> float:
    """Characters a column needs: its longest cell (wrapped text: ``MAX_WIDTH``) and the longest word
    of its header (the header wraps at spaces)."""
    shown = column.width if column is not None else 0
    is_date = column is not None and column.kind == _DATE
    word = max((len(part) for part in name.split()), default=0)
    width = max(MIN_WIDTH, min(word, MAX_WIDTH), shown, 10 if is_date else 0)
    return width + 2 + 0.7109375


@dataclass(frozen=True)
class Print:
    """How the sheet prints: ``title`` on every page, and the columns (a contiguous run, by name) repeated at the
    left of every page when the table is spread over several pages across (``repeat``)."""

    title: str | None = None
    repeat: tuple[str, ...] = ()

    def repeated(self, names: list[str]) -> tuple[int, int] | None:
        """First and last position of the repeated columns among ``names``; None when there are none."""
        positions = sorted(names.index(name) for name in self.repeat if name in names)
        if not positions:
            return None
        if positions != list(range(positions[0], positions[-1] + 1)):
            raise ValueError(f"columns repeated on every printed page must stand side by side: {self.repeat}")
        return positions[0], positions[-1]

    def pages_across(self, widths: list[float], names: list[str]) -> int:
        """Pages across that keep the print at ``MIN_PRINT_SCALE`` or more (1: fitted to one page wide)."""
        per_page = PAGE_WIDTH_UNITS / MIN_PRINT_SCALE
        total = sum(widths)
        if total <= per_page:
            return 1
        span = self.repeated(names)
        repeated = sum(widths[span[0]:span[1] + 1]) if span else 0.0
        return max(1, math.ceil((total - repeated) / max(per_page - repeated, per_page / 2)))

    def xml(self, widths: list[float], names: list[str]) -> str:
        """Grid lines, margins, A4 landscape fitted to the page width, the title and page numbers."""
        header = ""
        if self.title:
            # Excel reads "&" as the start of a header code: a literal one is written twice.
            text = '&L&"-,Bold"' + self.title.replace("&", "&&")
            header = f"<oddHeader>{_escape(text)}</oddHeader>"
        footer = f'<oddFooter>{_escape("&RPagina &P van &N")}</oddFooter>'
        return ('<printOptions gridLines="1"/>'
                '<pageMargins left="0.4" right="0.4" top="0.6" bottom="0.6" header="0.3" footer="0.3"/>'
                f'<pageSetup paperSize="9" orientation="landscape" pageOrder="overThenDown" '
                f'fitToWidth="{self.pages_across(widths, names)}" fitToHeight="0"/>'
                f"<headerFooter>{header}{footer}</headerFooter>")


def _sheet_xml_parts(names: list[str], columns: list[_Column], n_rows: int,
                     printing: Print = Print()) -> Iterator[bytes | memoryview]:
    """The sheet's XML in parts: head (print fit, widths, frozen header), blocks of rows, tail (filter, print setup)."""
    letters = [column_letters(i) for i in range(len(names))]
    last = f"{letters[-1]}{n_rows + 1}" if names else "A1"
    units = [_width(name, columns[index] if columns else None) for index, name in enumerate(names)]
    widths = [f'<col min="{index + 1}" max="{index + 1}" width="{width}" customWidth="1"/>'
              for index, width in enumerate(units)]
    head = (
        f'{_XML}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}"><sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>'
        f'<dimension ref="A1:{last}"/>'
        '<sheetViews><sheetView tabSelected="1" workbookViewId="0">'
        '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft"/></sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>'
        + (f"<cols>{''.join(widths)}</cols>" if widths else "")
        + "<sheetData>" + (_header(names, units) if names else "")
    )
    yield head.encode("utf-8")
    if columns:
        yield from _row_blocks(columns, letters, n_rows)
    tail = "</sheetData>"
    if names:
        tail += f'<autoFilter ref="A1:{letters[-1]}{max(2, n_rows + 1)}"/>'
    tail += printing.xml(units, names) + "</worksheet>"
    yield tail.encode("utf-8")


def _workbook_xml(sheet: str, frame: pd.DataFrame, printing: Print = Print()) -> str:
    quoted = "'" + sheet.replace("'", "''") + "'"
    defined = ""
    if len(frame.columns):
        last = column_letters(len(frame.columns) - 1)
        # The header row is printed at the top of every page, the repeated columns at the left of every page.
        span = printing.repeated([str(c) for c in frame.columns])
        columns = f"{quoted}!${column_letters(span[0])}:${column_letters(span[1])}," if span else ""
        defined = (f'<definedNames><definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">'
                   f"{_escape(quoted)}!$A$1:${last}${max(2, len(frame) + 1)}</definedName>"
                   f'<definedName name="_xlnm.Print_Titles" localSheetId="0">{_escape(columns + quoted)}!$1:$1'
                   "</definedName></definedNames>")
    return _XML + (
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><bookViews><workbookView/></bookViews>'
        f'<sheets><sheet name="{_escape(sheet)}" sheetId="1" r:id="rId1"/></sheets>{defined}'
        '<calcPr fullCalcOnLoad="1"/></workbook>'
    )


def _app_xml(sheet: str) -> str:
    return _XML + (
        '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties" '
        'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
        "<Application>Microsoft Excel</Application><HeadingPairs><vt:vector size=\"2\" baseType=\"variant\">"
        "<vt:variant><vt:lpstr>Worksheets</vt:lpstr></vt:variant><vt:variant><vt:i4>1</vt:i4></vt:variant>"
        f'</vt:vector></HeadingPairs><TitlesOfParts><vt:vector size="1" baseType="lpstr"><vt:lpstr>{_escape(sheet)}'
        "</vt:lpstr></vt:vector></TitlesOfParts></Properties>"
    )


def _sheet_name(sheet: str) -> str:
    """Excel's rules for a sheet name: 1-31 characters, none of ``[]:*?/\\``."""
    name = "".join("_" if c in "[]:*?/\\" else c for c in sheet)[:31].strip("'")
    if not name:
        raise ValueError(f"{sheet!r} cannot be used as a sheet name")
    return name


def _deflated(package: zipfile.ZipFile, path: str, parts: Iterable[bytes | memoryview], level: int) -> None:
    """Write one member of ``package``, compressed with ISA-L's DEFLATE (``isal``) instead of zlib's.

    The same DEFLATE stream every zip reader reads, made about three times as fast as zlib's level 1
    and a little smaller: compressing the sheet was the largest cost of writing a big workbook.
    ``zipfile`` has no parameter for the compressor, so the member's own is replaced before anything
    is written; CRC and sizes stay zipfile's.
    """
    info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    with package.open(info, "w", force_zip64=True) as stream:
        stream._compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
        for part in parts:
            stream.write(part)


def xlsx_bytes(frame: pd.DataFrame, sheet: str, *, compresslevel: int = 1, printing: Print = Print()) -> bytes:
    """``frame`` as a one-sheet workbook; see the module docstring for what it holds.

    ``compresslevel`` is ISA-L's, 0 to 3: 1 (the default) compresses sheet XML to about a tenth
    at many times the speed of zlib's default, which matters for tables of a million rows.
    ``printing``: the title on every printed page (e.g. which school's handover this is) and the
    columns repeated on every page across.
    """
    if len(frame) + 1 > MAX_ROWS or len(frame.columns) > MAX_COLUMNS:
        raise ValueError(f"sheet {sheet!r}: {len(frame):,} rows x {len(frame.columns)} columns does not fit in one "
                         f"XLSX sheet (Excel's limit is {MAX_ROWS - 1:,} data rows and {MAX_COLUMNS:,} columns); "
                         "the CSV and Parquet files hold every row")
    name = _sheet_name(sheet)
    names = [str(c) for c in frame.columns]
    columns = [_Column(frame[c]) for c in frame.columns] if len(frame) else []
    shared_strings = _share_strings(columns)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        for path, text in (("[Content_Types].xml", _CONTENT_TYPES), ("_rels/.rels", _ROOT_RELS),
                           ("docProps/app.xml", _app_xml(name)), ("docProps/core.xml", _CORE),
                           ("xl/workbook.xml", _workbook_xml(name, frame, printing)),
                           ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS), ("xl/styles.xml", _STYLES)):
            _deflated(package, path, [text.encode("utf-8")], compresslevel)
        _deflated(package, "xl/sharedStrings.xml", [shared_strings], compresslevel)
        parts = _sheet_xml_parts(names, columns, len(frame), printing)
        # A helper thread only pays when there is a next block of rows to render during compression.
        _deflated(package, "xl/worksheets/sheet1.xml", _ahead(parts) if len(frame) > BLOCK_ROWS else parts,
                  compresslevel)
    return buffer.getvalue()
