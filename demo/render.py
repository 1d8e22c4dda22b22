"""Partner deliveries from canonical rows, exactly as the region YAML describes them.

Rendering is ingest run backwards: canonical field -> delivered column (``columns`` inverted),
canonical code -> the first delivered label that maps to it (the source's own ``codes`` first, then
the region's ``codelists``; a code without a label is delivered as itself), dates in the source's
``date_format``, booleans as ja/nee in files and true/false in JSON, or as the labels the source or
the region's ``ja_nee`` list maps onto ja and nee (a support level ``extra``). Three layouts: CSV text
(every value a string), xlsx cells (real Excel dates under a title block) and JSON records.

Writers are byte-for-byte reproducible: no clock is read, xlsx zip entries get a fixed timestamp.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from schemas.codelists import BOOLEAN_CODELIST, CODELIST_OF_FIELD
from settings.region import CsvFormat, Region, Source

Layout = Literal["csv", "xlsx", "json"]

BOOLEAN_WORDS = {True: "ja", False: "nee"}
SHEET_TITLES = {  # first line of an xlsx title block, followed by the partner's name
    "po_transfers": "Overdracht PO-VO",
    "youth_care_waitlist": "Wachtlijst jeugdhulp",
    "vo_enrolment": "Inschrijvingen",
    "vo_absence": "Verzuim per week",
    "mbo_outflow": "Aanmeldingen mbo",
}
TITLE_ROWS = 3  # title, peildatum, blank: used when the YAML leaves skip_rows to detection


def layout(source: Source) -> Layout:
    return "json" if source.location.kind == "http" else source.location.format.type


def delivered_path(source_id: str, source: Source, token: str) -> str:
    """Where a delivery lands under the sources folder: the glob with ``*`` filled in, or the API's file."""
    if source.location.kind == "http":
        return f"api/{source_id}.json"
    return source.location.path.replace("*", token, 1)


def labels(field: str, source: Source, region: Region, codelist: str | None = None) -> dict[str, str]:
    """Canonical code -> the first label that maps to it for this source (``codelist``: the field's own)."""
    out: dict[str, str] = {}
    codelist = codelist or CODELIST_OF_FIELD.get(field, "")
    for table in (source.codes.get(field, {}), region.codelists.get(codelist, {})):
        for label, code in table.items():
            out.setdefault(code, label)
    return out


def render_rows(rows: pd.DataFrame, source: Source, region: Region) -> pd.DataFrame:
    """The delivered columns of a source, in the YAML's order, for canonical rows."""
    return pd.DataFrame(
        {column: render_column(rows[field], field, source, region) for column, field in source.columns.items()},
        index=rows.index,
    )


def render_column(values: pd.Series, field: str, source: Source, region: Region) -> pd.Series:
    """One canonical column as the source delivers it (object dtype, None where empty).

    CSV gets strings only; xlsx gets dates as dates and numbers as numbers; JSON gets booleans too.
    """
    style = layout(source)
    if pd.api.types.is_datetime64_any_dtype(values):
        out = _dates(values, source.date_format, style)
    elif isinstance(values.dtype, pd.BooleanDtype):
        words = labels(field, source, region, BOOLEAN_CODELIST)
        if words:
            out = values.map({flag: words.get(word, word) for flag, word in BOOLEAN_WORDS.items()})
        else:
            out = values.map(BOOLEAN_WORDS) if style != "json" else values.astype(object)
    elif pd.api.types.is_numeric_dtype(values):
        out = _numbers(values, style)
    else:
        mapping = labels(field, source, region)
        out = values.replace(mapping) if mapping else values
    return pd.Series(np.where(out.isna(), None, out.to_numpy(dtype=object)), index=values.index, dtype=object)


def _dates(values: pd.Series, date_format: str, style: Layout) -> pd.Series:
    """Format each distinct date once (a column holds few distinct dates, however long it is)."""
    codes, distinct = pd.factorize(values)
    shown = np.array(distinct.date if style == "xlsx" else distinct.strftime(date_format), dtype=object)
    return pd.Series(np.where(codes >= 0, shown[codes] if len(shown) else None, None), index=values.index)


