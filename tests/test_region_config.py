"""The region YAML is validated when Definitions load; errors name the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from settings.region import RegionConfigError, load_region
from tests.conftest import DEMO_REGION


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "region.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def demo() -> dict:
    return yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))


def test_demo_region_loads_with_its_five_municipalities():
    region = load_region(DEMO_REGION)
    assert region.swv.code == "VO2203"
    assert sorted(region.gemeente_codes) == ["GM0118", "GM0119", "GM1690", "GM1701", "GM1708"]


def test_a_bad_gemeentecode_names_the_file_and_key(tmp_path, demo):
    demo["gemeenten"][1]["code"] = "0118"
    path = _write(tmp_path, demo)
    with pytest.raises(RegionConfigError) as error:
        load_region(path)
    assert str(path) in str(error.value)
    assert "gemeenten.1.code" in str(error.value)
    assert "GM followed by 4 digits" in str(error.value)


def test_cbs_padding_of_a_gemeentecode_is_stripped(tmp_path, demo):
    demo["gemeenten"][0]["code"] = "GM1690    "
    assert load_region(_write(tmp_path, demo)).gemeente_codes[0] == "GM1690"


def test_mapping_onto_an_unknown_field_names_the_source_and_column(tmp_path, demo):
    demo["sources"]["wachtlijst_hoogeveen"]["columns"]["BSN"] = "burgerservicenummer"
    with pytest.raises(RegionConfigError) as error:
        load_region(_write(tmp_path, demo))
    assert "sources.wachtlijst_hoogeveen.columns.BSN" in str(error.value)


def test_a_required_field_left_unmapped_is_named(tmp_path, demo):
    del demo["sources"]["vo_inschrijvingen"]["columns"]["Datum inschrijving"]
    with pytest.raises(RegionConfigError, match=r"inschrijfdatum"):
        load_region(_write(tmp_path, demo))


def test_an_unknown_key_is_refused(tmp_path, demo):
    demo["sources"]["mbo_vva"]["location"]["tokken"] = "x"
    with pytest.raises(RegionConfigError, match=r"sources\.mbo_vva\.location.*tokken"):
        load_region(_write(tmp_path, demo))


def test_a_waitlist_for_a_municipality_outside_the_region_is_refused(tmp_path, demo):
    demo["sources"]["wachtlijst_meppel"]["gemeente"] = "GM0180"
    with pytest.raises(RegionConfigError, match=r"sources\.wachtlijst_meppel\.gemeente"):
        load_region(_write(tmp_path, demo))


def test_yaml_syntax_errors_name_the_file(tmp_path):
    path = tmp_path / "region.yaml"
    path.write_text("swv: [unclosed\n", encoding="utf-8")
    with pytest.raises(RegionConfigError, match="not valid YAML"):
        load_region(path)


def test_environment_references_are_expanded(tmp_path, demo, monkeypatch):
    monkeypatch.setenv("SWV_DEMO_API", "http://127.0.0.1:9999")
    region = load_region(_write(tmp_path, demo))
    assert region.sources["mbo_vva"].location.url.startswith("http://127.0.0.1:9999/")


def test_docs_sources_md_matches_the_models_and_the_demo_region():
    from schemas.document import sources_markdown

    documented = (DEMO_REGION.parent.parent / "docs" / "sources.md").read_text(encoding="utf-8")
    assert documented == sources_markdown(load_region(DEMO_REGION)), (
        "docs/sources.md is out of date: python -m schemas.document regions/vo2203.yaml > docs/sources.md"
    )
