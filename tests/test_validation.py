"""Parse, validate, quarantine, re-validate: nothing is lost, every reason is kept, nothing personal leaks."""

from __future__ import annotations

import pandas as pd
import pytest

from schemas.datasets import MODELS, dataset_schema
from schemas.validate import REJECT_COLUMNS, DeliveryRejected, ValidationBug, validate_dataset
from tests.test_rules import BASELINE, EVALUATION_DATE, REGION, raw_frame, validate

WAITLIST = BASELINE["youth_care_waitlist"]
# Meppel's Excel connector writes ISO dates.
MEPPEL = WAITLIST | {
    "geboortedatum": "2012-02-01", "woongemeente_code": "GM0119", "aanmelddatum": "2026-03-01",
    "besluitdatum": "2026-03-15", "intakedatum": "2026-04-01", "startdatum": "2026-05-01", "einddatum": "2026-07-01",
}


def mixed_waitlists() -> pd.DataFrame:
    """Two municipalities, Hoogeveen in two deliveries, with good rows, bad rows and an out-of-region client."""
    hoogeveen_1 = raw_frame("youth_care_waitlist", [
        WAITLIST,
        WAITLIST | {"bsn": "123456782", "aanmelddatum": "31-02-2026"},              # date_parse
        WAITLIST | {"bsn": "111222334", "zorgaanbieder_agb": "1234"},              # two problems
        WAITLIST | {"bsn": "123456782", "aanmelddatum": "01-12-2026", "besluitdatum": None, "intakedatum": None,
                    "startdatum": None, "einddatum": None, "reden_beeindiging": None},  # not_in_future
    ], source_id="wachtlijst_hoogeveen", delivery="hoogeveen/week40.csv", sha256="1" * 64)
    hoogeveen_2 = raw_frame("youth_care_waitlist", [
        WAITLIST | {"bsn": "012345672", "woongemeente_code": "GM0180"},            # Staphorst: outside the region
        WAITLIST | {"bsn": "111222333", "productcategorie": "99"},                  # unknown_code
    ], source_id="wachtlijst_hoogeveen", delivery="hoogeveen/week41.csv", sha256="2" * 64)
    meppel = raw_frame("youth_care_waitlist", [
        MEPPEL,
        MEPPEL | {"aanmelddatum": "01-03-2026"},                                    # not Meppel's format
    ], source_id="wachtlijst_meppel", delivery="meppel/wachtlijst.xlsx", sha256="3" * 64)
    return pd.concat([hoogeveen_1, hoogeveen_2, meppel], ignore_index=True)


@pytest.fixture(scope="module")
def result():
    return validate("youth_care_waitlist", mixed_waitlists())


def test_every_raw_row_is_either_valid_or_quarantined_per_source(result):
    raw = mixed_waitlists()
    quarantined = result.rejects.drop_duplicates(["source_id", "delivery", "delivery_row"])
    for source_id, rows in raw.groupby("source_id"):
        valid = (result.valid["source_id"] == source_id).sum()
        bad = (quarantined["source_id"] == source_id).sum()
        assert len(rows) == valid + bad, source_id
    assert result.per_source.set_index("source_id").loc["wachtlijst_hoogeveen"].to_dict() == {
        "raw": 6, "valid": 2, "quarantined": 4, "rejected_delivery": 0,
    }
    assert result.raw_rows == len(raw) == len(result.valid) + result.quarantined_rows


def test_a_row_with_two_problems_gets_both_reasons(result):
    row = result.rejects[(result.rejects["delivery"] == "hoogeveen/week40.csv") & (result.rejects["delivery_row"] == 3)]
    assert set(zip(row["rule"], row["column"])) == {("bsn_elfproef", "bsn"), ("agb_format", "zorgaanbieder_agb")}
    assert row["row_fingerprint"].nunique() == 1


def test_an_unparsable_date_does_not_hide_the_checks_of_other_rows(result):
    week40 = result.rejects[result.rejects["delivery"] == "hoogeveen/week40.csv"]
    by_row = week40.groupby("delivery_row")["rule"].apply(set).to_dict()
    assert by_row[2] == {"date_parse"}, "reported once, not again as required or date_order"
    assert by_row[4] == {"not_in_future"}, "the same column is still checked on the other rows"


def test_parse_failures_report_the_format_the_source_promised(result):
    messages = result.rejects.loc[result.rejects["rule"] == "date_parse"].set_index("source_id")["message"]
    assert messages.to_dict() == {
        "wachtlijst_hoogeveen": "aanmelddatum is geen datum (verwacht dd-mm-jjjj of jjjj-mm-dd)",
        "wachtlijst_meppel": "aanmelddatum is geen datum (verwacht jjjj-mm-dd)",
    }


def test_survivors_pass_the_model_and_the_whole_schema(result):
    MODELS["youth_care_waitlist"].validate(result.valid, lazy=True)
    dataset_schema("youth_care_waitlist", evaluation_date=EVALUATION_DATE).validate(result.valid, lazy=True)
    assert list(result.valid.index) == list(range(len(result.valid)))
    assert {"source_id", "delivery", "delivery_row", "delivery_sha256", "fetched_at"} <= set(result.valid.columns)


def test_rejects_hold_no_personal_value(result):
    raw = mixed_waitlists()
    personal = set(raw["bsn"].dropna()) | set(raw["geboortedatum"].dropna())
    shown = " ".join(result.rejects["message"]) + " " + " ".join(result.rejects["value_masked"])
    assert not [value for value in personal if value in shown]
    bsn = result.rejects[result.rejects["column"] == "bsn"]
    assert bsn["value_masked"].tolist() == ["*** (9 tekens)"]


