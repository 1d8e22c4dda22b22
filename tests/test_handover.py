"""Warme overdracht (docs/handover.md): routing, consent, signals and delivery, on small hand-built frames.

Files are really written under ``tmp_path`` through the ``Outbox`` resource and read back as a
school would: CSV text, XLSX cells with openpyxl, and the manifest.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
import zipfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from assets.overdracht.handover import (
    CONSENT_FIELDS,
    blank_without_consent,
    brin_segment,
    po_vo_handover,
    routed_transfers,
    swv_signal_overview,
    vo_mbo_handover,
)
from assets.overdracht.handover_assets import PO_VO, VO_MBO, deliver_handover, po_vo_handovers, vo_mbo_handovers
from connectors.outbox import Outbox, sha256
from connectors.region_config import RegionConfig
from schemas.consent import consent_given
from schemas.datasets import MODELS
from schemas.vocabulary import GEEN_ONDERSTEUNINGSBEHOEFTE, GEEN_TOESTEMMING, NIET_GELEVERD
from tests.conftest import DEMO_REGION

E = pd.Timestamp("2026-10-05")  # after the TLV date (1 June) of school year 2026-2027
TLV_DATE = "06-01"
YEAR = "2026-2027"

ANNA, BRAM, CAS, DIRK, EVA, FEMKE = "111222333", "111222345", "111222357", "111222369", "111222370", "111222382"
DIRK_ONR = "101222331"
BRAM_SECRET = "GEHEIM-bram-dyslexie-en-angst"
BRAM_INSTEMMING = "2026-02-17"  # a date no other field holds


def _dtype(column) -> str:
    dtype = str(column.dtype)
    if dtype.startswith("datetime64"):
        return "datetime64[ns]"
    return {"boolean": "boolean", "Int64": "Int64", "int64": "int64", "float64": "float64"}.get(dtype, "str")


def typed(dataset: str, rows: list[dict], *, delivery: str = "levering.csv", sha: str = "a" * 64) -> pd.DataFrame:
    """Rows in the validated dataset's columns and dtypes, with provenance, as the validated assets deliver."""
    columns = MODELS[dataset].to_schema().columns
    provenance = {"source_id": dataset, "delivery": delivery, "delivery_sha256": sha,
                  "fetched_at": "2026-10-05T01:00:00+00:00"}
    data = {name: [{**provenance, "delivery_row": i + 1, **row}.get(name) for i, row in enumerate(rows)]
            for name in columns}
    frame = pd.DataFrame(data).astype({name: _dtype(col) for name, col in columns.items()})
    return frame.assign(buiten_regio=pd.array([False] * len(frame), dtype="boolean"))


def transfer(bsn: str | None, achternaam: str, *, school: str | None = "01AB00", aangemeld: str | None = "2026-03-27",
             onderwijsnummer: str | None = None, **fields) -> dict:
    return {"bsn": bsn, "onderwijsnummer": onderwijsnummer, "voornaam": "Kim", "achternaam": achternaam,
            "geboortedatum": pd.Timestamp("2014-05-01"), "postcode": "7901AA", "woongemeente_code": "GM0118",
            "ouder_email": f"ouder.{achternaam.lower()}@example.nl", "ouder_telefoon": "0612345678",
            "po_brin6": "09XY00", "vo_brin6": school, "aanmelddatum": pd.Timestamp(aangemeld) if aangemeld else None,
            "schooljaar": YEAR, "voorlopig_advies": "vmbo_gt", "toets_advies": "vmbo_gt",
            "definitief_advies": "vmbo_gt",
            "ondersteuningsbehoefte": False, "opp": False, "toestemming_ouders": True,
            "toestemming_datum": pd.Timestamp("2026-03-01"), **fields}


def po_rows() -> list[dict]:
    return [
        transfer(ANNA, "Aalders", ondersteuningsbehoefte=True, opp=True,
                 opp_instemming_datum=pd.Timestamp("2026-01-20"), ondersteuning_details="extra tijd bij toetsen",
                 jeugdhulp_betrokken=False),
        transfer(BRAM, "Bakker", school="02CD00", definitief_advies="vso", voorlopig_advies="vso", toets_advies="vso",
                 ondersteuningsbehoefte=True, opp=True, opp_instemming_datum=pd.Timestamp(BRAM_INSTEMMING),
                 ondersteuning_details=BRAM_SECRET, jeugdhulp_betrokken=True, toestemming_ouders=False,
                 toestemming_datum=None),
        transfer(CAS, "Claassen", school="03EF00", aangemeld=None),
        transfer(None, "Dijkstra", onderwijsnummer=DIRK_ONR, ondersteuning_details="DIRK-ongedateerd",
                 toestemming_datum=None),
        transfer(EVA, "Evers", ondersteuning_details="EVA-conflict"),
    ]


