"""The column-wise XLSX writer, read back by the two readers partners and we use: openpyxl and calamine."""

import datetime as dt
import io
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from connectors import xlsx
from connectors.outbox import xlsx_bytes


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "tekst": pd.Series(["gewoon", " spatie voor", None, "a & b <c> \"d\"", "=SUM(A1)", "stuur\x01teken"], dtype="str"),
        "datum": pd.to_datetime(["2024-01-02", None, "2024-03-04", "2024-01-01 12:00", None, "1999-12-31"],
                                format="ISO8601"),
        "decimaal": [1.5, None, 3.0, 1e20, -2.25, 0.1],
        "geheel": pd.array([1, None, 3, 4, 5, 123456789012], dtype="Int64"),
        "ja_nee": pd.array([True, False, None, True, True, False], dtype="boolean"),
        "gemengd": pd.Series([1, "<5", None, 2.5, "x", np.int64(7)], dtype=object),
        "é ü": pd.Series(["Zoë", "Şükrü", "Ørjan", "日本", "", "x"], dtype="str"),
    })


def openpyxl_rows(data: bytes) -> tuple[openpyxl.worksheet.worksheet.Worksheet, list[tuple]]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    return sheet, [tuple(row) for row in sheet.iter_rows(values_only=True)]


def test_every_kind_of_cell_reads_back_with_openpyxl():
    sheet, rows = openpyxl_rows(xlsx_bytes(frame(), "Overdracht"))
    assert rows[0] == ("tekst", "datum", "decimaal", "geheel", "ja_nee", "gemengd", "é ü")
    assert rows[1] == ("gewoon", dt.datetime(2024, 1, 2), 1.5, 1, "ja", 1, "Zoë")
    assert rows[2] == (" spatie voor", None, None, None, "nee", "<5", "Şükrü")
    assert rows[3] == (None, dt.datetime(2024, 3, 4), 3, 3, None, None, "Ørjan")
    assert rows[4] == ('a & b <c> "d"', dt.datetime(2024, 1, 1, 12), 1e20, 4, "ja", 2.5, "日本")
    # formula-like text is neutralised by the outbox and stays text: never a formula
    assert rows[5][0] == "'=SUM(A1)" and sheet.cell(6, 1).data_type == "s"
    assert rows[6][3] == 123456789012 and rows[6][1] == dt.datetime(1999, 12, 31)
    assert sheet.title == "Overdracht"
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:G7"
    assert sheet.cell(1, 1).font.b and not sheet.cell(2, 1).font.b
    assert sheet.cell(2, 2).number_format == "dd-mm-yyyy"
    assert sheet.column_dimensions["B"].width >= 10  # a date column is wide enough for dd-mm-jjjj


def test_calamine_reads_the_same_values_and_decodes_control_characters():
    book = CalamineWorkbook.from_filelike(io.BytesIO(xlsx_bytes(frame(), "Overdracht")))
    rows = book.get_sheet_by_name("Overdracht").to_python()
    assert rows[1] == ["gewoon", dt.date(2024, 1, 2), 1.5, 1.0, "ja", 1.0, "Zoë"]
    assert rows[4][:4] == ['a & b <c> "d"', dt.datetime(2024, 1, 1, 12), 1e20, 4.0]
    assert rows[6][0] == "stuur\x01teken"  # stored as _x0001_: XML 1.0 cannot hold the character itself


def test_the_same_rows_give_the_same_bytes():
    assert xlsx_bytes(frame(), "Blad") == xlsx_bytes(frame(), "Blad")


def test_an_empty_table_keeps_its_header_and_a_table_without_columns_is_still_a_workbook():
    _, rows = openpyxl_rows(xlsx_bytes(frame().iloc[0:0], "Leeg"))
    assert rows == [("tekst", "datum", "decimaal", "geheel", "ja_nee", "gemengd", "é ü")]
    _, rows = openpyxl_rows(xlsx_bytes(pd.DataFrame(), "Niets"))
    assert rows in ([], [()])


def test_rows_across_several_blocks_keep_their_order(monkeypatch):
    monkeypatch.setattr(xlsx, "BLOCK_ROWS", 7)
    numbers = pd.DataFrame({"n": np.arange(30), "t": pd.Series([f"r{i}" for i in range(30)], dtype="str")})
    _, rows = openpyxl_rows(xlsx.xlsx_bytes(numbers, "Blad"))
    assert rows[1:] == [(i, f"r{i}") for i in range(30)]


def test_sheet_names_follow_excels_rules():
    data = xlsx.xlsx_bytes(pd.DataFrame({"a": [1]}), "signalen: per [school]/2026 en nog veel meer tekst")
    name = openpyxl.load_workbook(io.BytesIO(data)).sheetnames[0]
    assert name == "signalen_ per _school__2026 en "
    assert len(name) == 31


def test_a_table_larger_than_a_sheet_is_refused_with_a_clear_error():
    too_many = pd.DataFrame({"a": np.zeros(xlsx.MAX_ROWS, dtype=np.int8)})
    with pytest.raises(ValueError, match="does not fit in one XLSX sheet"):
        xlsx.xlsx_bytes(too_many, "Groot")


