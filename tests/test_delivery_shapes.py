"""Delivery shapes found in practice, each a change to the region file (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from schemas.validate import validate_dataset
from schemas.region_contract import load_checked_region
from settings.region import RegionConfigError

from tests.conftest import DEMO_REGION
from tests.test_rules import BASELINE, EVALUATION_DATE, raw_frame


def _region(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "region.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _validate(dataset: str, rows: list[dict], region_path: Path):
    return validate_dataset(dataset, raw_frame(dataset, rows), load_checked_region(region_path),
                            evaluation_date=EVALUATION_DATE)


# -- yes/no fields delivered as labels --------------------------------------------------------------


def _support_levels(raw: dict) -> None:
    levels = {"geen": "nee", "basis": "nee", "extra": "ja"}
    raw["sources"]["po_overdracht"]["codes"] = {"ondersteuningsbehoefte": levels}


def test_support_levels_delivered_as_labels_become_yes_or_no(tmp_path):
    rows = [BASELINE["po_transfers"] | {"ondersteuningsbehoefte": level} for level in ("geen", "Basis", "extra", "ja")]
    result = _validate("po_transfers", rows, _region(tmp_path, _support_levels))
    assert result.rejects.empty
    assert result.valid["ondersteuningsbehoefte"].tolist() == [False, False, True, True]


def test_consent_labels_in_the_regions_ja_nee_list_apply_to_every_source(tmp_path):
    def consent_words(raw: dict) -> None:
        raw["codelists"]["ja_nee"] = {"akkoord": "ja", "geweigerd": "nee"}

    rows = [BASELINE["po_transfers"] | {"toestemming_ouders": word, "toestemming_datum": "01-03-2026"}
            for word in ("Akkoord", "geweigerd")]
    result = _validate("po_transfers", rows, _region(tmp_path, consent_words))
    assert result.valid["toestemming_ouders"].tolist() == [True, False]


def test_an_unmapped_yes_no_label_is_quarantined_and_listed_for_the_steward(tmp_path):
    rows = [BASELINE["po_transfers"] | {"ondersteuningsbehoefte": "intensief"}]
    result = _validate("po_transfers", rows, _region(tmp_path, _support_levels))
    assert set(zip(result.rejects["rule"], result.rejects["column"])) == {("unknown_code", "ondersteuningsbehoefte")}
    assert result.unknown_codes[["column", "label", "rows"]].to_dict("records") == [
        {"column": "ondersteuningsbehoefte", "label": "intensief", "rows": 1}]


def test_an_opp_instemming_delivered_as_yes_no_is_read(tmp_path):
    def mapped(raw: dict) -> None:
        raw["sources"]["po_overdracht"]["columns"]["Instemming OPP"] = "opp_instemming"

    rows = [BASELINE["po_transfers"] | {"opp": "ja", "opp_instemming": "ja"}]
    assert _validate("po_transfers", rows, _region(tmp_path, mapped)).valid["opp_instemming"].tolist() == [True]


@pytest.mark.parametrize(("change", "key"), [
    (lambda raw: raw["sources"]["po_overdracht"].update(codes={"ondersteuningsbehoefte": {"extra": "wel"}}),
     r"sources\.po_overdracht\.codes\.ondersteuningsbehoefte: \['wel'\] not among the canonical values \(ja, nee\)"),
    (lambda raw: raw["codelists"].update(ja_nee={"akkoord": "yes"}), r"codelists\.ja_nee: \['yes'\]"),
    (lambda raw: raw["codelists"]["schooladvies"].update({"VMBO TL": "vmbo_tl"}),
     r"codelists\.schooladvies: \['vmbo_tl'\]"),
    (lambda raw: raw["codelists"].update(advies={"HAVO": "havo"}), r"codelists\.advies: not a code list"),
    (lambda raw: raw["sources"]["po_overdracht"].update(codes={"achternaam": {"x": "y"}}),
     r"sources\.po_overdracht\.codes\.achternaam: not a code or yes/no field of po_transfers"),
])
def test_labels_onto_a_value_outside_the_list_are_refused_when_the_region_loads(tmp_path, change, key):
    with pytest.raises(RegionConfigError, match=key):
        load_checked_region(_region(tmp_path, change))


# -- the VVA application date derived from the first status --------------------------------------


def _derive(raw: dict) -> None:
    del raw["sources"]["mbo_vva"]["columns"]["datumAanmelding"]
    raw["sources"]["mbo_vva"]["derive"] = {"aanmelddatum": "first_status_date"}


def _history(status: str, on: str, **fields) -> dict:
    return BASELINE["mbo_outflow"] | {"aanmelddatum": None, "vva_status": status, "status_datum": on} | fields


def test_the_application_date_is_the_date_of_each_applications_first_status(tmp_path):
    rows = [
        _history("aanmelding ontvangen", "2026-03-15"),
        _history("onderwijsovereenkomst aangeboden", "2026-05-01"),
        _history("ingeschreven", "2026-06-01"),
        _history("aanmelding ontvangen", "2026-04-10", mbo_brin="25LG", crebo="25180"),  # a second application
        _history("aanmelding ingetrokken", "2026-05-20", mbo_brin="25LG", crebo="25180"),
    ]
    result = _validate("mbo_outflow", rows, _region(tmp_path, _derive))
    assert result.rejects.empty
    assert result.valid["aanmelddatum"].dt.strftime("%Y-%m-%d").tolist() == [
        "2026-03-15", "2026-03-15", "2026-03-15", "2026-04-10", "2026-04-10"]


def test_a_delivered_application_date_wins_over_the_derived_one(tmp_path):
    rows = [_history("aanmelding ontvangen", "2026-03-15"),
            _history("ingeschreven", "2026-06-01", aanmelddatum="2026-03-01")]
    result = _validate("mbo_outflow", rows, _region(tmp_path, _derive))
    assert result.valid["aanmelddatum"].dt.strftime("%Y-%m-%d").tolist() == ["2026-03-15", "2026-03-01"]


def test_a_record_without_an_application_gets_no_application_date(tmp_path):
    rows = [_history(None, None, mbo_brin=None, crebo=None, mbo_niveau=None)]
    result = _validate("mbo_outflow", rows, _region(tmp_path, _derive))
    assert result.valid["aanmelddatum"].isna().all()


@pytest.mark.parametrize(("derive", "message"), [
    ({"aanmelddatum": "last_status_date"}, r"'last_status_date' is not a derivation of mbo_outflow"),
    ({"status_datum": "first_status_date"}, r"derive\.status_datum: 'first_status_date' is not a derivation"),
])
def test_an_unknown_derivation_is_refused_when_the_region_loads(tmp_path, derive, message):
    with pytest.raises(RegionConfigError, match=message):
        load_checked_region(_region(tmp_path, lambda raw: raw["sources"]["mbo_vva"].update(derive=derive)))


def test_a_derivation_needs_the_fields_it_reads_mapped(tmp_path):
    def without_status_date(raw: dict) -> None:
        _derive(raw)
        del raw["sources"]["mbo_vva"]["columns"]["datumStatus"]

    with pytest.raises(RegionConfigError, match=r"first_status_date needs the field\(s\) \['status_datum'\] mapped"):
        load_checked_region(_region(tmp_path, without_status_date))


# -- weekly scheduled hours ---------------------------------------------------------------------------


def test_scheduled_hours_are_optional_and_read_where_mapped(tmp_path):
    def timetable(raw: dict) -> None:
        raw["sources"]["vo_verzuim"]["columns"]["Uren rooster"] = "uren_rooster"

    rows = [BASELINE["vo_absence"] | {"uren_rooster": "28"}, BASELINE["vo_absence"] | {"week_start": "21-09-2026"}]
    result = _validate("vo_absence", rows, _region(tmp_path, timetable))
    assert result.rejects.empty
    assert result.valid["uren_rooster"].tolist()[0] == 28.0 and pd.isna(result.valid["uren_rooster"].tolist()[1])