def po_transfers(rows: list[dict] | None = None, **kwargs) -> pd.DataFrame:
    return typed("po_transfers", po_rows() if rows is None else rows, **kwargs)


CONFLICTS = pd.DataFrame({"pupil_key": [f"bsn:{EVA}"], "rule": ["conflicting_birthdate"]})
NO_CONFLICTS = pd.DataFrame({"pupil_key": pd.Series([], dtype="str")})


def handover(frame: pd.DataFrame | None = None, *, conflicts: pd.DataFrame = CONFLICTS, on: pd.Timestamp = E,
             enrolments: pd.DataFrame | None = None):
    return po_vo_handover(po_transfers() if frame is None else frame,
                          typed("vo_enrolment", []) if enrolments is None else enrolments, conflicts,
                          evaluation_date=on, tlv_deadline=TLV_DATE, school_year_start="08-01")


def deliver(outbox: Outbox, frame: pd.DataFrame | None = None, **kwargs) -> pd.DataFrame:
    result = deliver_handover(outbox, PO_VO, handover(frame, **kwargs), {"swv": "VO2203"}, year_key="schooljaar")
    return pd.DataFrame(result)


def school_folder(root: Path, school: str, year: str = YEAR) -> Path:
    return root / "overdracht" / "po-vo" / year / school


def read_csv(path: Path) -> list[dict]:
    text = path.read_bytes().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def xlsx_rows(path: Path) -> list[list]:
    sheet = load_workbook(path).active
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def all_text(root: Path) -> str:
    """Every byte under the outbox as text: plain files as they are, XLSX unzipped (cells live in XML)."""
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as archive:
                parts += [archive.read(name).decode("utf-8") for name in archive.namelist()]
        else:
            parts.append(path.read_bytes().decode("utf-8-sig"))
    return "\n".join(parts)


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(root=str(tmp_path / "outbox"))


# ---------------------------------------------------------------------------------------------
# Routing (domain.md §2.1)


def test_each_pupil_is_only_in_the_file_of_the_school_registered_at(outbox: Outbox):
    deliver(outbox)
    root = Path(outbox.root)
    anna_school = read_csv(school_folder(root, "01AB00") / "overdracht.csv")
    bram_school = read_csv(school_folder(root, "02CD00") / "overdracht.csv")
    assert sorted(r["Achternaam"] for r in anna_school) == ["Aalders", "Dijkstra"]
    assert [r["BSN"] for r in bram_school] == [BRAM]
    assert ANNA not in (school_folder(root, "02CD00") / "overdracht.csv").read_text(encoding="utf-8-sig")


def test_no_folder_for_a_school_without_aanmeldingen(outbox: Outbox):
    deliver(outbox)
    schools = sorted(p.name for p in (Path(outbox.root) / "overdracht" / "po-vo" / YEAR).iterdir() if p.is_dir())
    assert schools == ["01AB00", "02CD00"]


def test_a_pupil_without_aanmelding_appears_nowhere(outbox: Outbox):
    deliver(outbox)
    text = all_text(Path(outbox.root))
    assert CAS not in text and "Claassen" not in text


def test_the_latest_aanmelding_wins_and_two_schools_on_one_day_go_to_neither():
    rows = [transfer(ANNA, "Aalders", school="01AB00", aangemeld="2026-03-25"),
            transfer(ANNA, "Aalders", school="02CD00", aangemeld="2026-04-10"),
            transfer(BRAM, "Bakker", school="01AB00", aangemeld="2026-03-25"),
            transfer(BRAM, "Bakker", school="02CD00", aangemeld="2026-03-25")]
    chosen, left_out = routed_transfers(po_transfers(rows), typed("vo_enrolment", []), NO_CONFLICTS,
                                        evaluation_date=E, school_year_start="08-01")
    assert chosen.loc[:, ["bsn", "school"]].values.tolist() == [[ANNA, "02CD00"]]
    assert left_out["pupils_registered_at_two_schools_same_day"] == 1


