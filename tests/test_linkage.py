"""Pupil linkage: by BSN, else onderwijsnummer, never by name; contradictions are left out."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from assets.koppeling.linkage import key_positions, link_pupils, pupil_key

NIGHT = pd.Timestamp("2026-10-05")


def _enrolment(rows: list[dict]) -> pd.DataFrame:
    base = {"bsn": pd.NA, "onderwijsnummer": pd.NA, "geboortedatum": pd.Timestamp("2012-05-01"), "voornaam": "Sam",
            "tussenvoegsel": pd.NA, "achternaam": "Bakker", "postcode": "7901AB", "woongemeente_code": "GM0118",
            "buiten_regio": False, "vo_brin6": "02VA00", "leerjaar": 2, "onderwijsniveau": "havo",
            "inschrijfdatum": pd.Timestamp("2025-08-01"), "uitschrijfdatum": pd.NaT}
    frame = pd.DataFrame([{**base, **row} for row in rows])
    for column in ("bsn", "onderwijsnummer", "tussenvoegsel"):
        frame[column] = frame[column].astype("str").where(frame[column].notna(), pd.NA)
    return frame


def _transfers(rows: list[dict]) -> pd.DataFrame:
    base = {"bsn": pd.NA, "onderwijsnummer": pd.NA, "geboortedatum": pd.Timestamp("2014-02-01"),
            "woongemeente_code": "GM0119", "buiten_regio": False, "aanmelddatum": pd.Timestamp("2026-03-27")}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_the_key_is_the_bsn_else_the_onderwijsnummer():
    frame = _enrolment([{"bsn": "111222333"}, {"onderwijsnummer": "101222331"}])
    assert pupil_key(frame).tolist() == ["bsn:111222333", "onr:101222331"]


def test_the_same_bsn_in_two_sources_is_one_pupil_with_the_school_s_residence():
    pupils, conflicts = link_pupils(
        {"vo_enrolment": _enrolment([{"bsn": "111222333", "geboortedatum": pd.Timestamp("2014-02-01")}]),
         "po_transfers": _transfers([{"bsn": "111222333"}])},
        NIGHT,
    )
    assert conflicts.empty
    assert len(pupils) == 1
    pupil = pupils.iloc[0]
    assert pupil["woongemeente_code"] == "GM0118"  # the VO school's administration is the freshest source
    assert pupil["in_vo_enrolment"] and pupil["in_po_transfers"]
    assert pupil["vo_brin6"] == "02VA00"


def test_the_same_name_with_different_identifiers_stays_two_pupils():
    pupils, _ = link_pupils(
        {"vo_enrolment": _enrolment([{"bsn": "111222333"}, {"bsn": "123456782"}])}, NIGHT
    )
    assert len(pupils) == 2


def test_two_birth_dates_for_one_identity_is_a_conflict_left_out_of_the_pupils():
    pupils, conflicts = link_pupils(
        {"vo_enrolment": _enrolment([{"bsn": "111222333"}]),
         "po_transfers": _transfers([{"bsn": "111222333", "geboortedatum": pd.Timestamp("2013-01-01")}])},
        NIGHT,
    )
    assert pupils.empty
    assert conflicts[["pupil_key", "rule"]].values.tolist() == [["bsn:111222333", "conflicting_birthdate"]]


def test_enrolled_at_two_schools_on_the_same_day_is_a_conflict():
    pupils, conflicts = link_pupils(
        {"vo_enrolment": _enrolment([{"bsn": "111222333"}, {"bsn": "111222333", "vo_brin6": "03XM00"}])}, NIGHT
    )
    assert conflicts["rule"].tolist() == ["conflicting_enrolment"]
    assert pupils.empty


def test_a_school_change_is_not_a_conflict_and_the_current_school_counts():
    pupils, conflicts = link_pupils(
        {"vo_enrolment": _enrolment([
            {"bsn": "111222333", "uitschrijfdatum": pd.Timestamp("2026-01-31")},
            {"bsn": "111222333", "vo_brin6": "03XM00", "inschrijfdatum": pd.Timestamp("2026-02-01")},
        ])},
        NIGHT,
    )
    assert conflicts.empty
    assert pupils["vo_brin6"].tolist() == ["03XM00"]


def test_key_positions_find_what_a_lookup_of_pupil_key_finds():
    keys = pd.Series(["bsn:111222333", "onr:101234567", "bsn:999999990", "onr:109999999"], dtype="str")
    frame = pd.DataFrame({
        "bsn": pd.Series(["111222333", None, "999999990", None, "123456782", "111222333", None], dtype="str"),
        "onderwijsnummer": pd.Series([None, "101234567", "101234567", None, None, "109999999", "100000000"],
                                     dtype="str"),
    })
    expected = pd.Index(keys).get_indexer(pupil_key(frame))
    assert key_positions(frame, pa.array(keys)).tolist() == expected.tolist() == [0, 1, 2, -1, -1, 0, -1]
    only_onr = frame.drop(columns="bsn")
    assert key_positions(only_onr, pa.array(keys)).tolist() == pd.Index(keys).get_indexer(pupil_key(only_onr)).tolist()
    # Far fewer rows than keys: the keys are filtered by the rows first (the other path of index_in).
    many = pd.concat([keys, pd.Series([f"bsn:{n:09d}" for n in range(100)], dtype="str")], ignore_index=True)
    for row in range(len(frame)):
        assert key_positions(frame.iloc[[row]], pa.array(many)).tolist() == [expected[row]]
    assert key_positions(frame, pa.array(many)).tolist() == expected.tolist()


def test_key_positions_with_identifiers_that_are_not_nine_digits():
    keys = pd.Series(["bsn:111222333", "bsn:12345", "onr:101234567"], dtype="str")
    frame = pd.DataFrame({"bsn": pd.Series(["12345", "111222333", "012345", None], dtype="str"),
                          "onderwijsnummer": pd.Series([None, None, None, "101234567"], dtype="str")})
    assert key_positions(frame, pa.array(keys)).tolist() == [1, 0, -1, 2]


def test_an_undated_row_is_older_than_every_dated_row_of_the_same_source():
    pupils, _ = link_pupils(
        {"vo_enrolment": _enrolment([{"bsn": "999999990"}]),
         "po_transfers": _transfers([
            {"bsn": "111222333", "aanmelddatum": pd.Timestamp("2026-03-01"), "postcode": "1111AA"},
            {"bsn": "111222333", "aanmelddatum": pd.NaT, "postcode": "2222BB", "woongemeente_code": "GM0141"},
        ])},
        NIGHT,
    )
    pupil = pupils.set_index("bsn").loc["111222333"]
    assert (pupil["postcode"], pupil["woongemeente_code"]) == ("1111AA", "GM0119")
