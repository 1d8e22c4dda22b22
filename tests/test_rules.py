"""Every validation rule passes a good value and quarantines a bad one under its own name.

Each case builds a small raw frame (text values, canonical names, provenance) of two rows from a
valid baseline row: one with the good value, one with the bad value. The good row must come out
valid; the bad row must be quarantined with the rule on the expected column.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.nl import bsn as stdnum_bsn
from stdnum.nl import onderwijsnummer as stdnum_onderwijsnummer

from schemas.checks import RULES, bsn_elfproef, onderwijsnummer_valid
from schemas.datasets import MODELS, canonical_fields, dataset_schema
from schemas.validate import validate_dataset
from settings.region import load_region
from tests.conftest import DEMO_REGION, PROJECT

EVALUATION_DATE = dt.date(2026, 10, 5)
FETCHED_AT = "2026-10-04T23:30:00+00:00"  # 5 October, 01:30 in Amsterdam
REGION = load_region(DEMO_REGION)

SOURCE_OF = {
    "po_transfers": "po_overdracht",
    "youth_care_waitlist": "wachtlijst_hoogeveen",
    "vo_enrolment": "vo_inschrijvingen",
    "vo_absence": "vo_verzuim",
    "mbo_outflow": "mbo_vva",
}

# One valid row per dataset, as delivered: dd-mm-jjjj for the LAS and Hoogeveen sources, ISO for VVA.
BASELINE = {
    "po_transfers": {
        "bsn": "111222333", "voornaam": "Anna", "achternaam": "Jansen", "geboortedatum": "15-03-2014",
        "postcode": "7901 AB", "woongemeente_code": "GM0118", "po_brin6": "04PP00", "vo_brin6": "19IW00",
        "aanmelddatum": "25-03-2026", "schooljaar": "2026-2027", "voorlopig_advies": "VMBO KL",
        "definitief_advies": "HAVO", "ondersteuningsbehoefte": "ja", "opp": "nee",
    },
    "youth_care_waitlist": {
        "bsn": "111222333", "geboortedatum": "01-02-2012", "woongemeente_code": "GM0118", "verwijzer": "02",
        "productcategorie": "45", "zorgaanbieder_agb": "12345678", "aanmelddatum": "01-03-2026",
        "besluitdatum": "15-03-2026", "intakedatum": "01-04-2026", "startdatum": "01-05-2026",
        "einddatum": "01-07-2026", "reden_beeindiging": "31",
    },
    "vo_enrolment": {
        "bsn": "111222333", "voornaam": "Daan", "tussenvoegsel": "de", "achternaam": "Vries",
        "geboortedatum": "01-02-2013", "postcode": "7941AA", "woongemeente_code": "GM0119", "vo_brin6": "02VA00",
        "leerjaar": "1", "onderwijsniveau": "HAVO", "inschrijfdatum": "01-08-2025",
    },
    "vo_absence": {
        "bsn": "111222333", "vo_brin6": "02VA00", "week_start": "28-09-2026", "uren_ongeoorloofd": "4",
        "uren_geoorloofd": "2,5",
    },
    "mbo_outflow": {
        "bsn": "111222333", "geboortedatum": "2010-05-01", "woongemeente_code": "GM0119", "vo_brin6": "02VA00",
        "vo_niveau": "vmbo_k", "vo_diploma": "ja", "uitstroomdatum": "2026-07-15", "mbo_brin": "25LJ",
        "crebo": "25080", "mbo_niveau": "2", "aanmelddatum": "2026-03-15", "vva_status": "ingeschreven",
        "status_datum": "2026-06-01",
    },
}


def raw_frame(
    dataset: str,
    rows: list[dict],
    *,
    source_id: str | None = None,
    delivery: str = "levering_1.csv",
    sha256: str = "a" * 64,
    fetched_at: str = FETCHED_AT,
    first_row: int = 1,
) -> pd.DataFrame:
    """A raw frame as ingest produces it: every canonical field as text (NA when empty), plus provenance."""
    fields = canonical_fields(dataset)
    frame = pd.DataFrame(
        {name: pd.Series([row.get(name) for row in rows], dtype="str") for name in fields}
    )
    frame["source_id"] = source_id or SOURCE_OF[dataset]
    frame["delivery"] = delivery
    frame["delivery_row"] = np.arange(first_row, first_row + len(rows), dtype="int64")
    frame["delivery_sha256"] = sha256
    frame["fetched_at"] = fetched_at
    return frame.astype({name: "str" for name in ("source_id", "delivery", "delivery_sha256", "fetched_at")})


def validate(dataset: str, raw: pd.DataFrame):
    return validate_dataset(dataset, raw, REGION, evaluation_date=EVALUATION_DATE)


def rules_of(result, delivery_row: int) -> set[tuple[str, str]]:
    rows = result.rejects[result.rejects["delivery_row"] == delivery_row]
    return set(zip(rows["rule"], rows["column"]))


def test_every_baseline_row_is_valid():
    for dataset, row in BASELINE.items():
        result = validate(dataset, raw_frame(dataset, [row]))
        assert result.rejects.empty, (dataset, result.rejects[["column", "rule"]].to_dict("records"))
        assert len(result.valid) == 1


CASES = [
    # (rule, dataset, good overrides, bad overrides, column reported)
    ("bsn_elfproef", "vo_enrolment", {"bsn": "111222333"}, {"bsn": "111222334"}, "bsn"),
    ("onderwijsnummer_valid", "vo_enrolment", {"bsn": None, "onderwijsnummer": "101222331"},
     {"bsn": None, "onderwijsnummer": "101222332"}, "onderwijsnummer"),
    ("one_identifier", "vo_enrolment", {"bsn": "111222333"}, {"bsn": None}, "bsn"),
    ("one_identifier", "mbo_outflow", {"bsn": None, "onderwijsnummer": "101222331"},
     {"bsn": "111222333", "onderwijsnummer": "101222331"}, "bsn"),
    ("one_identifier", "youth_care_waitlist", {"bsn": "111222333"}, {"bsn": None}, "bsn"),
    ("known_school", "po_transfers", {"po_brin6": "04PP00"}, {"po_brin6": "99ZZ00"}, "po_brin6"),
    ("known_school", "vo_absence", {"vo_brin6": "19IW02"}, {"vo_brin6": "99ZZ01"}, "vo_brin6"),
    ("brin6_format", "vo_enrolment", {"vo_brin6": "02va00"}, {"vo_brin6": "2VA00"}, "vo_brin6"),
    ("brin4_format", "mbo_outflow", {"mbo_brin": "25LJ"}, {"mbo_brin": "25L"}, "mbo_brin"),
    ("postcode_format", "vo_enrolment", {"postcode": "nl-7941 aa"}, {"postcode": "7941SA"}, "postcode"),
    ("postcode_format", "po_transfers", {"postcode": "7901AB"}, {"postcode": "0901AB"}, "postcode"),
    ("gemeentecode_format", "mbo_outflow", {"woongemeente_code": "GM1690    "}, {"woongemeente_code": "GM169"},
     "woongemeente_code"),
    ("agb_format", "youth_care_waitlist", {"zorgaanbieder_agb": "12345678"}, {"zorgaanbieder_agb": "1234567"},
     "zorgaanbieder_agb"),
    ("crebo_format", "mbo_outflow", {"crebo": "25080"}, {"crebo": "2508"}, "crebo"),
    ("required", "vo_enrolment", {"inschrijfdatum": "01-08-2025"}, {"inschrijfdatum": None}, "inschrijfdatum"),
    ("required", "vo_absence", {"uren_ongeoorloofd": "0"}, {"uren_ongeoorloofd": None}, "uren_ongeoorloofd"),
    ("not_in_future", "vo_absence", {"week_start": "05-10-2026"}, {"week_start": "06-10-2026"}, "week_start"),
    ("not_in_future", "youth_care_waitlist", {"einddatum": "01-10-2026"}, {"einddatum": "01-11-2026"}, "einddatum"),
    ("date_order", "youth_care_waitlist", {"startdatum": "01-03-2026"}, {"startdatum": "28-02-2026"}, "startdatum"),
    ("date_order", "youth_care_waitlist", {"besluitdatum": "01-03-2026"}, {"besluitdatum": "28-02-2026"},
     "besluitdatum"),
    ("date_order", "youth_care_waitlist", {"einddatum": "01-05-2026"}, {"einddatum": "30-04-2026"}, "einddatum"),
    ("date_order", "vo_enrolment", {"uitschrijfdatum": "01-08-2025"}, {"uitschrijfdatum": "31-07-2025"},
     "uitschrijfdatum"),
    ("date_order", "po_transfers", {"aanmelddatum": "01-08-2024"}, {"aanmelddatum": "31-07-2024"}, "aanmelddatum"),
    ("date_order", "po_transfers", {"tlv_soort": "TLV PrO", "tlv_datum": "01-12-2025"},
     {"tlv_soort": "TLV PrO", "tlv_datum": "01-07-2024"}, "tlv_datum"),
    ("date_order", "mbo_outflow", {"status_datum": "2026-03-15"}, {"status_datum": "2026-03-14"}, "status_datum"),
    ("advice_not_lowered", "po_transfers", {"voorlopig_advies": "VMBO GT-HAVO", "definitief_advies": "HAVO"},
     {"voorlopig_advies": "HAVO", "definitief_advies": "VMBO GT-HAVO"}, "definitief_advies"),
    ("advice_not_lowered", "po_transfers", {"voorlopig_advies": "VSO", "definitief_advies": "PrO"},
     {"voorlopig_advies": "VMBO BL", "definitief_advies": "PrO"}, "definitief_advies"),
    ("birthdate_plausible", "po_transfers", {"geboortedatum": "01-08-2012"}, {"geboortedatum": "31-07-2011"},
     "geboortedatum"),
    ("birthdate_plausible", "vo_enrolment", {"geboortedatum": "01-08-2015"}, {"geboortedatum": "02-08-2015"},
     "geboortedatum"),
    ("birthdate_plausible", "mbo_outflow", {"geboortedatum": "2002-07-16"}, {"geboortedatum": "2002-07-15"},
     "geboortedatum"),
    ("birthdate_plausible", "youth_care_waitlist", {"geboortedatum": "01-03-2003"},
     {"geboortedatum": "28-02-2002"}, "geboortedatum"),
    ("mojibake", "vo_enrolment", {"achternaam": "Hoogeveen-Özdemir"}, {"achternaam": "Ã–zdemir"}, "achternaam"),
    ("mojibake", "po_transfers", {"voornaam": "Zoë"}, {"voornaam": "ZoÃ«"}, "voornaam"),
    ("schooljaar_format", "po_transfers", {"schooljaar": "2026/2027"}, {"schooljaar": "2026-2028"}, "schooljaar"),
    ("hours_range", "vo_absence", {"uren_ongeoorloofd": "40"}, {"uren_ongeoorloofd": "40,5"}, "uren_ongeoorloofd"),
    ("hours_range", "vo_absence", {"uren_geoorloofd": "0"}, {"uren_geoorloofd": "-1"}, "uren_geoorloofd"),
    ("hours_range", "vo_absence", {"uren_rooster": "32"}, {"uren_rooster": "41"}, "uren_rooster"),
    ("absence_within_schedule", "vo_absence", {"uren_rooster": "6,5"}, {"uren_rooster": "6"}, "uren_ongeoorloofd"),
    ("absence_within_schedule", "vo_absence", {"uren_geoorloofd": None, "uren_rooster": "4"},
     {"uren_geoorloofd": None, "uren_rooster": "3"}, "uren_ongeoorloofd"),
    ("date_parse", "youth_care_waitlist", {"aanmelddatum": "2026-03-01"}, {"aanmelddatum": "30-02-2026"},
     "aanmelddatum"),
    ("date_parse", "mbo_outflow", {"uitstroomdatum": "2026-07-15 00:00:00"}, {"uitstroomdatum": "15-07-2026"},
     "uitstroomdatum"),
    ("number_parse", "vo_enrolment", {"leerjaar": "2"}, {"leerjaar": "twee"}, "leerjaar"),
    ("number_parse", "vo_absence", {"uren_geoorloofd": "1.5"}, {"uren_geoorloofd": "1,5 uur"}, "uren_geoorloofd"),
    ("unknown_code", "vo_enrolment", {"onderwijsniveau": "vmbo  gt"}, {"onderwijsniveau": "VMBO XL"},
     "onderwijsniveau"),
    ("unknown_code", "youth_care_waitlist", {"verwijzer": "2"}, {"verwijzer": "07"}, "verwijzer"),
    ("unknown_code", "po_transfers", {"opp": "X"}, {"opp": "misschien"}, "opp"),
    ("unknown_code", "vo_enrolment", {"vrijstelling": "art. 5 onder a"}, {"vrijstelling": "5d"}, "vrijstelling"),
    ("control_character", "po_transfers", {"voornaam": "Anna"}, {"voornaam": "An\x00na"}, "voornaam"),
    ("control_character", "po_transfers", {"ondersteuning_details": "regel 1\nregel\t2"},
     {"ondersteuning_details": "regel\x07 1"}, "ondersteuning_details"),
    ("required", "youth_care_waitlist", {"woongemeente_code": "GM0118"}, {"woongemeente_code": ""},
     "woongemeente_code"),
]

# Rules about the delivered cells, not their values: the connectors flag them (tested below).
CELL_RULES = {"duplicate_row", "excel_formula", "excel_merged_cell"}


@pytest.mark.parametrize(
    ("rule", "dataset", "good", "bad", "column"), CASES, ids=[f"{c[0]}-{c[1]}-{c[4]}" for c in CASES]
)
def test_rule_passes_good_value_and_quarantines_bad_one(rule, dataset, good, bad, column):
    rows = [BASELINE[dataset] | good, BASELINE[dataset] | bad]
    result = validate(dataset, raw_frame(dataset, rows))

    assert rules_of(result, 1) == set(), "the good value must pass"
    assert (rule, column) in rules_of(result, 2)
    assert result.valid["delivery_row"].tolist() == [1]


def test_every_rule_has_a_case_here_and_a_row_in_the_steward_docs():
    assert {case[0] for case in CASES} | CELL_RULES == set(RULES)
    docs = (PROJECT / "docs" / "validation.md").read_text(encoding="utf-8")
    assert [rule for rule in RULES if f"| `{rule}` |" not in docs] == []


def test_duplicate_row_keeps_the_first_and_quarantines_the_copies():
    row = BASELINE["vo_absence"]
    result = validate("vo_absence", raw_frame("vo_absence", [row, row | {"uren_geoorloofd": "3"}, row, row]))

    assert result.valid["delivery_row"].tolist() == [1, 2]
    copies = result.rejects[result.rejects["rule"] == "duplicate_row"]
    assert copies["delivery_row"].tolist() == [3, 4]
    assert set(copies["column"]) == {"*"}
    assert copies["row_fingerprint"].nunique() == 2, "each copy keeps its own quarantine entry"


def test_the_same_row_in_two_deliveries_is_no_duplicate():
    row = BASELINE["vo_absence"]
    raw = pd.concat(
        [raw_frame("vo_absence", [row], delivery="week39.csv"), raw_frame("vo_absence", [row], delivery="week40.csv")],
        ignore_index=True,
    )
    assert validate("vo_absence", raw).rejects.empty


def test_a_date_on_the_delivery_day_in_amsterdam_is_not_in_the_future():
    # Fetched at 23:30 UTC on 4 October is 5 October in Amsterdam: a date of 5 October is fine.
    row = BASELINE["vo_absence"] | {"week_start": "05-10-2026"}
    result = validate_dataset(
        "vo_absence", raw_frame("vo_absence", [row]), REGION, evaluation_date=dt.date(2026, 12, 1)
    )
    assert result.rejects.empty


def test_not_in_future_uses_the_evaluation_date_when_it_is_earlier_than_the_delivery():
    row = BASELINE["vo_absence"] | {"week_start": "05-10-2026"}
    result = validate_dataset(
        "vo_absence", raw_frame("vo_absence", [row]), REGION, evaluation_date=dt.date(2026, 10, 4)
    )
    assert rules_of(result, 1) == {("not_in_future", "week_start")}


def test_known_school_leaves_a_malformed_code_to_brin6_format():
    row = BASELINE["vo_enrolment"] | {"vo_brin6": "2VA00"}
    result = validate("vo_enrolment", raw_frame("vo_enrolment", [row]))
    assert rules_of(result, 1) == {("brin6_format", "vo_brin6")}


def test_po_transfer_without_vo_school_yet_is_valid():
    row = BASELINE["po_transfers"] | {"vo_brin6": None, "aanmelddatum": None}
    assert validate("po_transfers", raw_frame("po_transfers", [row])).rejects.empty


def test_identifiers_are_normalised_before_they_are_checked():
    row = BASELINE["vo_enrolment"] | {
        "bsn": "1112.22.333", "vo_brin6": " 02va 00", "postcode": "7941 aa", "woongemeente_code": "0119",
    }
    result = validate("vo_enrolment", raw_frame("vo_enrolment", [row]))
    valid = result.valid.iloc[0]
    assert (valid["bsn"], valid["vo_brin6"], valid["postcode"], valid["woongemeente_code"]) == (
        "111222333", "02VA00", "7941AA", "GM0119",
    )


def test_an_eight_digit_bsn_gets_its_leading_zero_back():
    # Spreadsheets drop the leading zero; python-stdnum pads the same way (domain.md §3).
    assert stdnum_bsn.is_valid("12345672")
    row = BASELINE["vo_enrolment"] | {"bsn": "12345672"}
    result = validate("vo_enrolment", raw_frame("vo_enrolment", [row]))
    assert result.valid["bsn"].tolist() == ["012345672"]


def test_typed_values_come_out_of_parsing():
    result = validate("vo_absence", raw_frame("vo_absence", [BASELINE["vo_absence"]]))
    valid = result.valid.iloc[0]
    assert valid["uren_geoorloofd"] == 2.5
    assert valid["week_start"] == pd.Timestamp("2026-09-28")


def test_source_specific_code_labels_are_accepted():
    hoogeveen = REGION.sources["wachtlijst_hoogeveen"]
    region = REGION.model_copy(
        update={"sources": REGION.sources | {
            "wachtlijst_hoogeveen": hoogeveen.model_copy(update={"codes": {"verwijzer": {"Huisarts": "02"}}}),
        }}
    )
    row = BASELINE["youth_care_waitlist"] | {"verwijzer": "huisarts"}
    result = validate_dataset(
        "youth_care_waitlist", raw_frame("youth_care_waitlist", [row]), region, evaluation_date=EVALUATION_DATE
    )
    assert result.valid["verwijzer"].tolist() == ["02"]


def test_every_check_is_vectorised():
    for dataset in MODELS:
        schema = dataset_schema(dataset, evaluation_date=EVALUATION_DATE)
        checks = [*schema.checks, *(check for column in schema.columns.values() for check in column.checks)]
        assert checks and not any(check.element_wise for check in checks), dataset


def test_vectorised_elfproef_agrees_with_python_stdnum():
    rng = np.random.default_rng(20261005)
    numbers = rng.integers(0, 10**9, size=4000)
    onderwijs = 100_000_000 + rng.integers(0, 10**7, size=4000)  # starts with 10, so some are valid
    values = pd.Series([f"{n:09d}" for n in np.concatenate([numbers, onderwijs])] + ["000000000"], dtype="str")

    expected_bsn = [stdnum_bsn.is_valid(v) for v in values]
    expected_onderwijs = [stdnum_onderwijsnummer.is_valid(v) for v in values]

    assert bsn_elfproef(values).tolist() == expected_bsn
    assert onderwijsnummer_valid(values).tolist() == expected_onderwijs
    assert sum(expected_bsn) > 300 and sum(expected_onderwijs) > 300


def test_cells_a_workbook_reader_could_not_trust_are_quarantined_with_their_cell():
    from schemas.validate import CELL_FLAGS

    row = BASELINE["youth_care_waitlist"]
    raw = raw_frame("youth_care_waitlist", [row, row | {"bsn": "123456782"}, row | {"bsn": "111222334"}])
    raw[CELL_FLAGS] = pd.Series([pd.NA, "woongemeente_code:excel_merged_cell:C3",
                                 "woongemeente_code:excel_formula:C4;verwijzer:excel_formula:D4"], dtype="str")
    result = validate("youth_care_waitlist", raw)

    assert result.valid["delivery_row"].tolist() == [1]
    assert rules_of(result, 2) == {("excel_merged_cell", "woongemeente_code")}
    assert rules_of(result, 3) >= {("excel_formula", "woongemeente_code"), ("excel_formula", "verwijzer")}
    messages = result.rejects.loc[result.rejects["delivery_row"] == 2, "message"].tolist()
    assert messages == ["woongemeente_code: cel C3 is deel van samengevoegde cellen en heeft zelf geen waarde"]


_CONTROL_OR_NOT = ["Jan", "Ãlvaro", "a\u00a0b", "°C", "½", "tab\there", "twee\nregels", "cr\r", "nul\x00",
                   "bel\x07", "esc\x1b", "del\x7f", "c1\u0085", "c1\u009f", "sneeuw☃", "", None]


@given(st.lists(st.sampled_from(_CONTROL_OR_NOT), min_size=1, max_size=40), st.integers(0, 5))
@settings(max_examples=200, deadline=None)
def test_a_cell_fails_control_character_exactly_when_it_holds_one(values, sliced):
    import re

    from schemas.checks import CONTROL_CHARACTERS, control_character

    # A slice of an Arrow-backed column keeps its neighbours' bytes in the buffer: they must not count.
    series = pd.Series(values, dtype="str").iloc[min(sliced, len(values) - 1):]
    expected = [not isinstance(value, str) or re.search(CONTROL_CHARACTERS, value) is None
                for value in series.tolist()]
    assert control_character(series).tolist() == expected
