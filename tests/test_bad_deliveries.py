"""A partner's bad day: malformed deliveries of every format and source, each against a clean night.

The demo region is generated once (small), and its clean night's ingest and validation run once:
that is the last good state every case starts from. Each case then changes one delivery of one
source and runs what the change can affect, with the same functions the assets run: the ingest of
that source (``assets.bronnen.ingest.ingest_source``, against the clean night's last good state) and
the validation of its dataset (``schemas.validate.validate_dataset``). The validations are batched:
every case's rows go in under a source id of their own (a copy of the source's configuration), beside
the other sources' clean rows, one validation per dataset. That is exact, because every rule judges a
row on its own or within its delivery (``duplicate_row``). For every case:

- nothing raises: the night goes on;
- the other sources' validated rows are exactly those of the clean night;
- the changed source ends as the case expects: **rejected** (held back with the named cause; its
  validated rows are the clean night's, from the last good delivery), **held back** for its volume
  (the same), **quarantined** (exactly the named rows leave; every other row is valid as before),
  or **accepted unchanged** (the same valid rows as the clean night).

A whole night with bad deliveries, through Dagster, is in test_night_runner.py.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import io
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import python_calamine

from assets.bronnen.ingest import ingest_source, keep_snapshots
from connectors.files import SourceFiles
from connectors.http_api import JsonApi
from connectors.lake import RawSnapshots
from schemas.validate import CELL_FLAGS, validate_dataset
from tests.conftest import DEMO_REGION

PUPILS = 300
SEED = 7
LOG = logging.getLogger("bad-deliveries")
COMPARED_AWAY = ["fetched_at", "delivery_sha256", "buiten_regio"]


# --------------------------------------------------------------------------- expected outcomes


@dataclass(frozen=True)
class Rejected:
    """Held back (kind ``unreadable`` or ``contract``) with ``cause`` in the reason; the last good one is used."""

    cause: str
    kinds: tuple[str, ...] = ("unreadable", "contract")


@dataclass(frozen=True)
class HeldBack(Rejected):
    """Held back for its volume."""

    kinds: tuple[str, ...] = ("volume",)


@dataclass(frozen=True)
class Quarantined:
    """These delivery rows (with this rule, or any rule for None) leave; every other row stays valid."""

    rows: dict[int, str | None]


@dataclass(frozen=True)
class Unchanged:
    """Read as it was before: the same valid rows. ``changed``: delivery rows whose values differ on purpose."""

    changed: tuple[int, ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    source_id: str
    change: Callable  # bytes -> bytes (files) or records -> body bytes (APIs)
    expect: Rejected | Quarantined | Unchanged
    rename: str | None = None  # the changed file gets this name (the old one is gone)


# --------------------------------------------------------------------------- changing a delivery


def text_of(data: bytes, encoding: str) -> str:
    return data.decode(encoding)


def eol_of(data: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in data else b"\n"


def csv_lines(data: bytes, encoding: str) -> list[str]:
    return data.decode(encoding).replace("\r\n", "\n").rstrip("\n").split("\n")


def csv_bytes(lines: list[str], encoding: str, eol: str = "\r\n") -> bytes:
    return (eol.join(lines) + eol).encode(encoding)


def edit_csv(encoding: str, edit: Callable[[list[list[str]]], list[list[str]]], sep: str = ";"):
    """A change of the delivered cells: ``edit`` gets header and rows as lists of fields."""
    def change(data: bytes) -> bytes:
        eol = eol_of(data).decode()
        rows = [line.split(sep) for line in csv_lines(data, encoding)]
        lines = [sep.join(r) for r in edit(rows)]
        if encoding == "utf-8-sig":
            return codecs.BOM_UTF8 + csv_bytes(lines, "utf-8", eol)
        return csv_bytes(lines, encoding, eol)
    return change


def set_cell(column: str, row: int, value: str):
    def edit(rows):
        rows[row][rows[0].index(column)] = value
        return rows
    return edit


def set_column(column: str, value: str):
    def edit(rows):
        at = rows[0].index(column)
        for r in rows[1:]:
            r[at] = value
        return rows
    return edit


def rename_column(old: str, new: str):
    def edit(rows):
        rows[0][rows[0].index(old)] = new
        return rows
    return edit


def header_only(rows):
    return rows[:1]


def keep_share(share: float):
    def edit(rows):
        return rows[: 1 + max(1, int((len(rows) - 1) * share))]
    return edit


def swap_columns(rows):
    return [[r[1], r[0], *r[2:]] for r in rows]


def extra_column(rows):
    return [[*rows[0], "Opmerking"], *[[*r, "geen"] for r in rows[1:]]]


def duplicate_row(row: int):
    def edit(rows):
        return [*rows, list(rows[row])]
    return edit


def reencode(source: str, target: str, bom: bytes = b""):
    def change(data: bytes) -> bytes:
        return bom + data.decode(source).encode(target)
    return change


def line_endings(eol: str, encoding: str):
    def change(data: bytes) -> bytes:
        text = data.decode(encoding).replace("\r\n", "\n")
        return text.replace("\n", eol).encode(encoding)
    return change


def mixed_line_endings(data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    return b"".join(line + (b"\n" if i % 2 else b"\r\n") for i, line in enumerate(lines[:-1]))


def truncated(data: bytes) -> bytes:
    return data.rstrip(b"\r\n")[:-12]


def quote_opened(row: int, column: int, sep: bytes = b";"):
    def change(data: bytes) -> bytes:
        eol = eol_of(data)
        lines = data.split(eol)
        fields = lines[row].split(sep)
        fields[column] = b'"' + fields[column]
        lines[row] = sep.join(fields)
        return eol.join(lines)
    return change


def bom_before_column(column: int, encoding: str, sep: str = ";"):
    def change(data: bytes) -> bytes:
        start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        eol = eol_of(data)
        header, rest = data[start:].split(eol, 1)
        names = header.split(sep.encode())
        names[column] = codecs.BOM_UTF8 + names[column]
        return data[:start] + sep.encode().join(names) + eol + rest
    return change


def blank_lines(data: bytes) -> bytes:
    eol = eol_of(data)
    return data.replace(eol, eol + eol).replace(eol + eol, eol, 1)


def trailing_delimiter(data: bytes) -> bytes:
    eol = eol_of(data)
    return data.replace(eol, b";" + eol)


def every_field_quoted(data: bytes) -> bytes:
    eol = eol_of(data)
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    lines = [b",".join(b'"' + f + b'"' for f in line.split(b",")) for line in body.rstrip(eol).split(eol)]
    return codecs.BOM_UTF8 + eol.join(lines) + eol


def delimiter_replaced(old: bytes, new: bytes):
    return lambda data: data.replace(old, new)


def xlsx_of_rows(rows: list[list], sheet: str = "Wachtlijst", merges: tuple[str, ...] = (),
                 extra_sheets: dict[str, list[list]] | None = None) -> bytes:
    book = openpyxl.Workbook()
    book.active.title = sheet
    for row in rows:
        book.active.append(row)
    for cells in merges:
        book.active.merge_cells(cells)
    for name, other in (extra_sheets or {}).items():
        extra = book.create_sheet(name)
        for row in other:
            extra.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def sheet_rows(data: bytes) -> list[list]:
    """The clean workbook's cells as openpyxl writes them back (calamine's values; '' is an empty cell)."""
    book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    rows = book.get_sheet_by_name("Wachtlijst").to_python(skip_empty_area=False)
    return [[None if v == "" else v for v in row] for row in rows]


def header_index(rows: list[list]) -> int:
    return next(i for i, row in enumerate(rows) if "Burgerservicenummer" in row)


def edit_xlsx(edit: Callable[[list[list], int], bytes]):
    def change(data: bytes) -> bytes:
        rows = sheet_rows(data)
        return edit(rows, header_index(rows))
    return change


def xlsx_merged_gemeente(rows, top):
    at = rows[top].index("Gemeente")
    letter = openpyxl.utils.get_column_letter(at + 1)
    rows[top + 2][at] = None
    return xlsx_of_rows(rows, merges=(f"{letter}{top + 2}:{letter}{top + 3}",))


def xlsx_formula_gemeente(rows, top):
    rows[top + 1][rows[top].index("Gemeente")] = '="GM0119"'  # openpyxl saves no computed value
    return xlsx_of_rows(rows)


def xlsx_on_another_sheet(rows, top):
    return xlsx_of_rows([["Overzicht"]], sheet="Voorblad", extra_sheets={"Blad1": rows})


def xlsx_configured_sheet_empty(rows, top):
    return xlsx_of_rows([], extra_sheets={"Blad2": rows})


def xlsx_header_only(rows, top):
    return xlsx_of_rows(rows[: top + 1])


def xlsx_without_title_block(rows, top):
    return xlsx_of_rows(rows[top:])


def xlsx_extra_columns(rows, top):
    return xlsx_of_rows([[*row, "Notitie" if i == top else None] for i, row in enumerate(rows)])


def password_protected(data: bytes) -> bytes:
    """What an encrypted Office file starts with: the compound-file signature, and the stream that
    holds the encrypted workbook. (A stand-in: no real encryption is needed to recognise one.)"""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    return header + "EncryptionInfo".encode("utf-16-le") + bytes(50) + "EncryptedPackage".encode("utf-16-le") + \
        bytes(2048)


# --------------------------------------------------------------------------- API bodies


def page(key: str, edit: Callable[[list[dict]], object] = lambda records: records, *, raw: bool = False):
    """A one-page answer of ``{key: edit(records)}``; ``raw``: ``edit`` returns the body's bytes itself."""
    def change(records: list[dict]) -> bytes:
        if raw:
            return edit(records)
        return json.dumps({key: edit(records)}, ensure_ascii=False).encode("utf-8")
    return change


