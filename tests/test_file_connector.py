"""Delivered CSV and Excel files, read from real files in tmp_path: encodings, delimiters, headers, faults."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from connectors.deliveries import DeliveryError, text_column, text_value
from connectors.files import SourceFiles, read_file_delivery
from settings.region import CsvFormat, FileLocation, XlsxFormat

AUTO = CsvFormat()
ACCENTED = "BSN;Naam;Reden beëindiging\r\n123456782;Zoë Anaïs;verhuisd naar België\r\n"  # a Windows export


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def read_csv(tmp_path: Path, content: bytes, fmt: CsvFormat = AUTO) -> pd.DataFrame:
    return read_file_delivery(write(tmp_path / "levering.csv", content), fmt, name="levering.csv").frame


def workbook(tmp_path: Path, rows: list[list], *, sheet: str = "Wachtlijst", formats: dict | None = None) -> Path:
    book = openpyxl.Workbook()
    book.active.title = sheet
    for row in rows:
        book.active.append(row)
    for cell, number_format in (formats or {}).items():
        book.active[cell].number_format = number_format
    path = tmp_path / "wachtlijst.xlsx"
    book.save(path)
    return path


def read_xlsx(path: Path, fmt: XlsxFormat | None = None) -> pd.DataFrame:
    return read_file_delivery(path, fmt or XlsxFormat(type="xlsx"), name=path.name).frame


# --- CSV: encodings and delimiters ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", [AUTO, CsvFormat(encoding="cp1252")], ids=["auto", "configured"])
def test_cp1252_accents_are_read(tmp_path, fmt):
    frame = read_csv(tmp_path, ACCENTED.encode("cp1252"), fmt)
    assert list(frame.columns) == ["BSN", "Naam", "Reden beëindiging", "delivery_row"]
    assert frame.iloc[0].tolist() == ["123456782", "Zoë Anaïs", "verhuisd naar België", 1]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path, encoding):
    frame = read_csv(tmp_path, ACCENTED.encode(encoding))
    assert frame.columns[0] == "BSN"
    assert frame.loc[0, "Naam"] == "Zoë Anaïs"


@pytest.mark.parametrize("delimiter", [";", ",", "\t", "|"])
def test_the_delimiter_is_sniffed_from_the_header(tmp_path, delimiter):
    content = delimiter.join(["bsn", "datum", "categorie"]) + "\n" + delimiter.join(["123456782", "2026-01-05", "45"])
    frame = read_csv(tmp_path, content.encode())
    assert frame.iloc[0, :3].tolist() == ["123456782", "2026-01-05", "45"]


def test_a_quoted_delimiter_stays_inside_its_value(tmp_path):
    frame = read_csv(tmp_path, b'bsn,naam,notitie\n123456782,"Jansen, J.","zegt ""ja"""\n')
    assert frame.iloc[0, :3].tolist() == ["123456782", "Jansen, J.", 'zegt "ja"']


def test_values_stay_text_exactly_as_delivered(tmp_path):
    frame = read_csv(tmp_path, b"BSN;Geboortedatum;Uren;AGB\n012345678;05-03-2012;4.50;01234567\n")
    assert frame.iloc[0, :4].tolist() == ["012345678", "05-03-2012", "4.50", "01234567"]
    assert all(frame[c].dtype == "str" for c in ["BSN", "Geboortedatum", "Uren", "AGB"])


def test_values_are_stripped_and_blank_cells_are_missing(tmp_path):
    frame = read_csv(tmp_path, b"a;b;c\n  x  ;   ;\n")
    assert frame.loc[0, "a"] == "x"
    assert pd.isna(frame.loc[0, "b"]) and pd.isna(frame.loc[0, "c"])


def test_blank_rows_are_dropped_and_the_others_keep_their_number(tmp_path):
    frame = read_csv(tmp_path, b"a;b\n1;2\n;\n3;4\n")
    assert frame["a"].tolist() == ["1", "3"]
    assert frame["delivery_row"].tolist() == [1, 3]


@pytest.mark.parametrize("content", [b"BSN;Aanmelddatum\r\n", b"BSN;Aanmelddatum"], ids=["newline", "no-newline"])
def test_a_header_only_file_is_a_valid_empty_delivery(tmp_path, content):
    frame = read_csv(tmp_path, content)
    assert list(frame.columns) == ["BSN", "Aanmelddatum", "delivery_row"]
    assert len(frame) == 0


