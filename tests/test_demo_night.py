"""One whole demo night, end to end, on a small demo region: the acceptance tests of the pipeline.

The night runs once per test module (generation, partner API server on a free port, the waitlist
partition runs and the nightly job, on a persistent Dagster instance and a SQLite warehouse in a
temporary folder); the tests then compare what landed with the generator's planted truth.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from tests.conftest import DEMO_REGION

PUPILS = 1500


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from demo.__main__ import DEMO_FAULTS, _demo_environment
    from demo.api_server import DemoApiServer
    from demo.generate import generate_region
    from settings.region import load_region

    var = tmp_path_factory.mktemp("var")
    saved = dict(os.environ)
    os.environ["SWV_VAR_DIR"] = str(var)
    os.environ["DAGSTER_HOME"] = str(var / "dagster")
    os.environ.pop("SWV_WAREHOUSE_URL", None)
    (var / "dagster").mkdir()
    (var / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    region = load_region(DEMO_REGION)
    _demo_environment(region)
    truth_path = var / "demo" / "truth.json"
    generate_region(region, var / "sources", truth_path, seed=7, pupils=PUPILS)
    try:
        with DemoApiServer(region, var / "sources" / "api", faults=DEMO_FAULTS) as server:
            os.environ["SWV_DEMO_API"] = server.url
            from pipelines.definitions import build_definitions
            from pipelines.night import run_night

            defs = build_definitions(DEMO_REGION)
            with dg.DagsterInstance.get() as instance:
                first = run_night(defs, instance)
                second = run_night(defs, instance)
            yield {"var": var, "truth": json.loads(truth_path.read_text()), "first": first, "second": second,
                   "defs": defs}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _lake(var: Path, asset: str) -> pd.DataFrame:
    folder = var / "lake" / "assets" / asset
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))], ignore_index=True)


def _quarantine(var: Path) -> pd.DataFrame:
    with sqlite3.connect(var / "warehouse.sqlite") as conn:
        return pd.read_sql("SELECT * FROM quarantine", conn)


def test_the_night_succeeds_with_every_municipality_ingested(night):
    assert night["first"].success and night["second"].success
    assert all(night["first"].waitlist_runs.values()), night["first"].waitlist_runs


def test_every_planted_defect_is_quarantined_with_its_rule(night):
    quarantine = _quarantine(night["var"])
    found = set(zip(quarantine["source_id"], quarantine["delivery_row"], quarantine["rule"]))
    delivered = set(zip(quarantine["source_id"], quarantine["delivery"], quarantine["delivery_row"]))
    missing = []
    for defect in night["truth"]["defects"]:
        key = (defect["source_id"], defect["row"], defect["rule"])
        same_file = not defect["delivery"] or (defect["source_id"], defect["delivery"], defect["row"]) in delivered
        if key not in found or not same_file:
            missing.append(defect)
    assert not missing, f"{len(missing)} planted defects not quarantined as expected, e.g. {missing[:3]}"


def test_no_clean_row_is_lost_raw_equals_valid_plus_quarantined(night):
    var = night["var"]
    quarantine = _quarantine(var)
    open_rows = quarantine[quarantine["resolved_at"].isna()].drop_duplicates(["source_id", "delivery", "delivery_row"])
    for dataset in ("po_transfers", "youth_care_waitlist", "vo_enrolment", "vo_absence", "mbo_outflow"):
        raw = _lake(var, f"{dataset}_raw")["source_id"].value_counts()
        valid = _lake(var, dataset)["source_id"].value_counts()
        rejected = open_rows[open_rows["source_id"].isin(raw.index)]["source_id"].value_counts()
        for source_id, rows in raw.items():
            assert rows == valid.get(source_id, 0) + rejected.get(source_id, 0), (dataset, source_id)


def test_a_second_night_on_the_same_deliveries_duplicates_no_quarantine_entry(night):
    quarantine = _quarantine(night["var"])
    key = ["source_id", "delivery", "row_fingerprint", "column", "rule"]
    assert not quarantine.duplicated(key).any()
    assert quarantine["resolved_at"].isna().all()


def _personal_tokens(var: Path) -> set[str]:
    """Every BSN, onderwijsnummer and (longer) surname delivered to the pipeline."""
    tokens: set[str] = set()
    for dataset in ("po_transfers", "youth_care_waitlist", "vo_enrolment", "vo_absence", "mbo_outflow"):
        raw = _lake(var, f"{dataset}_raw")
        for column in ("bsn", "onderwijsnummer", "achternaam"):
            if column in raw.columns:
                values = raw[column].dropna().astype(str)
                tokens |= {v for v in values if len(v) >= 6}
    return tokens


def test_no_bsn_onderwijsnummer_or_surname_reaches_dagster_storage(night):
    """Event logs, run storage and captured compute logs hold no personal value."""
    var = night["var"]
    tokens = _personal_tokens(var)
    assert len(tokens) > 1000
    pattern = re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))
    leaks = []
    for path in (var / "dagster").rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="ignore")
            for match in pattern.finditer(text):
                # A surname can be part of an ordinary word; require it to stand on its own.
                start, end = match.span()
                if (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
                    leaks.append((path.relative_to(var), match.group()[:2] + "…"))
                    break
    assert not leaks, f"personal values found in Dagster storage: {leaks[:5]}"


def test_every_municipality_partition_shows_its_row_count(night):
    key = dg.AssetKey("youth_care_waitlist_raw")
    with dg.DagsterInstance.get() as instance:
        for gemeente in ("GM0118", "GM0119", "GM1690", "GM1701", "GM1708"):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[gemeente]), limit=1
            ).records
            assert records, gemeente
            assert records[0].asset_materialization.metadata["dagster/row_count"].value > 0
