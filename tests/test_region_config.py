"""The region YAML is validated when Definitions load; errors name the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from schemas.region_contract import load_checked_region
from settings.region import RegionConfigError

from tests.conftest import DEMO_REGION


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "region.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def demo() -> dict:
    return yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))


def test_demo_region_loads_with_its_five_municipalities():
    region = load_checked_region(DEMO_REGION)
    assert region.swv.code == "VO2203"
    assert sorted(region.gemeente_codes) == ["GM0118", "GM0119", "GM1690", "GM1701", "GM1708"]


def test_a_bad_gemeentecode_names_the_file_and_key(tmp_path, demo):
    demo["gemeenten"][1]["code"] = "0118"
    path = _write(tmp_path, demo)
    with pytest.raises(RegionConfigError) as error:
        load_checked_region(path)
    assert str(path) in str(error.value)
    assert "gemeenten.1.code" in str(error.value)
    assert "GM followed by 4 digits" in str(error.value)


def test_cbs_padding_of_a_gemeentecode_is_stripped(tmp_path, demo):
    demo["gemeenten"][0]["code"] = "GM1690    "
    assert load_checked_region(_write(tmp_path, demo)).gemeente_codes[0] == "GM1690"


def test_mapping_onto_an_unknown_field_names_the_source_and_column(tmp_path, demo):
    demo["sources"]["wachtlijst_hoogeveen"]["columns"]["BSN"] = "burgerservicenummer"
    with pytest.raises(RegionConfigError) as error:
        load_checked_region(_write(tmp_path, demo))
    assert "sources.wachtlijst_hoogeveen.columns.BSN" in str(error.value)


def test_a_required_field_left_unmapped_is_named(tmp_path, demo):
    del demo["sources"]["vo_inschrijvingen"]["columns"]["Datum inschrijving"]
    with pytest.raises(RegionConfigError, match=r"inschrijfdatum"):
        load_checked_region(_write(tmp_path, demo))


def test_an_unknown_key_is_refused(tmp_path, demo):
    demo["sources"]["mbo_vva"]["location"]["tokken"] = "x"
    with pytest.raises(RegionConfigError, match=r"sources\.mbo_vva\.location.*tokken"):
        load_checked_region(_write(tmp_path, demo))


def test_a_waitlist_for_a_municipality_outside_the_region_is_refused(tmp_path, demo):
    demo["sources"]["wachtlijst_meppel"]["gemeente"] = "GM0180"
    with pytest.raises(RegionConfigError, match=r"sources\.wachtlijst_meppel\.gemeente"):
        load_checked_region(_write(tmp_path, demo))


def test_yaml_syntax_errors_name_the_file(tmp_path):
    path = tmp_path / "region.yaml"
    path.write_text("swv: [unclosed\n", encoding="utf-8")
    with pytest.raises(RegionConfigError, match="not valid YAML"):
        load_checked_region(path)


def test_environment_references_are_expanded(tmp_path, demo, monkeypatch):
    monkeypatch.setenv("SWV_DEMO_API", "http://127.0.0.1:9999")
    region = load_checked_region(_write(tmp_path, demo))
    assert region.sources["mbo_vva"].location.url.startswith("http://127.0.0.1:9999/")


def test_docs_sources_md_matches_the_models_and_the_demo_region():
    from schemas.document import sources_markdown

    documented = (DEMO_REGION.parent.parent / "docs" / "sources.md").read_text(encoding="utf-8")
    assert documented == sources_markdown(load_checked_region(DEMO_REGION)), (
        "docs/sources.md is out of date: python -m schemas.document regions/vo2203.yaml > docs/sources.md"
    )


# -- exports and retention (docs/configuration.md) ------------------------------------------------


def test_exports_default_to_every_format_and_no_receivers():
    exports = load_checked_region(DEMO_REGION).exports
    assert (exports.formats, exports.upload) == (["csv", "xlsx", "parquet"], {})


def test_export_formats_and_a_receiver_per_municipality_are_read_from_the_file(tmp_path, demo):
    demo["exports"] = {"formats": ["csv", "parquet"],
                       "upload": {"GM0118": {"url": "https://upload.hoogeveen.example/swv/", "token_env": "T"}}}
    exports = load_checked_region(_write(tmp_path, demo)).exports
    assert exports.formats == ["csv", "parquet"]
    assert (exports.upload["GM0118"].url, exports.upload["GM0118"].token_env) == (
        "https://upload.hoogeveen.example/swv", "T")


@pytest.mark.parametrize("formats", [[], ["csv", "csv"], ["pdf"]])
def test_an_empty_repeated_or_unknown_export_format_is_refused(tmp_path, demo, formats):
    demo["exports"] = {"formats": formats}
    with pytest.raises(RegionConfigError, match=r"exports\.formats"):
        load_checked_region(_write(tmp_path, demo))


def test_a_receiver_for_a_municipality_outside_the_region_is_refused(tmp_path, demo):
    demo["exports"] = {"upload": {"GM0180": {"url": "https://upload.example/x"}}}
    with pytest.raises(RegionConfigError, match=r"exports\.upload: \['GM0180'\]"):
        load_checked_region(_write(tmp_path, demo))


def test_a_receiver_over_plain_http_to_another_machine_is_refused(tmp_path, demo):
    demo["exports"] = {"upload": {"GM0118": {"url": "http://upload.hoogeveen.example/swv"}}}
    with pytest.raises(RegionConfigError, match=r"exports\.upload\.GM0118\.url.*https"):
        load_checked_region(_write(tmp_path, demo))


def test_a_password_in_a_receiver_url_is_refused_without_repeating_it(tmp_path, demo):
    demo["exports"] = {"upload": {"GM0118": {"url": "https://swv:geheim123@upload.example/x"}}}
    with pytest.raises(RegionConfigError, match="token_env") as error:
        load_checked_region(_write(tmp_path, demo))
    assert "geheim123" not in str(error.value)


def test_retention_periods_given_in_the_file_replace_only_those_defaults(tmp_path, demo):
    demo["retention"] = {"raw_years": {"po_transfers": 3}, "exports_days": 90}
    retention = load_checked_region(_write(tmp_path, demo)).retention
    assert retention.raw_years["po_transfers"] == 3 and retention.raw_years["vo_absence"] == 5
    assert (retention.exports_days, retention.alert_history_years) == (90, 5)


def test_a_retention_period_for_an_unknown_dataset_is_refused(tmp_path, demo):
    demo["retention"] = {"raw_years": {"verzuim": 5}}
    with pytest.raises(RegionConfigError, match=r"retention\.raw_years\.verzuim"):
        load_checked_region(_write(tmp_path, demo))