def test_a_school_whose_pupil_registered_elsewhere_gets_an_empty_file_and_keeps_the_old_version(outbox: Outbox):
    deliver(outbox)
    moved = [r | {"vo_brin6": "01AB00"} if r["bsn"] == BRAM else r for r in po_rows()]
    deliver(outbox, po_transfers(moved))
    folder = school_folder(Path(outbox.root), "02CD00")
    assert read_csv(folder / "overdracht.csv") == []
    assert json.loads((folder / "manifest.json").read_text())["files"]["overdracht.csv"]["rows"] == 0
    (archived,) = (folder / "_versies").iterdir()
    assert BRAM in (archived / "overdracht.csv").read_text(encoding="utf-8-sig")


def test_conflict_pupils_are_left_out(outbox: Outbox):
    result = handover()
    deliver(outbox)
    assert "EVA-conflict" not in all_text(Path(outbox.root))
    assert EVA not in result.table["BSN"].tolist()
    assert result.left_out["pupils_in_conflict"] == 1


# ---------------------------------------------------------------------------------------------
# Consent (domain.md §2.4, §7)


def test_a_no_consent_pupils_details_are_in_no_byte_of_any_file(outbox: Outbox):
    deliver(outbox)
    deliver(outbox, po_transfers([*po_rows(), transfer(FEMKE, "Fokkema")]))  # a new version: _versies too
    root = Path(outbox.root)
    text = all_text(root)
    assert BRAM_SECRET not in text
    assert "17-02-2026" not in text and BRAM_INSTEMMING not in text
    workbook_values = [v for p in root.rglob("*.xlsx") for row in xlsx_rows(p) for v in row]
    assert dt.datetime(2026, 2, 17) not in workbook_values
    assert BRAM_SECRET not in workbook_values


def test_a_no_consent_row_says_geen_toestemming_and_its_gated_cells_are_empty(outbox: Outbox):
    deliver(outbox)
    (row,) = read_csv(school_folder(Path(outbox.root), "02CD00") / "overdracht.csv")
    assert row["Reden leeg"] == GEEN_TOESTEMMING
    assert row["Ondersteuningsbehoeften"] == row["Jeugdhulp betrokken"] == row["Datum instemming OPP"] == ""
    assert row["OPP"] == "ja" and row["Extra ondersteuning"] == "ja"  # not consent-gated


def test_consent_without_a_date_is_no_consent():
    table = handover().table.set_index("Onderwijsnummer", drop=False)
    assert table.loc[DIRK_ONR, "Reden leeg"] == GEEN_TOESTEMMING
    assert pd.isna(table.loc[DIRK_ONR, "Ondersteuningsbehoeften"])


def test_with_consent_the_gated_fields_are_filled(outbox: Outbox):
    deliver(outbox)
    rows = {r["BSN"]: r for r in read_csv(school_folder(Path(outbox.root), "01AB00") / "overdracht.csv")}
    anna = rows[ANNA]
    assert anna["Ondersteuningsbehoeften"] == "extra tijd bij toetsen"
    assert anna["Datum instemming OPP"] == "20-01-2026" and anna["Jeugdhulp betrokken"] == "nee"
    assert anna["Reden leeg"] == ""


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([True, False, None]), st.booleans()), min_size=1, max_size=12))
def test_gated_fields_are_filled_exactly_when_consent_is_true_and_dated(consents):
    rows = [transfer(None, f"P{i}", onderwijsnummer=None, toestemming_ouders=given_, ondersteuning_details=f"d{i}",
                     jeugdhulp_betrokken=True, opp_instemming=True, opp_instemming_datum=pd.Timestamp("2026-01-02"),
                     toestemming_datum=pd.Timestamp("2026-03-01") if dated else None)
            for i, (given_, dated) in enumerate(consents)]
    frame = po_transfers(rows)
    consent = consent_given(frame)
    blanked = blank_without_consent(frame, consent)
    expected = [given_ is True and dated for given_, dated in consents]
    assert consent.tolist() == expected
    for field in CONSENT_FIELDS:
        assert blanked[field].notna().tolist() == expected


# ---------------------------------------------------------------------------------------------
# Signals (domain.md §2.4)


def signals(rows: list[dict], on: pd.Timestamp = E) -> dict[str, str | None]:
    table = handover(po_transfers(rows), conflicts=NO_CONFLICTS, on=on).table
    return dict(zip(table["Achternaam"], table["Signalen"].astype(object).where(table["Signalen"].notna(), None)))


def test_tlv_ontbreekt_fires_for_pro_or_vso_without_tlv_after_the_tlv_date():
    assert signals([transfer(ANNA, "A", definitief_advies="pro", voorlopig_advies="pro", toets_advies="pro"),
                    transfer(BRAM, "B", definitief_advies="vso")]) == {"A": "TLV_ONTBREEKT", "B": "TLV_ONTBREEKT"}


