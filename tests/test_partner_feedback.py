"""Quarantine made visible: the steward sees tonight's rejected rows in the UI, each partner gets its own.

A region file with the demo's PO source (one file per board, ``feedback_per: file``) and two
municipalities' waitlists; raw tables as ingest makes them, validated and fed back in process on a
temporary instance, SQLite warehouse and outbox.
"""

from __future__ import annotations

import io

import dagster as dg
import openpyxl
import pandas as pd
import pytest
import yaml
from stdnum.nl import bsn as stdnum_bsn

from assets.validatie.feedback import FEEDBACK_FILE, FEEDBACK_FOLDER, build_feedback_asset, partner_of
from assets.validatie.validated import build_validated_assets, masked, quarantine_shown, quarantine_table
from connectors.outbox import Outbox
from connectors.region_config import RegionConfig
from connectors.warehouse import Warehouse
from schemas.checks import RULE_FIXES, RULES
from settings.region import RegionConfigError, load_region
from tests.conftest import DEMO_REGION
from tests.test_rules import BASELINE, raw_frame

PO, WAITLIST = BASELINE["po_transfers"], BASELINE["youth_care_waitlist"]
KEPT_SOURCES = ("po_overdracht", "wachtlijst_hoogeveen", "wachtlijst_meppel")


def valid_bsns(count: int, start: int = 100_000_000) -> list[str]:
    found, number = [], start
    while len(found) < count:
        if stdnum_bsn.is_valid(f"{number:09d}"):
            found.append(f"{number:09d}")
        number += 1
    return found


@pytest.fixture
def region_path(tmp_path):
    document = yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))
    document["sources"] = {k: v for k, v in document["sources"].items() if k in KEPT_SOURCES}
    target = tmp_path / "region.yaml"
    target.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return target


class Night:
    """The validated assets and the feedback of one night, on raw tables given by the test."""

    def __init__(self, tmp_path, region_path):
        self.region_path = region_path
        self.region = load_region(region_path)
        self.outbox = Outbox(root=str(tmp_path / "outbox"))
        self.warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
        self.instance = dg.DagsterInstance.ephemeral()

    def run(self, po: pd.DataFrame, waitlist: pd.DataFrame) -> dg.ExecuteInProcessResult:
        @dg.asset(name="po_transfers_raw", io_manager_key="lake_io_manager")
        def po_raw() -> pd.DataFrame:
            return po

        @dg.asset(name="youth_care_waitlist_raw", io_manager_key="lake_io_manager")
        def waitlist_raw() -> pd.DataFrame:
            return waitlist

        assets = [po_raw, waitlist_raw, *build_validated_assets(self.region), build_feedback_asset(self.region)]
        resources = {"region_config": RegionConfig(path=str(self.region_path)), "warehouse": self.warehouse,
                     "outbox": self.outbox, "lake_io_manager": dg.mem_io_manager}
        return dg.materialize(assets, resources=resources, instance=self.instance)

    def feedback(self, partner: str) -> pd.DataFrame:
        path = self.outbox.folder(FEEDBACK_FOLDER, partner) / f"{FEEDBACK_FILE}.csv"
        return pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig", keep_default_na=False)

    def files(self) -> dict[str, bytes]:
        root = self.outbox.folder(FEEDBACK_FOLDER)
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def po_board(board: str, rows: list[dict]) -> pd.DataFrame:
    return raw_frame("po_transfers", rows, source_id="po_overdracht", delivery=f"po/bestuur_{board}.csv",
                     sha256=board[-1] * 64)


def waitlist(source_id: str, delivery: str, rows: list[dict], sha: str) -> pd.DataFrame:
    return raw_frame("youth_care_waitlist", rows, source_id=source_id, delivery=delivery, sha256=sha * 64)


@pytest.fixture
def night(tmp_path, region_path):
    return Night(tmp_path, region_path)