def _numbers(values: pd.Series, style: Layout) -> pd.Series:
    """Whole numbers without a decimal part (hours are counted in whole lesson hours)."""
    array = values.to_numpy(dtype=float, na_value=np.nan)
    whole = array == np.floor(array)
    out = np.full(len(array), None, dtype=object)
    fractional = ~whole & ~np.isnan(array)
    if style == "csv":
        out[whole] = array[whole].astype(np.int64).astype(str)
        out[fractional] = array[fractional].astype(str)
    else:
        out[whole] = array[whole].astype(np.int64).tolist()
        out[fractional] = array[fractional].tolist()
    return pd.Series(out, index=values.index)


# --------------------------------------------------------------------------- writers


def write_delivery(frame: pd.DataFrame, path: Path, source: Source, *, peildatum: dt.date, mtime: float) -> None:
    """Write one delivered file (its rows already rendered) and give it a fixed modification time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    style = layout(source)
    if style == "json":
        _write_json(frame, path)
    elif style == "xlsx":
        _write_xlsx(frame, path, source, peildatum)
    else:
        _write_csv(frame, path, source.location.format)
    os.utime(path, (mtime, mtime))


def _write_csv(frame: pd.DataFrame, path: Path, fmt: CsvFormat) -> None:
    encoding = "utf-8" if fmt.encoding == "auto" else fmt.encoding
    newline = "\r\n" if encoding == "cp1252" else "\n"  # Windows LAS exports end lines with CRLF
    with open(path, "w", encoding=encoding, newline="") as handle:  # utf-8-sig writes the BOM
        frame.to_csv(handle, sep=fmt.delimiter or ";", quotechar=fmt.quotechar, index=False, lineterminator=newline)


def _write_json(frame: pd.DataFrame, path: Path) -> None:
    """A JSON list of records, one per line; the demo API server pages through it."""
    lines = frame.to_json(orient="records", lines=True, force_ascii=False).rstrip("\n")
    # A record never spans lines (JSON escapes newlines in strings), so newlines separate records.
    path.write_text("[\n" + lines.replace("\n", ",\n") + "\n]\n" if len(frame) else "[]\n", encoding="utf-8")


def _write_xlsx(frame: pd.DataFrame, path: Path, source: Source, peildatum: dt.date) -> None:
    """A municipal spreadsheet: title block, header row, then rows with real Excel dates."""
    fmt = source.location.format
    fixed = dt.datetime.combine(peildatum, dt.time())
    workbook = Workbook(write_only=True)
    workbook.properties.created = workbook.properties.modified = fixed
    sheet = workbook.create_sheet(fmt.sheet or "Blad1")
    title = [f"{SHEET_TITLES[source.dataset]} {source.partner}", f"Peildatum: {peildatum:%d-%m-%Y}"]
    skip = TITLE_ROWS if fmt.skip_rows is None else fmt.skip_rows
    for line in (title + [""] * skip)[:skip]:
        sheet.append([line] if line else [])
    sheet.append(list(frame.columns))
    for row in frame.itertuples(index=False, name=None):
        sheet.append(row)
    buffer = io.BytesIO()
    ExcelWriter(workbook, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()  # Workbook.save stamps the clock
    path.write_bytes(_fixed_zip(buffer.getvalue(), fixed))


def _fixed_zip(data: bytes, when: dt.datetime) -> bytes:
    """The same zip with every entry stamped ``when`` (openpyxl stamps entries with the clock)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as original, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as fixed:
        for entry in original.infolist():
            stamped = zipfile.ZipInfo(entry.filename, date_time=when.timetuple()[:6])
            stamped.compress_type = zipfile.ZIP_DEFLATED
            fixed.writestr(stamped, original.read(entry.filename))
    return out.getvalue()