def set_field(field_name: str, value, index: int = 0):
    def edit(records):
        records[index][field_name] = value
        return records
    return edit


def rename_field(old: str, new: str):
    def edit(records):
        return [{(new if k == old else k): v for k, v in r.items()} for r in records]
    return edit


def null_field(field_name: str):
    def edit(records):
        return [{**r, field_name: None} for r in records]
    return edit


# --------------------------------------------------------------------------- the corpus

PO, HV, SW, VI, VZ, MP = ("po_overdracht", "wachtlijst_hoogeveen", "wachtlijst_steenwijkerland",
                          "vo_inschrijvingen", "vo_verzuim", "wachtlijst_meppel")
DW, WW, VVA = "wachtlijst_de_wolden", "wachtlijst_westerveld", "mbo_vva"
CP = "cp1252"
GARBAGE = bytes(range(256)) * 8

CASES = [
    # PO school boards: CSV, Windows-1252, ';'
    Case("po-empty-file", PO, lambda d: b"", Rejected("the file is empty")),
    Case("po-header-only", PO, edit_csv(CP, header_only), HeldBack("no data rows, fewer than the minimum of 1")),
    Case("po-truncated-mid-row", PO, truncated, Rejected("fields where the header has 28")),
    Case("po-old-mac-line-endings", PO, line_endings("\r", CP), Unchanged()),
    Case("po-utf16-without-bom", PO, reencode(CP, "utf-16-le"), Unchanged()),
    Case("po-utf16-big-endian-without-bom", PO, reencode(CP, "utf-16-be"), Unchanged()),
    Case("po-utf16-with-bom", PO, reencode(CP, "utf-16"), Unchanged()),
    Case("po-unbalanced-quote", PO, quote_opened(2, 2), Rejected("line 3 starts a record whose quoted value is not "
                                                                 "closed properly")),
    Case("po-bom-in-the-middle-of-the-header", PO, bom_before_column(2, CP), Unchanged()),
    Case("po-delimiter-inside-a-value", PO, edit_csv(CP, set_cell("Achternaam", 1, "Jansen;Smit")),
         Rejected("line 2 has 29 fields where the header has 28")),
    Case("po-nul-byte-in-a-name", PO, edit_csv(CP, set_cell("Roepnaam", 2, "An\x00na")),
         Quarantined({2: "control_character"})),
    Case("po-bell-in-a-surname", PO, edit_csv(CP, set_cell("Achternaam", 1, "Jan\x07sen")),
         Quarantined({1: "control_character"})),
    Case("po-renamed-column", PO, edit_csv(CP, rename_column("Achternaam", "Achter naam")),
         Rejected("missing column(s) ['Achternaam']")),
    Case("po-column-name-with-other-case-and-space", PO, edit_csv(CP, rename_column("BSN", "bsn ")),
         Rejected("'BSN' is delivered as 'bsn' (differs in case, spaces or invisible characters)")),
    Case("po-required-field-empty-everywhere", PO, edit_csv(CP, set_column("Schooljaar", "")),
         Rejected("verplichte kolom(men) schooljaar", ("contract",))),
    Case("po-text-of-100000-characters", PO, edit_csv(CP, set_cell("Ondersteuningsbehoeften", 2, "x" * 100_000)),
         Unchanged(changed=(2,))),
    Case("po-duplicate-row", PO, edit_csv(CP, duplicate_row(1)), Quarantined({-1: "duplicate_row"})),
    Case("po-impossible-date", PO, edit_csv(CP, set_cell("Geboortedatum", 2, "31-02-2013")),
         Quarantined({2: "date_parse"})),
    Case("po-excel-workbook-instead-of-csv", PO, lambda d: xlsx_of_rows([["BSN"], ["1"]]),
         Rejected("the file is a ZIP archive or an Excel workbook (.xlsx), not CSV")),
    Case("po-gzip-compressed", PO, gzip.compress, Rejected("the file is a gzip-compressed file, not CSV")),
    Case("po-blank-lines-between-rows", PO, blank_lines, Unchanged()),
    Case("po-trailing-delimiter", PO, trailing_delimiter, Unchanged()),
    Case("po-header-repeated-in-the-middle", PO, edit_csv(CP, lambda rows: [*rows, list(rows[0])]),
         Quarantined({-1: None})),
    Case("po-binary-garbage", PO, lambda d: GARBAGE, Rejected("bytes that are not valid cp1252")),
    Case("po-only-blank-lines", PO, lambda d: b"\r\n \r\n\r\n", Rejected("the file is empty")),
    Case("po-blank-first-line", PO, lambda d: b"\r\n" + d, Rejected("line 1 is blank")),
    Case("po-extra-column", PO, edit_csv(CP, extra_column), Unchanged()),
    Case("po-columns-reordered", PO, edit_csv(CP, swap_columns), Unchanged()),
    Case("po-shrunk-to-a-fifth", PO, edit_csv(CP, keep_share(0.2)), HeldBack("more than volume.max_drop 50%")),
    Case("po-mixed-line-endings", PO, mixed_line_endings, Unchanged()),
    # Hoogeveen's waitlist: CSV, Windows-1252, ';'
    Case("hoogeveen-empty-municipality-code", HV, edit_csv(CP, set_cell("Gemeentecode", 1, "")),
         Quarantined({1: "required"})),
    Case("hoogeveen-header-only", HV, edit_csv(CP, header_only), HeldBack("no data rows")),
    Case("hoogeveen-comma-instead-of-semicolon", HV, delimiter_replaced(b";", b","),
         Rejected("the header has a single column: is the delimiter right")),
    Case("hoogeveen-column-missing", HV, edit_csv(CP, lambda rows: [r[:-1] for r in rows]),
         Rejected("missing column(s) ['Reden beëindiging']")),
    Case("hoogeveen-new-file-name-header-only", HV, edit_csv(CP, header_only), HeldBack("no data rows"),
         rename="jeugdhulp/hoogeveen/wachtlijst_20261006.csv"),
    Case("hoogeveen-new-file-name", HV, lambda d: d, Unchanged(), rename="jeugdhulp/hoogeveen/wachtlijst_20261006.csv"),
    Case("hoogeveen-old-mac-line-endings", HV, line_endings("\r", CP), Unchanged()),
    Case("hoogeveen-unknown-product-category", HV, edit_csv(CP, set_cell("Productcategorie", 1, "99")),
         Quarantined({1: "unknown_code"})),
    # Steenwijkerland's waitlist: CSV, UTF-8 with BOM, ','
    Case("steenwijkerland-without-bom", SW, lambda d: d[len(codecs.BOM_UTF8):], Unchanged()),
    Case("steenwijkerland-bom-in-the-middle-of-the-header", SW, bom_before_column(1, "utf-8", ","), Unchanged()),
    Case("steenwijkerland-windows-1252-byte", SW, lambda d: d.replace(b"\n", b"\xe9\n", 2),
         Rejected("line 1 has bytes that are not valid utf-8")),
    Case("steenwijkerland-semicolons", SW, delimiter_replaced(b",", b";"), Rejected("single column")),
    Case("steenwijkerland-every-field-quoted", SW, every_field_quoted, Unchanged()),
    Case("steenwijkerland-truncated", SW, truncated, Rejected("fields where the header has 12")),
    Case("steenwijkerland-empty-municipality-code", SW, edit_csv("utf-8-sig", set_cell("gemeente_code", 2, ""), ","),
         Quarantined({2: "required"})),
    # VO enrolment: CSV, UTF-8, ';', one file per school location
    Case("enrolment-header-only", VI, edit_csv("utf-8", header_only), HeldBack("no data rows")),
    Case("enrolment-empty-file", VI, lambda d: b"", Rejected("the file is empty")),
    Case("enrolment-utf16-without-bom", VI, reencode("utf-8", "utf-16-le"), Unchanged()),
    Case("enrolment-bom-in-the-middle-of-the-header", VI, bom_before_column(3, "utf-8"), Unchanged()),
    Case("enrolment-unbalanced-quote", VI, quote_opened(1, 2), Rejected("quoted value is not closed properly")),
    Case("enrolment-nul-byte", VI, edit_csv("utf-8", set_cell("Achternaam", 1, "Smit\x00")),
         Quarantined({1: "control_character"})),
    Case("enrolment-required-field-empty-everywhere", VI, edit_csv("utf-8", set_column("Datum inschrijving", "")),
         Rejected("inschrijfdatum ontbreken of zijn in elke rij leeg", ("contract",))),
    Case("enrolment-shrunk-to-a-fifth", VI, edit_csv("utf-8", keep_share(0.2)), HeldBack("volume.max_drop")),
    Case("enrolment-control-character-in-a-school-code", VI, edit_csv("utf-8", set_cell("Vestiging", 2, "25CL\x1b03")),
         Quarantined({2: "control_character"})),
    # VO absence: CSV, UTF-8, ';'
    Case("absence-header-only", VZ, edit_csv("utf-8", header_only), HeldBack("no data rows")),
    Case("absence-extra-field-in-a-row", VZ, lambda d: d.replace(b"\n", b";9\n", 2).replace(b";9\n", b"\n", 1),
         Rejected("line 2 has 7 fields where the header has 6")),
    Case("absence-hours-as-words", VZ, edit_csv("utf-8", set_cell("Uren ongeoorloofd", 1, "veel")),
         Quarantined({1: "number_parse"})),
    Case("absence-old-mac-line-endings", VZ, line_endings("\r", "utf-8"), Unchanged()),
    # Meppel's waitlist: Excel with a title block, sheet 'Wachtlijst'
    Case("meppel-empty-file", MP, lambda d: b"", Rejected("the file is empty (0 bytes)")),
    Case("meppel-password-protected", MP, password_protected, Rejected("the workbook is password-protected")),
    Case("meppel-data-on-another-sheet", MP, edit_xlsx(xlsx_on_another_sheet),
         Rejected("no sheet named 'Wachtlijst'; the workbook has ['Voorblad', 'Blad1']; sheets with data: 'Voorblad' "
                  "(1 rows), 'Blad1' (5 rows)")),
    Case("meppel-configured-sheet-empty", MP, edit_xlsx(xlsx_configured_sheet_empty),
         Rejected("sheet 'Wachtlijst' is empty; sheets with data: 'Blad2'")),
    Case("meppel-header-only", MP, edit_xlsx(xlsx_header_only), HeldBack("no data rows")),
    Case("meppel-merged-municipality-cells", MP, edit_xlsx(xlsx_merged_gemeente),
         Quarantined({2: "excel_merged_cell"})),
    Case("meppel-formula-without-value", MP, edit_xlsx(xlsx_formula_gemeente), Quarantined({1: "excel_formula"})),
    Case("meppel-truncated-workbook", MP, lambda d: d[: len(d) // 2], Rejected("damaged or incomplete")),
    Case("meppel-csv-named-xlsx", MP, lambda d: b"Burgerservicenummer;Gemeente\r\n123;GM0119\r\n",
         Rejected("the file is text (CSV?), not an Excel workbook")),
    Case("meppel-extra-columns", MP, edit_xlsx(xlsx_extra_columns), Unchanged()),
    Case("meppel-without-title-block", MP, edit_xlsx(xlsx_without_title_block), Unchanged()),
    Case("meppel-rewritten-by-another-program", MP, edit_xlsx(lambda rows, top: xlsx_of_rows(rows)), Unchanged()),
    # De Wolden's waitlist API: pages of {"data": [...]}
    Case("de-wolden-empty-list", DW, page("data", lambda r: []), HeldBack("no data rows")),
    Case("de-wolden-top-level-list", DW, page("data", lambda r: b"[]", raw=True), Rejected("got a JSON list")),
    Case("de-wolden-html-error-page", DW, page("data", lambda r: b"<html><body>Onderhoud</body></html>", raw=True),
         Rejected("the response is HTML or XML, not JSON")),
    Case("de-wolden-truncated-json", DW, page("data", lambda r: json.dumps({"data": r}).encode()[:-40], raw=True),
         Rejected("the response is not valid JSON")),
    Case("de-wolden-records-under-another-key", DW, page("items"), Rejected("the JSON object has no 'data'")),
    Case("de-wolden-records-are-not-objects", DW, page("data", lambda r: [[1, 2]]),
         Rejected("got a list with something else than objects")),
    Case("de-wolden-renamed-field", DW, page("data", rename_field("clientBsn", "bsn")),
         Rejected("missing column(s) ['clientBsn']")),
    Case("de-wolden-extra-field", DW, page("data", lambda r: [{**x, "opmerking": "-"} for x in r]), Unchanged()),
    Case("de-wolden-reserved-field-name", DW, page("data", set_field("delivery_row", 7)),
         Rejected("a name the pipeline reserves")),
    Case("de-wolden-invalid-utf8", DW, page("data", lambda r: b'{"data": [{"clientBsn": "\xff"}]}', raw=True),
         Rejected("the response is not valid UTF-8")),
    Case("de-wolden-empty-body", DW, page("data", lambda r: b"", raw=True), Rejected("the response is empty")),
    Case("de-wolden-numbers-for-text", DW, page("data", lambda r: [{**x, "verwijzerCode": int(x["verwijzerCode"])}
                                                                   if (x.get("verwijzerCode") or "").isdigit()
                                                                   and not x["verwijzerCode"].startswith("0") else x
                                                                   for x in r]), Unchanged()),
    # Westerveld's waitlist API: cursor pages of {"items": [...]}
    Case("westerveld-nul-in-a-code", WW, page("items", set_field("providerAgb", "1234\u00005678")),
         Quarantined({1: "control_character"})),
    Case("westerveld-municipality-null", WW, page("items", set_field("municipality", None)),
         Quarantined({1: "required"})),
    Case("westerveld-empty-list", WW, page("items", lambda r: []), HeldBack("no data rows")),
    # MBO application statuses (VVA): pages of {"results": [...]}
    Case("vva-empty-list", VVA, page("results", lambda r: []), HeldBack("no data rows")),
    Case("vva-required-field-null-everywhere", VVA, page("results", null_field("brinVo")),
         Rejected("verplichte kolom(men) vo_brin6", ("contract",))),
    Case("vva-nan-for-a-date", VVA, page("results", lambda r: json.dumps({"results": r}).encode().replace(
        b'"datumStatus": "', b'"datumStatus": NaN, "x": "', 1), raw=True), Quarantined({1: "date_parse"})),
    Case("vva-flags-as-words", VVA, page("results", lambda r: [{**x, "diploma": {True: "ja", False: "nee"}.get(
        x["diploma"], x["diploma"])} for x in r]), Unchanged()),
    Case("vva-shrunk-to-a-fifth", VVA, page("results", lambda r: r[: len(r) // 5]), HeldBack("volume.max_drop")),
]


def test_the_corpus_covers_every_format_and_source_with_at_least_sixty_cases(world):
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)
    assert {case.source_id for case in CASES} == set(world.region.sources)
    assert {type(case.expect) for case in CASES} >= {Rejected, HeldBack, Quarantined, Unchanged}


# --------------------------------------------------------------------------- the clean night


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.bodies.get(self.path.split("?")[0], b"")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@dataclass
class World:
    region: object
    root: Path
    clean_sources: Path
    snapshots: RawSnapshots
    clean_raw: dict[str, pd.DataFrame]
    clean_valid: dict[str, pd.DataFrame]
    clean_rejects: dict[str, pd.DataFrame]
    api_server: ThreadingHTTPServer
    api_records: dict[str, list[dict]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from demo.__main__ import _demo_environment
    from demo.api_server import DemoApiServer
    from demo.generate import generate_region
    from settings.region import load_region

    root = tmp_path_factory.mktemp("bad-deliveries")
    saved = dict(os.environ)
    os.environ["SWV_VAR_DIR"] = str(root / "var")
    try:
        region = load_region(DEMO_REGION)
        _demo_environment(region)
        generate_region(region, root / "sources", root / "truth.json", seed=SEED, pupils=PUPILS)
        snapshots = RawSnapshots(root=str(root / "lake"))
        clean_raw = {}
        with DemoApiServer(region, root / "sources" / "api") as server:
            os.environ["SWV_DEMO_API"] = server.url
            region = load_region(DEMO_REGION)
            files, api = SourceFiles(root=str(root / "sources")), api_with_tokens(region)
            for source_id, source in region.sources.items():
                result = ingest_source(source_id, source, files, api, snapshots, LOG, region=region)
                assert not result.holds, result.holds
                keep_snapshots(snapshots, result.fresh)
                snapshots.keep(source_id, result.state)
                clean_raw[source_id] = pd.concat(result.frames, ignore_index=True)
        clean = {dataset: validate(region, dataset, [clean_raw[s] for s in region.sources_for(dataset)])
                 for dataset in {s.dataset for s in region.sources.values()}}
        clean_valid = {dataset: result.valid for dataset, result in clean.items()}
        clean_rejects = {source_id: clean[source.dataset].rejects.loc[
            clean[source.dataset].rejects["source_id"] == source_id] for source_id, source in region.sources.items()}
        pages = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
        pages.bodies = {}
        threading.Thread(target=pages.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        records = {source_id: json.loads((root / "sources" / "api" / f"{source_id}.json").read_text(encoding="utf-8"))
                   for source_id, source in region.sources.items() if source.location.kind == "http"}
        yield World(region, root, root / "sources", snapshots, clean_raw, clean_valid, clean_rejects, pages, records)
        pages.shutdown()
        pages.server_close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def api_with_tokens(region) -> JsonApi:
    """The partner APIs' connector with the demo's tokens as plain values (outside Dagster no EnvVar is resolved)."""
    return JsonApi(tokens={s.location.auth.token_env: os.environ[s.location.auth.token_env]
                           for s in region.sources.values() if s.location.kind == "http" and s.location.auth})


def validate(region, dataset: str, frames: list[pd.DataFrame]):
    raw = pd.concat(frames, ignore_index=True)
    if CELL_FLAGS not in raw.columns:
        raw[CELL_FLAGS] = pd.Series(pd.NA, index=raw.index, dtype="str")
    return validate_dataset(dataset, raw, region, evaluation_date=region.reference_date)


# --------------------------------------------------------------------------- one case


def the_changed_file(world: World, source) -> Path:
    """The source's largest file: the one with rows enough for every change."""
    files = sorted(world.clean_sources.glob(source.location.path), key=lambda p: (-p.stat().st_size, p.name))
    return files[0]


def run_case(world: World, case: Case):
    """Ingest the changed source from the clean night's last good state: (ingest, source, changed delivery)."""
    source = world.region.sources[case.source_id]
    api = api_with_tokens(world.region)
    if source.location.kind == "file":
        case_root = world.root / "cases" / case.name
        target = the_changed_file(world, source)
        for path in world.clean_sources.glob(source.location.path):
            relative = path.relative_to(world.clean_sources)
            if path == target and case.rename:
                relative = Path(case.rename)
            copy = case_root / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            if path == target:
                copy.write_bytes(case.change(path.read_bytes()))
        changed = (case_root / (case.rename or target.relative_to(world.clean_sources))).relative_to(case_root)
        files = SourceFiles(root=str(case_root))
    else:
        path = f"/case/{case.name}"
        world.api_server.bodies[path] = case.change([dict(r) for r in world.api_records[case.source_id]])
        location = source.location.model_copy(update={
            "url": f"http://127.0.0.1:{world.api_server.server_address[1]}{path}", "auth": None, "max_retries": 0,
            "pagination": source.location.pagination.model_copy(update={"page_size": 1_000_000})})
        source = source.model_copy(update={"location": location})
        changed, files = location.url, SourceFiles(root=str(world.clean_sources))
    ingest = ingest_source(case.source_id, source, files, api, world.snapshots, LOG, region=world.region)
    return ingest, source, str(changed)


@dataclass(frozen=True)
class Outcome:
    ingest: object
    changed: str
    valid: pd.DataFrame  # the case's valid rows, under the source's own id
    rejects: pd.DataFrame


@pytest.fixture(scope="module")
def outcomes(world):
    """Every case ingested, then validated in one batch per dataset; and each dataset's other sources."""
    cases, sources = {}, dict(world.region.sources)
    frames: dict[str, list[pd.DataFrame]] = {}
    for number, case in enumerate(CASES):
        ingest, source, changed = run_case(world, case)
        alias = f"{case.source_id}_case{number}"
        sources[alias] = source
        cases[case.name] = (ingest, changed, alias)
        frames.setdefault(source.dataset, []).extend(f.assign(source_id=alias) for f in ingest.frames)
    region = world.region.model_copy(update={"sources": sources})
    batches = {dataset: validate(region, dataset, [*(world.clean_raw[s] for s in world.region.sources_for(dataset)),
                                                  *parts]) for dataset, parts in frames.items()}
    results = {}
    for case in CASES:
        ingest, changed, alias = cases[case.name]
        batch = batches[world.region.sources[case.source_id].dataset]
        results[case.name] = Outcome(
            ingest, changed,
            batch.valid.loc[batch.valid["source_id"] == alias].assign(source_id=case.source_id),
            batch.rejects.loc[batch.rejects["source_id"] == alias].assign(source_id=case.source_id))
    return results, batches


def test_the_sources_no_case_changed_validate_exactly_as_in_the_clean_night(world, outcomes):
    _, batches = outcomes
    for dataset, batch in batches.items():
        for source_id in world.region.sources_for(dataset):
            clean = world.clean_valid[dataset]
            pd.testing.assert_frame_equal(rows_of(batch.valid, source_id), rows_of(clean, source_id))


def rows_of(valid: pd.DataFrame, source_id: str, *, by_value: bool = False) -> pd.DataFrame:
    rows = valid.loc[valid["source_id"] == source_id].drop(columns=COMPARED_AWAY)
    if by_value:  # an API pulled from another URL: the same records, another delivery name
        rows = rows.drop(columns=["delivery"])
    return rows.sort_values(list(rows.columns.intersection(["delivery", "delivery_row"]))).reset_index(drop=True)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_delivery_costs_no_valid_row_and_is_held_back_or_quarantined_as_expected(world, outcomes, case):
    outcome = outcomes[0][case.name]
    ingest, changed = outcome.ingest, outcome.changed
    source = world.region.sources[case.source_id]
    clean = world.clean_valid[source.dataset]

    expect = case.expect
    api = source.location.kind == "http"
    if isinstance(expect, Rejected):
        [hold] = ingest.holds
        assert hold.kind in expect.kinds, hold
        assert expect.cause in hold.reason, hold.reason
        assert changed in hold.reason or hold.delivery == "*", f"the reason must name {changed}: {hold.reason}"
        assert "nothing" not in hold.kept, "the last good delivery stands in"
        pd.testing.assert_frame_equal(rows_of(outcome.valid, case.source_id), rows_of(clean, case.source_id))
        return
    assert not ingest.holds, ingest.holds
    mine = rows_of(outcome.valid, case.source_id, by_value=api or bool(case.rename))
    before = rows_of(clean, case.source_id, by_value=api or bool(case.rename))
    if isinstance(expect, Unchanged):
        if expect.changed:
            changed_rows = (mine["delivery"] == changed) & mine["delivery_row"].isin(expect.changed)
            assert changed_rows.sum() == len(expect.changed), outcome.rejects.loc[outcome.rejects["delivery"] == changed][["delivery_row", "column", "rule"]].to_dict("records")
            mine, before = mine.loc[~changed_rows.to_numpy()], before.loc[~(
                (before["delivery"] == changed) & before["delivery_row"].isin(expect.changed)).to_numpy()]
            mine, before = mine.reset_index(drop=True), before.reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, before)
        return
    rejects = outcome.rejects
    delivered = [f.loc[f["delivery"] == changed] for f in ingest.frames]
    last = int(max(f["delivery_row"].max() for f in delivered if len(f)))
    expected_rows = {last if row == -1 else row: rule for row, rule in expect.rows.items()}
    clean_rejects = world.clean_rejects[case.source_id]
    if not api:
        clean_rejects = clean_rejects.loc[clean_rejects["delivery"] == changed]
    changed_rejects = rejects.loc[rejects["delivery"] == changed]
    assert set(changed_rejects["delivery_row"]) == set(clean_rejects["delivery_row"]) | set(expected_rows), \
        changed_rejects[["delivery_row", "rule"]]
    for row, rule in expected_rows.items():
        if rule is not None:
            assert rule in set(changed_rejects.loc[changed_rejects["delivery_row"] == row, "rule"]), (row, rule)
    of_changed = (before["delivery"] == changed) if not api else pd.Series(True, index=before.index)
    kept = before.loc[~(of_changed & before["delivery_row"].isin(list(expected_rows))).to_numpy()]
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), kept.reset_index(drop=True))