@pytest.fixture
def first_night(night):
    ids = valid_bsns(8)
    po = pd.concat([
        po_board("4101", [PO | {"bsn": ids[0]}, PO | {"bsn": "111222334"}, PO | {"bsn": ids[1]}]),  # row 2: elfproef
        po_board("4102", [PO | {"bsn": ids[2], "postcode": "0901AB"}, PO | {"bsn": ids[3]}]),  # row 1: postcode
        po_board("4103", [PO | {"bsn": ids[4]}]),  # nothing wrong
    ], ignore_index=True)
    lists = pd.concat([
        waitlist("wachtlijst_hoogeveen", "jeugdhulp/hoogeveen/wachtlijst_2026-09-28.csv",
                 [WAITLIST | {"bsn": ids[5], "zorgaanbieder_agb": "1234"},  # corrected in the next delivery
                  WAITLIST | {"bsn": ids[6], "zorgaanbieder_agb": "1234"}], "1"),  # never corrected
        waitlist("wachtlijst_hoogeveen", "jeugdhulp/hoogeveen/wachtlijst_2026-10-05.csv",
                 [WAITLIST | {"bsn": ids[5]}], "2"),
        waitlist("wachtlijst_meppel", "jeugdhulp/meppel/wachtlijst.xlsx",
                 [WAITLIST | {"bsn": ids[7], "geboortedatum": "2012-02-01", "woongemeente_code": "GM0119",
                              "aanmelddatum": "2026-03-01",
                              "besluitdatum": "2026-03-15", "intakedatum": "2026-04-01", "startdatum": "2026-05-01",
                              "einddatum": "2026-07-01"}], "3"),
    ], ignore_index=True)
    result = night.run(po, lists)
    assert result.success
    return night, result, ids


# --------------------------------------------------------------------------- feedback files


def test_a_feedback_file_holds_only_its_partners_rows(first_night):
    night, _, _ = first_night
    board_1, board_2 = night.feedback("bestuur_4101"), night.feedback("bestuur_4102")
    assert board_1[["Levering", "Rij", "Kolom", "Regel"]].values.tolist() == [
        ["po/bestuur_4101.csv", "2", "BSN", "bsn_elfproef"]]
    assert board_2[["Levering", "Rij", "Kolom", "Regel"]].values.tolist() == [
        ["po/bestuur_4102.csv", "1", "Postcode", "postcode_format"]]
    hoogeveen = night.feedback("wachtlijst_hoogeveen")
    assert set(hoogeveen["Levering"]) == {"jeugdhulp/hoogeveen/wachtlijst_2026-09-28.csv"}
    assert set(hoogeveen["Bron"]) == {"Gemeente Hoogeveen"}


def test_a_partner_whose_rows_all_passed_gets_an_empty_list(first_night):
    night, _, _ = first_night
    for partner in ("bestuur_4103", "wachtlijst_meppel"):
        feedback = night.feedback(partner)
        assert feedback.empty and list(feedback.columns)[:3] == ["Bron", "Levering", "Rij"], partner


def test_a_row_valid_in_a_later_delivery_is_marked_corrected(first_night):
    night, _, _ = first_night
    hoogeveen = night.feedback("wachtlijst_hoogeveen").set_index("Rij")
    assert hoogeveen.loc["1", "Later gecorrigeerd"] == "ja"
    assert hoogeveen.loc["2", "Later gecorrigeerd"] == "nee"


def test_every_line_says_how_to_fix_it_in_dutch(first_night):
    night, _, _ = first_night
    [line] = night.feedback("bestuur_4101").to_dict("records")
    assert line["Hoe op te lossen"] == RULE_FIXES["bsn_elfproef"]
    assert line["Melding"].startswith("bsn is geen geldig BSN")


def test_every_rule_has_a_fix_for_the_partner():
    assert set(RULE_FIXES) == set(RULES)
    assert all(text.strip() for text in RULE_FIXES.values())


def test_no_identifier_of_any_pupil_is_in_a_feedback_file(first_night):
    night, _, ids = first_night
    files = night.files()
    assert any(name.endswith(".xlsx") for name in files) and any(name.endswith(".csv") for name in files)
    for name, data in files.items():
        text = data.decode("utf-8", errors="ignore") if not name.endswith(".xlsx") else _xlsx_text(data)
        for value in [*ids, "111222334", "0901AB", "Jansen", "Anna", "15-03-2014"]:
            assert value not in text, (name, value)


def _xlsx_text(data: bytes) -> str:
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
    return "\n".join(";".join("" if v is None else str(v) for v in row) for row in sheet.iter_rows(values_only=True))


