"""Onboarding a sixth municipality with yet another export layout is a YAML change, not a code change."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import yaml

from pipelines.definitions import build_definitions
from schemas.region_contract import load_checked_region
from schemas.validate import validate_dataset
from tests.conftest import DEMO_REGION

# Coevorden exports its waitlist as Latin-1, tab-separated, d/m/yyyy dates, its own column names,
# its own column order, and labels of its own for the referrer.
COEVORDEN_EXPORT = (
    "Datum aanvraag\tVerwijzende partij\tCategorie jeugdhulp\tAanbieder (AGB)\tBurgerservicenr\tGeb.dat\tGemeente\tStatus\tOpmerking\n"
    "3/2/2026\thuisarts\t45\t12345678\t111222333\t14/3/2012\tGM0109\twacht\tgeen\n"
    "17/4/2026\tjeugdarts\t54\t87654321\t123456782\t2/11/2011\tGM0109\twacht\tcliënt élan\n"
    "1/5/2026\tonbekende verwijzer\t45\t12345678\t111222333\t14/3/2012\tGM0109\twacht\t\n"
).encode("latin-1")


def test_a_sixth_municipality_is_onboarded_purely_through_yaml(tmp_path, var_dir):
    region = yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))
    region["gemeenten"].append({"code": "GM0109", "naam": "Coevorden"})
    # The other municipalities' waitlists are not delivered in this test; only Coevorden's is read.
    region["sources"] = {k: v for k, v in region["sources"].items() if v["dataset"] != "youth_care_waitlist"}
    region["sources"]["wachtlijst_coevorden"] = {
        "dataset": "youth_care_waitlist",
        "gemeente": "GM0109",
        "partner": "Gemeente Coevorden",
        "location": {"kind": "file", "path": "jeugdhulp/coevorden/*.txt",
                     "format": {"type": "csv", "encoding": "latin-1", "delimiter": "\t"}},
        "date_format": "%d/%m/%Y",
        "codes": {"verwijzer": {"huisarts": "02", "jeugdarts": "03"}},
        "columns": {
            "Burgerservicenr": "bsn", "Geb.dat": "geboortedatum", "Gemeente": "woongemeente_code",
            "Verwijzende partij": "verwijzer", "Categorie jeugdhulp": "productcategorie",
            "Aanbieder (AGB)": "zorgaanbieder_agb", "Datum aanvraag": "aanmelddatum",
        },
    }
    region_path = tmp_path / "region.yaml"
    region_path.write_text(yaml.safe_dump(region, allow_unicode=True), encoding="utf-8")
    (var_dir / "sources" / "jeugdhulp" / "coevorden").mkdir(parents=True)
    (var_dir / "sources" / "jeugdhulp" / "coevorden" / "export_2026-10-05.txt").write_bytes(COEVORDEN_EXPORT)

    defs = build_definitions(region_path)
    job = defs.resolve_job_def("waitlist_ingest")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["delivery_wachtlijst_coevorden"] is True
    assert checks["freshness_GM0109"] is True  # judged again with every re-pull
    assert checks["freshness_GM0118"] is False  # its waitlist source was left out of this region

    raw = pd.read_parquet(var_dir / "lake" / "assets" / "youth_care_waitlist_raw" / "_all.parquet")
    assert len(raw) == 3
    assert set(raw["source_id"]) == {"wachtlijst_coevorden"}

    outcome = validate_dataset("youth_care_waitlist", raw, load_checked_region(region_path),
                               evaluation_date=pd.Timestamp("2026-10-05").date())
    assert len(outcome.valid) == 2
    assert outcome.valid["verwijzer"].tolist() == ["02", "03"]
    assert outcome.valid["aanmelddatum"].dt.strftime("%Y-%m-%d").tolist() == ["2026-02-03", "2026-04-17"]
    assert set(outcome.rejects["rule"]) == {"unknown_code"}  # the unknown referrer label is reported, not dropped
