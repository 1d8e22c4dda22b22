"""The school registry: the whole country by default, a region's own DUO file where it names one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from schemas.codelists import SchoolRegistryError, known_schools, read_school_registry, school_names
from schemas.validate import validate_dataset
from schemas.region_contract import load_checked_region
from settings.region import RegionConfigError

from tests.conftest import DEMO_REGION
from tests.test_rules import BASELINE, EVALUATION_DATE, raw_frame

NIJMEGEN_VO = "00CB00"  # Scholengemeenschap voor Voortgezet Vrije Schoolonderwijs, Gelderland
HOOGEVEEN_VO = "19IW00"


def _region_with_registry(tmp_path: Path, registry: str | list[str]) -> Path:
    raw = yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))
    raw["school_registry"] = registry
    path = tmp_path / "regions" / "region.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _duo_export(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A DUO open-data export as DUO writes it: upper-case headers, ';', Windows-1252."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["PROVINCIE;INSTELLINGSCODE;VESTIGINGSCODE;VESTIGINGSNAAM;GEMEENTENAAM"]
    lines += [f"Gelderland;{code[:4]};{code};{name};NIJMEGEN" for code, name in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def test_the_national_registry_knows_schools_in_every_province():
    schools = known_schools()
    assert len(schools) == 8622
    assert {NIJMEGEN_VO, HOOGEVEEN_VO} <= schools


def test_a_school_outside_drenthe_and_overijssel_passes_known_school():
    row = BASELINE["vo_enrolment"] | {"vo_brin6": NIJMEGEN_VO}
    result = validate_dataset("vo_enrolment", raw_frame("vo_enrolment", [row]), load_checked_region(DEMO_REGION),
                              evaluation_date=EVALUATION_DATE)
    assert result.rejects.empty and len(result.valid) == 1


def test_school_names_are_given_by_location_and_by_institution():
    names = school_names()
    assert names[NIJMEGEN_VO] == "Scholengemeenschap voor Voortgezet Vrije Schoolonderwijs"
    assert names["19IW"] == names["19IW00"] == "Regionale Scholengemeenschap Wolfsbos"
    assert "25LG" not in names  # MBO institutions are not in the registry: callers show the code alone


def test_school_names_gives_each_caller_its_own_dict():
    school_names()[NIJMEGEN_VO] = "changed"
    assert school_names()[NIJMEGEN_VO] != "changed"


def test_a_duo_export_with_its_own_headers_and_separator_is_read(tmp_path):
    export = _duo_export(tmp_path / "duo.csv", [("99ZZ00", "Nieuwe School Zuid"), ("99ZZ01", "Nieuwe School Noord")])
    registry = read_school_registry(export)
    assert registry[["vestigingscode", "brin", "vestigingsnaam"]].to_dict("records") == [
        {"vestigingscode": "99ZZ00", "brin": "99ZZ", "vestigingsnaam": "Nieuwe School Zuid"},
        {"vestigingscode": "99ZZ01", "brin": "99ZZ", "vestigingsnaam": "Nieuwe School Noord"},
    ]


def test_an_older_duo_export_with_a_two_digit_vestigingsnummer_is_joined_to_its_brin(tmp_path):
    export = tmp_path / "po.csv"
    export.write_text("BRIN NUMMER,VESTIGINGSNUMMER,VESTIGINGSNAAM\n99ZZ,00,De Nieuwe Basisschool\n", encoding="utf-8")
    assert known_schools(export) == {"99ZZ00"}


def test_a_region_naming_its_own_duo_file_checks_school_codes_against_it(tmp_path):
    _duo_export(tmp_path / "regions" / "duo" / "vestigingen.csv", [("99ZZ00", "Nieuwe School")])
    region = load_checked_region(_region_with_registry(tmp_path, "duo/vestigingen.csv"))
    assert region.school_registry == [str((tmp_path / "regions" / "duo" / "vestigingen.csv").resolve())]

    rows = [BASELINE["vo_enrolment"] | {"vo_brin6": "99ZZ00"}, BASELINE["vo_enrolment"] | {"vo_brin6": HOOGEVEEN_VO}]
    result = validate_dataset("vo_enrolment", raw_frame("vo_enrolment", rows), region, evaluation_date=EVALUATION_DATE)
    assert result.valid["vo_brin6"].tolist() == ["99ZZ00"]
    assert set(zip(result.rejects["delivery_row"], result.rejects["rule"])) == {(2, "known_school")}
    assert school_names(region.school_registry) == {"99ZZ00": "Nieuwe School", "99ZZ": "Nieuwe School"}


def test_a_missing_registry_file_is_named_when_the_region_loads(tmp_path):
    with pytest.raises(RegionConfigError, match=r"school_registry: .*nergens\.csv: cannot read"):
        load_checked_region(_region_with_registry(tmp_path, ["nergens.csv"]))


def test_a_registry_without_a_code_column_is_refused_with_its_header(tmp_path):
    bad = tmp_path / "scholen.csv"
    bad.write_text("naam;plaats\nDe School;Ergens\n", encoding="utf-8")
    with pytest.raises(SchoolRegistryError, match=r"no column vestigingscode .*\(naam, plaats\)"):
        read_school_registry(bad)