def test_tlv_ontbreekt_does_not_fire_before_the_tlv_date_or_with_a_tlv_or_another_advice():
    before = signals([transfer(ANNA, "A", definitief_advies="pro")], on=pd.Timestamp("2026-05-31"))
    with_tlv = signals([transfer(ANNA, "A", definitief_advies="pro", tlv_soort="pro",
                                 tlv_datum=pd.Timestamp("2026-05-15"))])
    havo = signals([transfer(ANNA, "A", definitief_advies="havo")])
    assert before == with_tlv == havo == {"A": None}


def test_cluster_1_or_2_is_routed_nationally_and_needs_no_swv_tlv():
    assert signals([transfer(ANNA, "A", definitief_advies="vso", cluster="2"),
                    transfer(BRAM, "B", cluster="cluster 1"),
                    transfer(CAS, "C", cluster="3")]) == {"A": "CLUSTER_LANDELIJK", "B": "CLUSTER_LANDELIJK", "C": None}


def test_opp_zonder_instemming_fires_for_an_opp_without_instemming_date():
    assert signals([transfer(ANNA, "A", opp=True),
                    transfer(BRAM, "B", opp=True, opp_instemming_datum=pd.Timestamp("2026-01-10")),
                    transfer(CAS, "C", opp=False)]) == {"A": "OPP_ZONDER_INSTEMMING", "B": None, "C": None}


def test_an_instemming_delivered_as_yes_without_a_date_counts_as_instemming():
    assert signals([transfer(ANNA, "A", opp=True, opp_instemming=True),
                    transfer(BRAM, "B", opp=True, opp_instemming=False)]) == {"A": None, "B": "OPP_ZONDER_INSTEMMING"}


def test_opp_zonder_instemming_is_counted_but_not_shown_without_consent():
    result = handover(po_transfers([transfer(ANNA, "A", opp=True, toestemming_ouders=False, definitief_advies="vso")]),
                      conflicts=NO_CONFLICTS)
    assert result.table["Signalen"].tolist() == ["TLV_ONTBREEKT"]
    overview = swv_signal_overview(result)[YEAR].set_index("Vestiging (BRIN)")
    assert overview.loc["01AB00", "OPP_ZONDER_INSTEMMING"] == 1
    assert overview.loc["Totaal", "Zonder toestemming"] == 1


# ---------------------------------------------------------------------------------------------
# Files and delivery guarantees


def test_xlsx_and_csv_hold_the_same_rows_and_the_workbook_has_a_frozen_filtered_header(outbox: Outbox):
    deliver(outbox)
    folder = school_folder(Path(outbox.root), "01AB00")
    csv_rows = read_csv(folder / "overdracht.csv")
    sheet = load_workbook(folder / "overdracht.xlsx").active
    header, *cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert header == list(csv_rows[0])
    assert [[r[h] for h in header] for r in csv_rows] == [
        ["" if v is None else v.strftime("%d-%m-%Y") if isinstance(v, dt.datetime) else str(v) for v in row]
        for row in cells
    ]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref.startswith("A1:")


def test_rows_are_sorted_by_surname_then_first_name(outbox: Outbox):
    rows = [transfer(ANNA, "de Wit", voornaam="Zoë"), transfer(BRAM, "Bakker", voornaam="Tim"),
            transfer(CAS, "bakker", voornaam="Sam")]
    table = handover(po_transfers(rows), conflicts=NO_CONFLICTS).table
    assert table["Roepnaam"].tolist() == ["Sam", "Tim", "Zoë"]


def test_the_manifest_matches_the_files_and_names_the_source_deliveries(outbox: Outbox):
    deliver(outbox, po_transfers(delivery="po/bestuur_noord.csv", sha="b" * 64))
    folder = school_folder(Path(outbox.root), "01AB00")
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256((folder / name).read_bytes())
    assert manifest["files"]["overdracht.csv"]["rows"] == 2
    assert manifest["schooljaar"] == YEAR and manifest["school"] == "01AB00"
    assert manifest["bronleveringen"] == [{"delivery": "po/bestuur_noord.csv", "sha256": "b" * 64}]
    assert "generated_at" in manifest
    assert ANNA not in json.dumps(manifest) and "Aalders" not in json.dumps(manifest)


