"""Routing follows the pupil (docs/handover.md "Who receives whom"; AVG art. 5 data minimisation).

One test per rule: a PO dossier goes to the school of the aanmelding until the pupil is enrolled,
then to the enrolling school only; a VO leaver goes to every MBO institution applied to until
'ingeschreven' at one, then to that one only; a code that fails validation never becomes a folder;
only the current and the coming school year are handed over; a pupil's withheld fields leave the
pipeline's tables when the validated table is made. Files are really written and read back.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from assets.overdracht.handover import (
    handover_leaving_years,
    handover_school_years,
    mbo_applications,
    po_vo_handover,
    routed_transfers,
    vo_mbo_handover,
)
from assets.overdracht.handover_assets import PO_VO, VO_MBO, deliver_handover
from connectors.outbox import Outbox
from tests.test_handover import (
    ANNA,
    BRAM,
    CAS,
    E,
    NO_CONFLICTS,
    YEAR,
    enrolment,
    leaver,
    read_csv,
    transfer,
    typed,
)
from tests.test_rules import BASELINE, raw_frame, rules_of, validate

REGISTERED_AT, ENROLLED_AT = "01AB00", "02CD00"


def enrolled(bsn: str, school: str, *, since: str = "2026-08-17", until: str | None = None) -> dict:
    return enrolment(bsn, "Aalders") | {"vo_brin6": school, "leerjaar": 1, "inschrijfdatum": pd.Timestamp(since),
                                        "uitschrijfdatum": pd.Timestamp(until) if until else None}


def routed(transfers: list[dict], enrolments: list[dict] = ()) -> dict[str, str]:
    """BSN -> the school its dossier goes to."""
    rows, _ = routed_transfers(typed("po_transfers", transfers), typed("vo_enrolment", list(enrolments)),
                               NO_CONFLICTS, evaluation_date=E, school_year_start="08-01")
    return dict(zip(rows["bsn"], rows["school"], strict=True))


def deliver_po_vo(outbox: Outbox, transfers: list[dict], enrolments: list[dict] = ()) -> None:
    handover = po_vo_handover(typed("po_transfers", transfers), typed("vo_enrolment", list(enrolments)), NO_CONFLICTS,
                              evaluation_date=E, tlv_deadline="06-01", school_year_start="08-01")
    deliver_handover(outbox, PO_VO, handover, {"swv": "VO2203"}, year_key="schooljaar")


def bsns_in(root: Path, *segments: str) -> list[str]:
    return sorted(row["BSN"] for row in read_csv(root.joinpath("overdracht", *segments, "overdracht.csv")))


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(root=str(tmp_path / "outbox"))


# -- PO -> VO -------------------------------------------------------------------------------------


def test_before_enrolment_the_dossier_goes_to_the_school_of_the_aanmelding():
    assert routed([transfer(ANNA, "Aalders", school=REGISTERED_AT)]) == {ANNA: REGISTERED_AT}


def test_a_pupil_registered_at_one_school_and_enrolled_at_another_goes_to_the_enrolling_school_only():
    assert routed([transfer(ANNA, "Aalders", school=REGISTERED_AT)], [enrolled(ANNA, ENROLLED_AT)]) == {
        ANNA: ENROLLED_AT}


def test_the_school_that_only_received_the_registration_no_longer_gets_the_pupil_in_later_files(outbox: Outbox):
    registration = [transfer(ANNA, "Aalders", school=REGISTERED_AT), transfer(BRAM, "Bakker", school=REGISTERED_AT)]
    deliver_po_vo(outbox, registration)
    root = Path(outbox.root)
    assert bsns_in(root, "po-vo", YEAR, REGISTERED_AT) == [ANNA, BRAM]

    deliver_po_vo(outbox, registration, [enrolled(ANNA, ENROLLED_AT)])
    assert bsns_in(root, "po-vo", YEAR, REGISTERED_AT) == [BRAM]
    assert bsns_in(root, "po-vo", YEAR, ENROLLED_AT) == [ANNA]


def test_an_ended_enrolment_does_not_route_the_dossier():
    ended = enrolled(ANNA, ENROLLED_AT, since="2026-08-17", until="2026-09-01")
    assert routed([transfer(ANNA, "Aalders", school=REGISTERED_AT)], [ended]) == {ANNA: REGISTERED_AT}


def test_an_enrolment_that_starts_later_already_routes_the_dossier():
    assert routed([transfer(ANNA, "Aalders", school=REGISTERED_AT)], [enrolled(ANNA, ENROLLED_AT, since="2027-08-16")]
                  ) == {ANNA: ENROLLED_AT}


def test_an_enrolled_pupil_without_aanmelding_in_the_dossier_goes_to_the_enrolling_school():
    assert routed([transfer(CAS, "Claassen", school=None, aangemeld=None)], [enrolled(CAS, ENROLLED_AT)]) == {
        CAS: ENROLLED_AT}


def test_enrolment_settles_two_aanmeldingen_on_one_day():
    two = [transfer(ANNA, "Aalders", school=REGISTERED_AT), transfer(ANNA, "Aalders", school="03EF00")]
    assert routed(two) == {}
    assert routed(two, [enrolled(ANNA, ENROLLED_AT)]) == {ANNA: ENROLLED_AT}


def test_only_the_current_and_the_coming_school_year_are_handed_over():
    assert handover_school_years(E, "08-01") == ("2026-2027", "2027-2028")
    rows = [transfer(bsn, "X", schooljaar=year, aanmelddatum=pd.Timestamp(f"{year[:4]}-03-20"))
            for bsn, year in ((ANNA, "2025-2026"), (BRAM, "2026-2027"), (CAS, "2027-2028"))]
    assert routed(rows) == {BRAM: REGISTERED_AT, CAS: REGISTERED_AT}


# -- VO -> MBO ------------------------------------------------------------------------------------


def applications(leavers: list[dict]) -> set[tuple[str, str]]:
    rows, _ = mbo_applications(typed("mbo_outflow", leavers), NO_CONFLICTS, school_year_start="08-01",
                               evaluation_date=E)
    return set(zip(rows["bsn"], rows["mbo_brin"], strict=True))


def test_before_enrolment_every_institution_applied_to_gets_the_leaver():
    pending = {"vva_status": "aanmelding_ontvangen"}
    assert applications([leaver(ANNA, mbo="25LJ", **pending), leaver(ANNA, mbo="01OE", crebo="25180", **pending)]
                        ) == {(ANNA, "25LJ"), (ANNA, "01OE")}


def test_once_ingeschreven_at_one_institution_only_that_institution_gets_the_leaver(outbox: Outbox):
    def deliver(status_elsewhere: str) -> None:
        leavers = [leaver(ANNA, mbo="25LJ", vva_status=status_elsewhere),
                   leaver(ANNA, mbo="01OE", crebo="25180", vva_status="aanmelding_ontvangen")]
        result = vo_mbo_handover(typed("mbo_outflow", leavers), typed("po_transfers", []), typed("vo_enrolment", []),
                                 NO_CONFLICTS, school_year_start="08-01", evaluation_date=E)
        deliver_handover(outbox, VO_MBO, result, {"swv": "VO2203"}, year_key="uitstroomjaar")

    root = Path(outbox.root)
    deliver("aanmelding_ontvangen")
    assert bsns_in(root, "vo-mbo", "2026", "01OE") == bsns_in(root, "vo-mbo", "2026", "25LJ") == [ANNA]
    deliver("ingeschreven")
    assert bsns_in(root, "vo-mbo", "2026", "25LJ") == [ANNA]
    assert bsns_in(root, "vo-mbo", "2026", "01OE") == []


def test_only_leavers_entering_mbo_in_the_current_or_the_coming_school_year_are_handed_over():
    assert handover_leaving_years(E, "08-01") == ("2026", "2027")
    leavers = [leaver(ANNA, uitstroomdatum=pd.Timestamp("2025-07-10"), aanmelddatum=pd.Timestamp("2025-03-01"),
                      status_datum=pd.Timestamp("2025-08-20")),
               leaver(BRAM), leaver(CAS, uitstroomdatum=None, vva_status="aanmelding_ontvangen",
                                    aanmelddatum=pd.Timestamp("2026-09-20"), status_datum=pd.Timestamp("2026-09-20"))]
    assert applications(leavers) == {(BRAM, "25LJ"), (CAS, "25LJ")}


# -- validated codes only, and no withheld field beyond the raw snapshot --------------------------


def test_a_school_or_institution_code_that_fails_validation_never_becomes_a_folder(outbox: Outbox):
    po = validate("po_transfers", raw_frame("po_transfers", [
        BASELINE["po_transfers"], BASELINE["po_transfers"] | {"bsn": "111222345", "vo_brin6": "99ZZ00"}]))
    mbo = validate("mbo_outflow", raw_frame("mbo_outflow", [
        BASELINE["mbo_outflow"], BASELINE["mbo_outflow"] | {"bsn": "111222345", "mbo_brin": "2XLJ"}]))
    assert ("known_school", "vo_brin6") in rules_of(po, 2) and ("brin4_format", "mbo_brin") in rules_of(mbo, 2)

    vo_enrolment = typed("vo_enrolment", [])
    po_vo = po_vo_handover(po.valid, vo_enrolment, NO_CONFLICTS, evaluation_date=E, tlv_deadline="06-01")
    vo_mbo = vo_mbo_handover(mbo.valid, po.valid, vo_enrolment, NO_CONFLICTS, school_year_start="08-01",
                             evaluation_date=E)
    deliver_handover(outbox, PO_VO, po_vo, {"swv": "VO2203"}, year_key="schooljaar")
    deliver_handover(outbox, VO_MBO, vo_mbo, {"swv": "VO2203"}, year_key="uitstroomjaar")
    folders = {p.name for p in Path(outbox.root).rglob("*") if p.is_dir()}
    assert {"19IW00", "25LJ"} <= folders
    assert not {"99ZZ00", "2XLJ"} & folders


@pytest.mark.parametrize("dataset", ["po_transfers", "vo_enrolment"])
def test_a_pupil_without_consent_has_no_withheld_field_in_the_validated_table(dataset):
    secret = "GEHEIM dyslexie en faalangst"
    consented = {"toestemming_ouders": "ja", "toestemming_datum": "01-03-2026", "ondersteuning_details": "extra tijd"}
    refused = {"bsn": "111222345", "toestemming_ouders": "nee", "ondersteuning_details": secret}
    raw = raw_frame(dataset, [BASELINE[dataset] | consented, BASELINE[dataset] | refused])
    valid = validate(dataset, raw).valid.set_index("bsn")
    assert valid.loc["111222333", "ondersteuning_details"] == "extra tijd"
    assert pd.isna(valid.loc["111222345", "ondersteuning_details"])
    assert secret not in valid.to_string()
    assert secret in raw["ondersteuning_details"].tolist()  # only the delivery's raw rows keep it