def test_the_package_is_a_valid_zip_with_fixed_timestamps():
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes(frame(), "Blad"))) as package:
        assert package.testzip() is None
        assert {info.date_time for info in package.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert "xl/worksheets/sheet1.xml" in package.namelist()


@pytest.mark.parametrize(("index", "letters"), [(0, "A"), (25, "Z"), (26, "AA"), (701, "ZZ"), (702, "AAA")])
def test_column_letters(index, letters):
    assert xlsx.column_letters(index) == letters


def test_an_error_while_rendering_rows_reaches_the_caller(monkeypatch):
    """Rows are rendered in a helper thread (``_ahead``); its failure must not vanish with the thread."""
    def broken(names, columns, n_rows, printing=None):
        yield b"<worksheet>"
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(xlsx, "_sheet_xml_parts", broken)
    monkeypatch.setattr(xlsx, "BLOCK_ROWS", 1)  # two blocks of rows: rendered ahead, in the helper thread
    with pytest.raises(RuntimeError, match="rendering failed"):
        xlsx.xlsx_bytes(pd.DataFrame({"a": [1, 2]}), "Blad")


def test_a_text_longer_than_an_excel_cell_holds_is_cut_at_excels_limit_and_marked_as_cut():
    long = "é" * 100_000
    table = pd.DataFrame({"typed": pd.Series([long, "kort"], dtype="str"), "mixed": pd.Series([long, 1], dtype=object)})
    _, rows = openpyxl_rows(xlsx.xlsx_bytes(table, "Blad"))
    assert [len(v) for v in rows[1]] == [xlsx.MAX_CELL_CHARACTERS, xlsx.MAX_CELL_CHARACTERS]
    for cell in rows[1]:
        assert cell.endswith("de tekst heeft 100.000 tekens, een Excel-cel er 32.767; volledig in het CSV-bestand]")
        assert cell.startswith("é" * 30_000)
    assert rows[2] == ("kort", 1)
    assert xlsx.overlong_cells(table) == {"typed": 1, "mixed": 1}


def test_a_consumer_that_stops_early_stops_the_helper_thread():
    import threading

    rows = xlsx._ahead(iter([b"x"] * 100))
    assert next(rows) == b"x"
    [helper] = [t for t in threading.enumerate() if t.name == "xlsx-rows"]
    rows.close()
    helper.join(timeout=60)  # only against a hang: a helper that never stops fails below, however fast the host
    assert not helper.is_alive()


def test_each_distinct_text_is_written_once_in_the_shared_strings():
    table = pd.DataFrame({
        "status": pd.Series(["wacht", "geen", "wacht", None] * 1000, dtype="str"),
        "ja_nee": pd.array([True, False, True, None] * 1000, dtype="boolean"),
        "code": pd.Series(["geen"] * 4000, dtype="str"),
        "gemengd": pd.Series(["<5", 7, "geen", None] * 1000, dtype=object),
    })
    data = xlsx.xlsx_bytes(table, "Blad")
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        strings = package.read("xl/sharedStrings.xml").decode()
    assert strings.count("<si>") == 5  # wacht, geen, ja, nee, <5: each once, however many cells hold it
    assert "<t>&lt;5</t>" in strings
    _, rows = openpyxl_rows(data)
    assert rows[1:5] == [("wacht", "ja", "geen", "<5"), ("geen", "nee", "geen", 7),
                         ("wacht", "ja", "geen", "geen"), (None, None, "geen", None)]
    assert len(rows) == 4001


# -- printing: A4 landscape, fitted to the width, text wrapped rather than cut ----------------------


def test_a_narrow_table_prints_on_a4_landscape_one_page_wide_with_its_header_on_every_page():
    sheet, _ = openpyxl_rows(xlsx.xlsx_bytes(frame(), "Blad", printing=xlsx.Print("Titel & meer")))
    assert (sheet.page_setup.orientation, sheet.page_setup.paperSize) == ("landscape", 9)
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 0)
    assert sheet.print_title_rows == "$1:$1" and sheet.print_title_cols is None
    assert sheet.oddHeader.left.text == "Titel && meer"  # a literal & in a header is written twice
    assert sheet.print_options.gridLines


def test_a_wide_table_is_spread_over_pages_across_with_the_named_columns_on_each():
    wide = pd.DataFrame({f"kolom {i}": [f"waarde {i} " * 3] for i in range(30)})
    sheet, _ = openpyxl_rows(xlsx.xlsx_bytes(wide, "Blad", printing=xlsx.Print(repeat=("kolom 2", "kolom 3"))))
    assert sheet.page_setup.fitToWidth > 1 and sheet.page_setup.pageOrder == "overThenDown"
    assert sheet.print_title_cols == "$C:$D"
    with pytest.raises(ValueError, match="side by side"):
        xlsx.xlsx_bytes(wide, "Blad", printing=xlsx.Print(repeat=("kolom 2", "kolom 5")))


def test_long_or_multiline_text_wraps_in_a_taller_row_and_single_long_words_keep_their_width():
    text = "Dyslexieverklaring: extra tijd bij toetsen en mondeling overhoren waar dat kan"
    table = pd.DataFrame({"lang": [text, "kort"], "regels": ["een\ntwee\ndrie", None], "sleutel": ["f" * 64, "e" * 64]})
    sheet, rows = openpyxl_rows(xlsx.xlsx_bytes(table, "Blad"))
    assert rows[1][0] == text  # the whole text, not cut
    assert sheet["A2"].alignment.wrap_text and sheet["B2"].alignment.wrap_text and not sheet["C2"].alignment.wrap_text
    assert sheet.column_dimensions["A"].width < len(text) and sheet.column_dimensions["C"].width > 64
    assert sheet.row_dimensions[2].height >= 3 * xlsx.LINE_HEIGHT  # three lines in column B
    assert sheet.row_dimensions[3].height is None  # nothing wraps in the second row
    assert sheet["C2"].alignment.vertical == "top"