def test_the_workbook_holds_the_same_lines_as_the_csv(first_night):
    night, _, _ = first_night
    data = night.files()["wachtlijst_hoogeveen/afgekeurde_rijen.xlsx"]
    rows = list(openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    header = next(i for i, row in enumerate(rows) if row and row[0] == "Bron")
    assert [str(v) for v in rows[header][:3]] == ["Bron", "Levering", "Rij"]
    assert len([r for r in rows[header + 1:] if any(r)]) == len(night.feedback("wachtlijst_hoogeveen"))


def test_the_same_night_again_rewrites_nothing(first_night):
    night, result, _ = first_night
    before = night.files()
    assert night.run(result.output_for_node("po_transfers_raw"),
                     result.output_for_node("youth_care_waitlist_raw")).success
    assert night.files() == before


def test_each_file_of_a_per_file_source_is_its_own_partner():
    region = load_region(DEMO_REGION)
    assert partner_of("vo_verzuim", region.sources["vo_verzuim"], "vo/verzuim_07NU00.csv") == "07NU00"
    assert partner_of("vo_inschrijvingen", region.sources["vo_inschrijvingen"], "vo/inschrijvingen_07NU00.csv") \
        == "07NU00"
    hoogeveen = region.sources["wachtlijst_hoogeveen"]
    assert partner_of("wachtlijst_hoogeveen", hoogeveen, "jeugdhulp/hoogeveen/x.csv") == "wachtlijst_hoogeveen"


# --------------------------------------------------------------------------- the quarantine in the UI


def test_the_night_s_quarantined_rows_are_a_table_on_the_validated_asset(first_night):
    _, result, _ = first_night
    [materialization] = [m for m in result.get_asset_materialization_events()
                         if m.asset_key == dg.AssetKey("po_transfers")]
    metadata = materialization.materialization.metadata
    records = metadata["quarantine_table"].value.records
    assert [(r.data["delivery"], r.data["row"], r.data["column"], r.data["rule"]) for r in records] == [
        ("po/bestuur_4101.csv", 2, "bsn", "bsn_elfproef"), ("po/bestuur_4102.csv", 1, "postcode", "postcode_format")]
    assert [c.name for c in metadata["quarantine_table"].value.schema.columns] == [
        "source", "delivery", "row", "column", "rule", "message"]


def test_the_quarantine_table_shows_fifty_rows_and_says_how_many_more():
    rejects = pd.DataFrame({"source_id": "s", "delivery": "d.csv", "delivery_row": range(1, 131), "column": "bsn",
                            "rule": "bsn_elfproef", "message": "bsn is geen geldig BSN"})
    assert len(quarantine_table(rejects).value.records) == 50
    assert "first 50 of 130" in quarantine_shown(rejects) and "80 more" in quarantine_shown(rejects)


def test_anything_shaped_like_an_identifier_or_a_birth_date_is_masked():
    rejects = pd.DataFrame({"source_id": ["s"], "delivery": ["export_123456782_2026-10-05.csv"], "delivery_row": [1],
                            "column": ["bsn"], "rule": ["bsn_elfproef"],
                            "message": ["waarde 111222334 of 15-03-2014 of 2014-03-15 of 12345678"]})
    [record] = quarantine_table(rejects).value.records
    shown = " ".join(str(v) for v in record.data.values())
    for value in ("123456782", "111222334", "15-03-2014", "2014-03-15", "12345678"):
        assert value not in shown
    assert record.data["delivery"].endswith("_2026-10-05.csv")  # when it was delivered stays readable
    assert masked("rij 12 van 34") == "rij 12 van 34"


# --------------------------------------------------------------------------- row_rejects


def _row_rejects(result) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations()
                    if e.check_name == "row_rejects" and e.asset_key == dg.AssetKey("youth_care_waitlist")]
    return evaluation


def _waitlist_with_rejects(total: int, bad: int) -> pd.DataFrame:
    rows = [WAITLIST | {"bsn": bsn} | ({"zorgaanbieder_agb": "1234"} if i < bad else {})
            for i, bsn in enumerate(valid_bsns(total))]
    return waitlist("wachtlijst_hoogeveen", "jeugdhulp/hoogeveen/wachtlijst.csv", rows, "4")


@pytest.mark.parametrize(("total", "bad", "passed", "severity"), [
    (200, 3, True, dg.AssetCheckSeverity.WARN),  # 1.5 %: a normal night, green
    (100, 10, False, dg.AssetCheckSeverity.WARN),  # 10 %: above the warn share
    (10, 3, False, dg.AssetCheckSeverity.ERROR),  # 30 %: above the error share
])
def test_row_rejects_passes_below_the_warn_share_warns_above_it_and_errors_above_the_error_share(
        night, total, bad, passed, severity):
    result = night.run(po_board("4101", [PO]), _waitlist_with_rejects(total, bad))
    check = _row_rejects(result)
    assert (check.passed, check.severity) == (passed, severity), check.description


def test_the_warn_share_comes_from_the_region_file(tmp_path, region_path):
    document = yaml.safe_load(region_path.read_text(encoding="utf-8"))
    document["validation"] = {"warn_reject_share": 0.01, "max_reject_share": 0.2}
    region_path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    result = Night(tmp_path, region_path).run(po_board("4101", [PO]), _waitlist_with_rejects(200, 3))
    check = _row_rejects(result)
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)


def test_a_warn_share_above_the_error_share_is_refused(region_path):
    document = yaml.safe_load(region_path.read_text(encoding="utf-8"))
    document["validation"] = {"warn_reject_share": 0.3, "max_reject_share": 0.2}
    region_path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RegionConfigError, match="warn_reject_share"):
        load_region(region_path)