def test_non_personal_values_are_shown_to_the_steward(result):
    agb = result.rejects[result.rejects["rule"] == "agb_format"]
    assert agb["value_masked"].tolist() == ["1234"]


def test_rejects_have_the_quarantine_columns_and_counts_per_rule(result):
    assert list(result.rejects.columns) == REJECT_COLUMNS
    assert result.counts == {
        "agb_format": 1, "bsn_elfproef": 1, "date_parse": 2, "not_in_future": 1, "unknown_code": 1,
    }


def test_out_of_region_rows_are_kept_and_flagged(result):
    staphorst = result.valid[result.valid["woongemeente_code"] == "GM0180"]
    assert staphorst["buiten_regio"].tolist() == [True]
    assert not result.valid.loc[result.valid["woongemeente_code"] != "GM0180", "buiten_regio"].any()


def test_unknown_code_labels_are_summarised_per_source_and_field(result):
    assert result.unknown_codes.to_dict("records") == [
        {"source_id": "wachtlijst_hoogeveen", "column": "productcategorie", "label": "99", "rows": 1},
    ]


def test_validated_deliveries_are_listed_for_the_quarantine(result):
    assert sorted(result.deliveries) == [
        ("wachtlijst_hoogeveen", "hoogeveen/week40.csv", "1" * 64),
        ("wachtlijst_hoogeveen", "hoogeveen/week41.csv", "2" * 64),
        ("wachtlijst_meppel", "meppel/wachtlijst.xlsx", "3" * 64),
    ]


def test_a_re_delivered_row_keeps_its_fingerprint():
    first = raw_frame("vo_absence", [BASELINE["vo_absence"] | {"bsn": None}], delivery="v.csv", first_row=7)
    again = raw_frame("vo_absence", [BASELINE["vo_absence"], BASELINE["vo_absence"] | {"bsn": None}],
                      delivery="v.csv", sha256="b" * 64, fetched_at="2026-10-05T02:00:00+00:00")
    one, two = validate("vo_absence", first).rejects, validate("vo_absence", again).rejects
    assert one["row_fingerprint"].tolist() == two["row_fingerprint"].tolist()
    assert (one["delivery_row"].tolist(), two["delivery_row"].tolist()) == ([7], [2])


def test_a_missing_required_column_rejects_the_delivery_as_a_whole():
    hoogeveen = raw_frame("youth_care_waitlist", [WAITLIST, WAITLIST], delivery="hoogeveen.csv")
    meppel = raw_frame("youth_care_waitlist", [MEPPEL], source_id="wachtlijst_meppel", delivery="meppel.xlsx",
                       sha256="c" * 64)
    raw = pd.concat([hoogeveen.drop(columns="aanmelddatum"), meppel.drop(columns="aanmelddatum")], ignore_index=True)

    result = validate("youth_care_waitlist", raw)

    assert result.rejected_deliveries == [
        DeliveryRejected("wachtlijst_hoogeveen", "hoogeveen.csv", "a" * 64, 2, result.rejected_deliveries[0].reason),
        DeliveryRejected("wachtlijst_meppel", "meppel.xlsx", "c" * 64, 1, result.rejected_deliveries[1].reason),
    ]
    assert "aanmelddatum" in result.rejected_deliveries[0].reason
    assert result.valid.empty and result.rejects.empty and result.deliveries == []


def test_a_required_column_empty_in_every_row_rejects_only_that_delivery():
    broken = raw_frame("vo_absence", [BASELINE["vo_absence"] | {"week_start": None}] * 2, delivery="school_a.csv")
    fine = raw_frame("vo_absence", [BASELINE["vo_absence"]], delivery="school_b.csv", sha256="d" * 64)

    result = validate("vo_absence", pd.concat([broken, fine], ignore_index=True))

    assert [(r.delivery, r.rows) for r in result.rejected_deliveries] == [("school_a.csv", 2)]
    assert result.valid["delivery"].tolist() == ["school_b.csv"]
    assert result.per_source.to_dict("records") == [
        {"source_id": "vo_verzuim", "raw": 3, "valid": 1, "quarantined": 0, "rejected_delivery": 2},
    ]


def test_a_source_of_another_dataset_is_rejected():
    raw = raw_frame("vo_absence", [BASELINE["vo_absence"]], source_id="vo_inschrijvingen")
    result = validate("vo_absence", raw)
    assert [r.source_id for r in result.rejected_deliveries] == ["vo_inschrijvingen"]


def test_an_empty_frame_validates_to_an_empty_typed_table():
    result = validate_dataset("mbo_outflow", raw_frame("mbo_outflow", []), REGION, evaluation_date=EVALUATION_DATE)
    assert result.valid.empty and result.rejects.empty
    assert str(result.valid["uitstroomdatum"].dtype) == "datetime64[ns]"


def test_a_crashing_check_is_a_bug_that_quotes_no_value(monkeypatch):
    def registry_unreadable():
        raise OSError("reference file unreadable")

    monkeypatch.setattr("schemas.checks.known_schools", registry_unreadable)
    raw = raw_frame("vo_enrolment", [BASELINE["vo_enrolment"] | {"bsn": "111222334"}])

    with pytest.raises(ValidationBug) as error:
        validate("vo_enrolment", raw)

    assert "vo_brin6" in str(error.value)
    text = str(error.value) + repr(error.value.__context__) + repr(error.value.__cause__)
    assert "111222334" not in text and "02VA00" not in text