def test_a_quoted_value_may_span_lines(tmp_path):
    frame = read_csv(tmp_path, b'bsn;notitie\r\n123456782;"regel 1\nregel 2"\r\n111222333;kort\r\n')
    assert frame["notitie"].tolist() == ["regel 1\nregel 2", "kort"]


def test_a_nameless_column_without_values_is_dropped(tmp_path):
    frame = read_csv(tmp_path, b"a;b;\n1;2;\n")
    assert list(frame.columns) == ["a", "b", "delivery_row"]


# --- CSV: files that are rejected as a whole ------------------------------------------------------


def test_an_empty_file_is_rejected(tmp_path):
    with pytest.raises(DeliveryError, match="levering.csv: the file is empty"):
        read_csv(tmp_path, b"")


def test_a_truncated_file_is_rejected_naming_the_line(tmp_path):
    with pytest.raises(DeliveryError, match="levering.csv: line 4 has 2 fields where the header has 3") as error:
        read_csv(tmp_path, b"bsn;naam;datum\n123456782;Jan;01-02-2026\n111222333;Piet;03-02-2026\n101222331;Kl")
    assert "101222331" not in str(error.value)


def test_a_quote_that_is_never_closed_is_rejected_naming_the_line(tmp_path):
    with pytest.raises(DeliveryError, match="line 3 starts a record whose quoted value is not closed"):
        read_csv(tmp_path, b'bsn;naam;notitie\n123456782;Jan;ok\n111222333;Piet;"zie OPP\n101222331;Kees;ok\n')


def test_a_row_with_too_many_fields_is_rejected_naming_the_line(tmp_path):
    with pytest.raises(DeliveryError, match="line 3 has 4 fields where the header has 3"):
        read_csv(tmp_path, b"bsn;naam;datum\n123456782;Jan;01-02-2026\n111222333;Piet;de Vries;03-02-2026\n")


def test_bytes_invalid_in_the_configured_encoding_are_rejected_naming_the_line(tmp_path):
    content = "bsn;naam\n123456782;Jan\n111222333;Zoë\n".encode("cp1252")
    with pytest.raises(DeliveryError, match="levering.csv: line 3 has bytes that are not valid utf-8") as error:
        read_csv(tmp_path, content, CsvFormat(encoding="utf-8"))
    assert "111222333" not in str(error.value)


def test_duplicate_header_names_are_rejected_by_position(tmp_path):
    with pytest.raises(DeliveryError, match=r"header columns \[1, 3\] have the same name"):
        read_csv(tmp_path, b"bsn;naam;bsn\n1;2;3\n")


def test_a_nameless_column_with_values_is_rejected(tmp_path):
    with pytest.raises(DeliveryError, match="column 2 holds values but has no name"):
        read_csv(tmp_path, b"bsn;;datum\n123456782;x;01-02-2026\n")


# --- fingerprint and scale ------------------------------------------------------------------------


def test_the_fingerprint_size_and_modification_time_are_recorded(tmp_path):
    content = ACCENTED.encode("cp1252")
    path = write(tmp_path / "levering.csv", content)
    stamp = dt.datetime(2026, 10, 1, 6, 30, tzinfo=dt.UTC).timestamp()
    os.utime(path, (stamp, stamp))
    delivery = read_file_delivery(path, AUTO, name="levering.csv")
    assert delivery.size == len(content)
    assert delivery.sha256 == hashlib.sha256(content).hexdigest()
    assert delivery.modified_at == "2026-10-01T06:30:00+00:00"


def test_a_large_delivery_is_read_whole_across_the_parsers_blocks(tmp_path):
    """pyarrow parses in blocks of about a megabyte, in threads: no row is lost or moved at a block's edge.
    (How fast is the benchmark's business: `make bench`, ingest.)"""
    lines = [f"{n:09d};Jansen;05-03-2012;GM0118;45;2026-01-05\n" for n in range(200_000)]
    path = write(tmp_path / "groot.csv", ("bsn;naam;geb;gemeente;cat;datum\n" + "".join(lines)).encode())
    assert path.stat().st_size > 8 * 2**20
    frame = read_file_delivery(path, AUTO, name="groot.csv").frame
    assert frame["bsn"].tolist() == [f"{n:09d}" for n in range(200_000)]
    assert frame["delivery_row"].tolist() == list(range(1, 200_001))


# --- Excel ----------------------------------------------------------------------------------------