def test_a_rerun_with_unchanged_input_rewrites_nothing(outbox: Outbox):
    deliver(outbox)
    files = sorted(p for p in Path(outbox.root).rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    time.sleep(1.01 - time.time() % 1)  # into the next second: no clock time may reach the bytes
    log = deliver(outbox)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert sorted(p for p in Path(outbox.root).rglob("*") if p.is_file()) == files
    assert not log["changed"].any()


def test_changed_input_writes_a_new_version_and_keeps_the_previous_one(outbox: Outbox):
    deliver(outbox)
    folder = school_folder(Path(outbox.root), "01AB00")
    old_csv = (folder / "overdracht.csv").read_bytes()
    old_fingerprint = json.loads((folder / "manifest.json").read_text())["fingerprint"]
    log = deliver(outbox, po_transfers([*po_rows(), transfer(FEMKE, "Fokkema")]))
    assert "Fokkema" in (folder / "overdracht.csv").read_text(encoding="utf-8-sig")
    assert (folder / "_versies" / old_fingerprint / "overdracht.csv").read_bytes() == old_csv
    assert set(log.loc[log["changed"], "school"]) == {"01AB00"}


@pytest.mark.parametrize("code", ["../x", "01AB00/../..", "01ab00", "01AB0", "", "..", "01AB00\n"])
def test_a_malicious_or_malformed_school_code_is_refused_before_anything_is_written(outbox: Outbox, code: str):
    frame = po_transfers([transfer(ANNA, "Aalders"), transfer(BRAM, "Bakker", school=code)])
    with pytest.raises(ValueError, match="refusing"):
        deliver(outbox, frame, conflicts=NO_CONFLICTS)
    assert not Path(outbox.root).exists() or not any(Path(outbox.root).rglob("*.csv"))


def test_brin_codes_of_4_and_6_characters_are_folder_names():
    assert brin_segment("25LJ") == "25LJ" and brin_segment("07NU00") == "07NU00"


def test_formula_text_arrives_neutralised(outbox: Outbox):
    payload = "=cmd|' /C calc'!A0"
    deliver(outbox, po_transfers([transfer(ANNA, payload, ondersteuning_details="@SUM(1+1)")]), conflicts=NO_CONFLICTS)
    folder = school_folder(Path(outbox.root), "01AB00")
    (row,) = read_csv(folder / "overdracht.csv")
    assert row["Achternaam"] == "'" + payload and row["Ondersteuningsbehoeften"] == "'@SUM(1+1)"
    sheet = load_workbook(folder / "overdracht.xlsx").active
    cells = {c.value: c.data_type for row in sheet.iter_rows(min_row=2) for c in row if isinstance(c.value, str)}
    assert cells["'" + payload] == "s" and cells["'@SUM(1+1)"] == "s"


# ---------------------------------------------------------------------------------------------
# VO -> MBO (domain.md §6)


def leaver(bsn: str, *, mbo: str | None = "25LJ", crebo: str | None = "25168", **fields) -> dict:
    return {"bsn": bsn, "geboortedatum": pd.Timestamp("2009-04-01"), "woongemeente_code": "GM0119",
            "vo_brin6": "01AB00", "vo_niveau": "vmbo_k", "vo_diploma": True,
            "uitstroomdatum": pd.Timestamp("2026-07-10"),
            "mbo_brin": mbo, "crebo": crebo, "mbo_niveau": 2, "aanmelddatum": pd.Timestamp("2026-03-15"),
            "vva_status": "ingeschreven", "status_datum": pd.Timestamp("2026-08-20"), **fields}


def enrolment(bsn: str, achternaam: str) -> dict:
    return {"bsn": bsn, "voornaam": "Sam", "achternaam": achternaam, "geboortedatum": pd.Timestamp("2009-04-01"),
            "woongemeente_code": "GM0119", "vo_brin6": "01AB00", "leerjaar": 4, "onderwijsniveau": "vmbo_k",
            "inschrijfdatum": pd.Timestamp("2022-08-22")}


def mbo_handover(leavers: list[dict], conflicts: pd.DataFrame = CONFLICTS):
    return vo_mbo_handover(
        typed("mbo_outflow", leavers, delivery="vva/api", sha="c" * 64),
        po_transfers(),
        typed("vo_enrolment", [enrolment(ANNA, "Aalders"), enrolment(BRAM, "Bakker"), enrolment(FEMKE, "Fokkema")],
              delivery="vo/inschrijvingen.csv", sha="d" * 64),
        conflicts, school_year_start="08-01", evaluation_date=E)


def test_before_enrolment_each_leaver_goes_to_every_institution_applied_to_and_nowhere_else(outbox: Outbox):
    pending = {"vva_status": "aanmelding_ontvangen"}
    result = mbo_handover([leaver(ANNA, **pending), leaver(ANNA, mbo="01OE", crebo="25180", **pending),
                           leaver(BRAM, mbo="01OE"), leaver(CAS, mbo=None), leaver(EVA)])
    deliver_handover(outbox, VO_MBO, result, {"swv": "VO2203"}, year_key="uitstroomjaar")
    root = Path(outbox.root) / "overdracht" / "vo-mbo" / "2026"
    assert sorted(p.name for p in root.iterdir()) == ["01OE", "25LJ"]
    assert [r["BSN"] for r in read_csv(root / "25LJ" / "overdracht.csv")] == [ANNA]
    assert sorted(r["BSN"] for r in read_csv(root / "01OE" / "overdracht.csv")) == [ANNA, BRAM]
    assert CAS not in all_text(Path(outbox.root)) and EVA not in all_text(Path(outbox.root))


def test_leaver_rows_carry_vva_label_names_and_consent_gated_support_from_the_po_dossier():
    table = mbo_handover([leaver(ANNA), leaver(BRAM), leaver(FEMKE)]).table.set_index("BSN")
    assert table.loc[ANNA, "VVA-status"] == "ingeschreven" and table.loc[ANNA, "VO-niveau"] == "VMBO KL"
    assert table.loc[ANNA, "Achternaam"] == "Aalders" and table.loc[ANNA, "MBO-niveau"] == 2
    assert table.loc[ANNA, "Ondersteuningsbehoeften"] == "extra tijd bij toetsen"
    assert pd.isna(table.loc[ANNA, "Reden leeg"])
    assert table.loc[BRAM, "Reden leeg"] == GEEN_TOESTEMMING and pd.isna(table.loc[BRAM, "Ondersteuningsbehoeften"])
    assert table.loc[FEMKE, "Reden leeg"] == NIET_GELEVERD and pd.isna(table.loc[FEMKE, "OPP"])


def test_a_leaver_who_has_not_left_yet_belongs_to_the_year_the_application_school_year_ends():
    result = mbo_handover([leaver(ANNA, uitstroomdatum=None, aanmelddatum=pd.Timestamp("2025-11-03")),
                           leaver(BRAM, uitstroomdatum=None, aanmelddatum=pd.Timestamp("2026-03-30"))])
    assert result.table["year"].tolist() == ["2026", "2026"]


def test_vo_mbo_manifest_names_outflow_dossier_and_enrolment_deliveries(outbox: Outbox):
    deliver_handover(outbox, VO_MBO, mbo_handover([leaver(ANNA)]), {"swv": "VO2203"}, year_key="uitstroomjaar")
    manifest = json.loads((Path(outbox.root) / "overdracht/vo-mbo/2026/25LJ/manifest.json").read_text())
    assert manifest["uitstroomjaar"] == "2026"
    assert {d["delivery"] for d in manifest["bronleveringen"]} == {"vva/api", "levering.csv", "vo/inschrijvingen.csv"}


# ---------------------------------------------------------------------------------------------
# The assets


def _upstream(name: str, frame: pd.DataFrame) -> dg.AssetsDefinition:
    @dg.asset(name=name, io_manager_key="lake_io_manager")
    def upstream() -> pd.DataFrame:
        return frame

    return upstream


def test_the_assets_deliver_and_report_counts_and_codes_only(tmp_path: Path):
    inputs = {
        "po_transfers": po_transfers(),
        "pupil_conflicts": CONFLICTS,
        "mbo_outflow": typed("mbo_outflow", [leaver(ANNA), leaver(BRAM, mbo="01OE")]),
        "vo_enrolment": typed("vo_enrolment", [enrolment(ANNA, "Aalders")]),
        "vo_absence": typed("vo_absence", []),
    }
    result = dg.materialize(
        [*(_upstream(name, frame) for name, frame in inputs.items()), po_vo_handovers, vo_mbo_handovers],
        resources={
            "region_config": RegionConfig(path=str(DEMO_REGION), evaluation_date=E.date().isoformat()),
            "outbox": Outbox(root=str(tmp_path / "outbox")),
            "lake_io_manager": dg.InMemoryIOManager(),
        },
    )
    assert result.success
    po = result.asset_materializations_for_node("po_vo_handovers")[0].metadata
    mbo = result.asset_materializations_for_node("vo_mbo_handovers")[0].metadata
    assert po["handover_rows"].value == 3 and po["schools"].value == 2
    assert po["rows_per_school"].value == {YEAR: {"01AB00": 2, "02CD00": 1}}
    assert po["flag_counts"].value == {"TLV_ONTBREEKT": 1, "OPP_ZONDER_INSTEMMING": 0, "CLUSTER_LANDELIJK": 0}
    assert po["consent_blanked_rows"].value == 2
    assert mbo["rows_per_school"].value == {"2026": {"01OE": 1, "25LJ": 1}}
    everything = repr(po) + repr(mbo)
    for personal in (ANNA, BRAM, DIRK_ONR, "Aalders", "Bakker", BRAM_SECRET, "example.nl"):
        assert personal not in everything
    delivered = result.output_for_node("po_vo_handovers")
    assert list(delivered.columns) == ["school", "year", "file", "rows", "sha256", "changed", "folder"]
    assert set(delivered["school"]) == {"01AB00", "02CD00", "VO2203"}
    assert (tmp_path / "outbox/overdracht/po-vo" / YEAR / "swv_signalen.xlsx").exists()


# ---------------------------------------------------------------------------------------------
# What the school reads: names, the real reason for empty cells, the VO side's knowledge, print setup


def test_school_names_stand_beside_their_codes_and_an_unknown_code_says_so(outbox: Outbox):
    frame = po_transfers([transfer(ANNA, "Aalders", po_brin6="00DX00")])
    deliver(outbox, frame, conflicts=NO_CONFLICTS)
    folder = school_folder(Path(outbox.root), "01AB00")
    (row,) = read_csv(folder / "overdracht.csv")
    assert (row["School van herkomst (BRIN)"], row["School van herkomst"]) == ("00DX00", "Vrije School Assen")
    assert (row["Aangemeld bij (BRIN)"], row["Aangemeld bij"]) == ("01AB00", "(naam onbekend)")
    assert json.loads((folder / "manifest.json").read_text())["schoolnaam"] == "(naam onbekend)"


def test_an_mbo_institution_is_named_from_the_region_file(outbox: Outbox):
    deliver_handover(outbox, VO_MBO, mbo_handover([leaver(ANNA)]), {"swv": "VO2203"}, year_key="uitstroomjaar",
                     institutions={"25LJ": "Voorbeeldcollege"})
    folder = Path(outbox.root) / "overdracht/vo-mbo/2026/25LJ"
    assert json.loads((folder / "manifest.json").read_text())["schoolnaam"] == "Voorbeeldcollege"
    assert "Voorbeeldcollege" in load_workbook(folder / "overdracht.xlsx").active.oddHeader.left.text


def test_reden_leeg_states_the_real_reason():
    dated = {"toestemming_ouders": True, "toestemming_datum": pd.Timestamp("2026-03-01")}
    refused = {"toestemming_ouders": False, "toestemming_datum": None}
    rows = [
        transfer(ANNA, "A", ondersteuningsbehoefte=False, opp=False, **refused),
        transfer(BRAM, "B", ondersteuningsbehoefte=True, **refused),
        transfer(CAS, "C", ondersteuningsbehoefte=True, **dated),
        transfer(DIRK_ONR.replace("10", "11", 1), "D", ondersteuningsbehoefte=True, ondersteuning_details="x", **dated),
    ]
    table = handover(po_transfers(rows), conflicts=NO_CONFLICTS).table.set_index("Achternaam")
    assert table.loc["A", "Reden leeg"] == GEEN_ONDERSTEUNINGSBEHOEFTE
    assert table.loc["B", "Reden leeg"] == GEEN_TOESTEMMING
    assert table.loc["C", "Reden leeg"] == NIET_GELEVERD
    assert pd.isna(table.loc["D", "Reden leeg"])


def vo_support(bsn: str, achternaam: str, **fields) -> dict:
    return enrolment(bsn, achternaam) | {"ondersteuningsbehoefte": True, "opp": True,
                                         "ondersteuning_details": f"VO-details {achternaam}", **fields}


def test_the_vo_mbo_file_carries_what_the_vo_school_delivered_with_its_consent_and_names_the_source():
    enrolments = [vo_support(ANNA, "Aalders", toestemming_ouders=True, toestemming_datum=pd.Timestamp("2026-02-01")),
                  vo_support(BRAM, "Bakker", toestemming_ouders=False)]
    result = vo_mbo_handover(typed("mbo_outflow", [leaver(ANNA), leaver(BRAM), leaver(FEMKE)]), po_transfers([]),
                             typed("vo_enrolment", enrolments), NO_CONFLICTS, school_year_start="08-01",
                             evaluation_date=E)
    table = result.table.set_index("BSN")
    assert table.loc[ANNA, "Bron ondersteuning"] == "VO-school 01AB00"
    assert table.loc[ANNA, "Ondersteuningsbehoeften"] == "VO-details Aalders" and table.loc[ANNA, "OPP"]
    assert pd.isna(table.loc[ANNA, "Reden leeg"])
    assert pd.isna(table.loc[BRAM, "Ondersteuningsbehoeften"]) and table.loc[BRAM, "Reden leeg"] == GEEN_TOESTEMMING
    assert table.loc[FEMKE, "Bron ondersteuning"].startswith(NIET_GELEVERD)
    assert table.loc[FEMKE, "Reden leeg"] == NIET_GELEVERD


def test_without_a_vo_record_the_po_dossier_is_the_named_source():
    table = mbo_handover([leaver(ANNA)]).table.set_index("BSN")
    assert table.loc[ANNA, "Bron ondersteuning"] == f"PO-dossier {YEAR}"
    assert table.loc[ANNA, "Ondersteuningsbehoeften"] == "extra tijd bij toetsen"


def absence_week(bsn: str, week: str, unexcused: float, excused: float = 0.0, school: str = "01AB00") -> dict:
    return {"bsn": bsn, "vo_brin6": school, "week_start": pd.Timestamp(week), "uren_ongeoorloofd": unexcused,
            "uren_geoorloofd": excused}


def test_the_vo_mbo_file_sums_the_absence_of_the_last_school_year_and_says_when_none_was_delivered(outbox: Outbox):
    absence = typed("vo_absence", [absence_week(ANNA, "2026-03-02", 4.5, 1.0), absence_week(ANNA, "2026-05-11", 2.0),
                                   absence_week(ANNA, "2025-05-12", 30.0)])  # the year before: not counted
    leavers = [leaver(ANNA), leaver(BRAM), leaver(CAS, vo_brin6="02CD00")]
    result = vo_mbo_handover(typed("mbo_outflow", leavers), po_transfers([]), typed("vo_enrolment", []),
                             NO_CONFLICTS, school_year_start="08-01", evaluation_date=E, vo_absence=absence)
    table = result.table.set_index("BSN")
    assert table.loc[ANNA, ["Verzuim schooljaar", "Uren ongeoorloofd verzuim", "Uren geoorloofd verzuim"]].tolist() == [
        "2025-2026", 6.5, 1.0]
    assert table.loc[BRAM, "Uren ongeoorloofd verzuim"] == 0.0  # the school delivered absence: none for Bram
    assert table.loc[CAS, "Verzuim schooljaar"] == "2025-2026 niet geleverd"
    assert pd.isna(table.loc[CAS, "Uren ongeoorloofd verzuim"])

    deliver_handover(outbox, VO_MBO, result, {"swv": "VO2203"}, year_key="uitstroomjaar")
    rows = {r["BSN"]: r for r in read_csv(Path(outbox.root) / "overdracht/vo-mbo/2026/25LJ/overdracht.csv")}
    assert rows[ANNA]["Uren ongeoorloofd verzuim"] == "6,5"  # a decimal comma for Dutch Excel


def test_the_workbook_prints_on_a4_landscape_fitted_to_width_with_the_header_row_on_every_page(outbox: Outbox):
    long_text = "Dyslexieverklaring: extra tijd bij toetsen. " * 4
    deliver(outbox, po_transfers([transfer(ANNA, "Aalders", ondersteuning_details=long_text)]), conflicts=NO_CONFLICTS)
    sheet = load_workbook(school_folder(Path(outbox.root), "01AB00") / "overdracht.xlsx").active
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.paperSize == 9
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    # Fitted to the width: as many pages across as keep the text readable, each with the pupil's name.
    assert sheet.page_setup.fitToWidth >= 1 and sheet.page_setup.fitToHeight == 0
    assert sheet.page_setup.pageOrder == "overThenDown"
    assert sheet.print_title_rows == "$1:$1" and sheet.print_title_cols == "$C:$E"
    assert sheet.oddHeader.left.text.startswith("Warme overdracht PO-VO 2026-2027: 01AB00")
    assert "&P" in sheet.oddFooter.right.text
    header = [cell.value for cell in sheet[1]]
    details = sheet.cell(row=2, column=header.index("Ondersteuningsbehoeften") + 1)
    assert details.value == long_text and details.alignment.wrap_text  # wrapped, not cut
    assert sheet.column_dimensions[details.column_letter].width < len(long_text)