def test_excel_dates_become_iso_text(tmp_path):
    path = workbook(
        tmp_path,
        [
            ["bsn", "geboren", "aangemeld", "tijdstip"],
            [123456782, dt.date(2012, 3, 5), 46027, dt.datetime(2026, 1, 5, 13, 45)],
        ],
        formats={"C2": "dd-mm-yyyy"},  # a bare serial number shown as a date
    )
    row = read_xlsx(path).iloc[0]
    assert (row["geboren"], row["aangemeld"], row["tijdstip"]) == ("2012-03-05", "2026-01-05", "2026-01-05 13:45:00")


def test_excel_numbers_that_are_integers_lose_the_decimal_point(tmp_path):
    path = workbook(tmp_path, [["bsn", "agb", "uren", "actief"], [12345678, 1234567.0, 2.5, True]])
    assert read_xlsx(path).iloc[0, :4].tolist() == ["12345678", "1234567", "2.5", "true"]


def test_the_header_below_a_title_block_is_detected(tmp_path):
    path = workbook(
        tmp_path,
        [
            ["Wachtlijst jeugdhulp gemeente Meppel"],
            ["Peildatum", dt.date(2026, 10, 1)],
            [],
            ["Burgerservicenummer", "Datum aanmelding", "Categorie", "AGB-code"],
            [123456782, dt.date(2026, 1, 5), 45, 12345678],
            [111222333, dt.date(2026, 2, 6), 54, None],
        ],
    )
    frame = read_xlsx(path)
    assert list(frame.columns) == ["Burgerservicenummer", "Datum aanmelding", "Categorie", "AGB-code", "delivery_row"]
    assert frame["Burgerservicenummer"].tolist() == ["123456782", "111222333"]
    assert frame["delivery_row"].tolist() == [1, 2]


def test_skip_rows_names_the_header_row(tmp_path):
    path = workbook(tmp_path, [["Export 2026"], ["a", "b"], ["1", "2"]])
    frame = read_xlsx(path, XlsxFormat(type="xlsx", skip_rows=1))
    assert frame.iloc[0, :2].tolist() == ["1", "2"]


def test_trailing_empty_rows_are_dropped(tmp_path):
    path = workbook(tmp_path, [["a", "b"], [1, 2], [None, None], ["", " "]], formats={"A9": "dd-mm-yyyy"})
    assert len(read_xlsx(path)) == 1


def test_a_missing_sheet_is_rejected_listing_the_sheets(tmp_path):
    path = workbook(tmp_path, [["a"], [1]], sheet="Blad1")
    with pytest.raises(DeliveryError, match=r"no sheet named 'Wachtlijst'; the workbook has \['Blad1'\]"):
        read_xlsx(path, XlsxFormat(type="xlsx", sheet="Wachtlijst"))


def test_a_file_that_is_not_a_workbook_is_rejected(tmp_path):
    path = write(tmp_path / "wachtlijst.xlsx", b"BSN;Naam\n")
    with pytest.raises(DeliveryError, match=r"wachtlijst.xlsx: the file is text \(CSV\?\), not an Excel workbook"):
        read_xlsx(path)


# --- the sources folder ---------------------------------------------------------------------------


def test_every_file_matching_the_glob_is_a_delivery_in_name_order(tmp_path):
    for name in ["b.csv", "a.csv", ".c.csv.tmp", "~$d.csv"]:
        write(tmp_path / "jeugdhulp" / "hoogeveen" / name, b"bsn\n123456782\n")
    location = FileLocation(kind="file", path="jeugdhulp/hoogeveen/*.csv", format=AUTO)
    deliveries = SourceFiles(root=str(tmp_path)).read(location)
    assert [d.name for d in deliveries] == ["jeugdhulp/hoogeveen/a.csv", "jeugdhulp/hoogeveen/b.csv"]


def test_a_glob_without_files_is_rejected_naming_the_glob(tmp_path):
    location = FileLocation(kind="file", path="po/*.csv", format=AUTO)
    with pytest.raises(DeliveryError, match="no file matches 'po/\\*.csv'"):
        SourceFiles(root=str(tmp_path)).read(location)


@pytest.mark.parametrize("values", [
    ["  x ", "\u00a0nbsp\u2003", "\x1cscheiding\x1f", "", "   ", None, "a b", "\u200bgeen spatie"],  # text only: Arrow
    ["  x ", 12345678.0, 1.5, True, None, {"a": [1, "b"]}, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4), "  "],
])
def test_a_column_of_values_becomes_the_same_text_as_value_by_value(values):
    """``text_column`` strips and blanks text columns with Arrow kernels: exactly what ``text_value`` does."""
    expected = [text_value(value) for value in values]
    assert [None if pd.isna(v) else v for v in text_column(values)] == expected
