"""A second, different SWV runs its own night: SWV VO2507 (Nijmegen, Land van Cuijk and north Limburg;
eleven municipalities in Gelderland, Noord-Brabant and Limburg, two of them formed by mergers).

Set up as a new SWV would: ``swv init`` writes the region file, the steward adds three delivery
shapes of its partners (support levels as labels, a VVA status history without application dates,
weekly scheduled hours), the demo generator writes deliveries for it, and ``swv night`` runs the
night on a fresh instance. The outputs are compared with the generator's planted truth by
municipality, by school and by reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT

pytestmark = pytest.mark.slow

PUPILS = 1200
GEMEENTEN = ["GM0209", "GM0225", "GM0252", "GM0268", "GM0296", "GM0668", "GM0893", "GM0907", "GM0944", "GM1945",
             "GM1982"]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    import pipelines.definitions
    from demo.generate import generate_region
    from pipelines import cli
    from settings.region import load_region

    root = tmp_path_factory.mktemp("vo2507")
    var = root / "var"
    saved = dict(os.environ)
    try:
        for name in ("DAGSTER_HOME", "SWV_WAREHOUSE_URL", "SWV_REGION_FILE"):
            os.environ.pop(name, None)
        os.environ["SWV_VAR_DIR"] = str(var)
        os.environ["SWV_ALERT_SALT"] = "vo2507-test-salt"
        os.environ.update({f"SWV_EXPORT_KEY_{code}": f"key-{code}" for code in GEMEENTEN})

        region_path = root / "vo2507.yaml"
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["init", "--swv", "VO2507", "--output", str(region_path)]) == 0
        raw = yaml.safe_load(region_path.read_text(encoding="utf-8"))
        raw["reference_date"] = "2026-10-05"
        raw["sources"]["po_overdracht"]["codes"] = {"ondersteuningsbehoefte": {"geen": "nee", "basis": "nee",
                                                                               "extra": "ja"}}
        del raw["sources"]["mbo_vva"]["columns"]["aanmelddatum"]
        raw["sources"]["mbo_vva"]["derive"] = {"aanmelddatum": "first_status_date"}
        region_path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        region = load_region(region_path)
        generate_region(region, var / "sources", var / "demo" / "truth.json", seed=11, pupils=PUPILS)

        builds = []
        original = pipelines.definitions.build_definitions

        def counted(*args, **kwargs):
            builds.append(args)
            return original(*args, **kwargs)

        out = io.StringIO()
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
            patch.setattr(pipelines.definitions, "build_definitions", counted)
            code = cli.main(["night", "--region", str(region_path)])
        yield {"var": var, "region": region, "code": code, "out": out.getvalue(), "builds": builds,
               "truth": json.loads((var / "demo" / "truth.json").read_text(encoding="utf-8"))}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _lake(var: Path, asset: str) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((var / "lake" / "assets" / asset).glob("*.parquet"))],
                     ignore_index=True)


def _key(identifier: dict) -> str:
    return f"bsn:{identifier['bsn']}" if "bsn" in identifier else f"onr:{identifier['onderwijsnummer']}"


def test_the_night_succeeds_and_its_summary_shows_every_municipality(night):
    assert night["code"] == 0, night["out"]
    summary = night["out"].split("\nNight of 2026-10-05 for VO2507: succeeded.\n", 1)[1].splitlines()
    assert "FAILED" not in night["out"]
    names = {g.code: g.naam for g in night["region"].gemeenten}
    for code in GEMEENTEN:  # its waitlist and its export, the name beside the code
        assert len([line for line in summary if f" {names[code]} ({code}) " in line and " ok" in line]) == 2, code


def test_the_night_loads_the_definitions_once(night):
    assert len(night["builds"]) == 1


def test_the_instance_is_created_and_holds_the_nights_runs(night):
    home = night["var"] / "dagster"
    assert (home / "dagster.yaml").read_text() == (PROJECT / "deploy" / "dagster.local.yaml").read_text()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
    assert {run.job_name for run in runs} >= {"nightly"}
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
    nightly = next(run for run in runs if run.job_name == "nightly")
    assert f"run {nightly.run_id}" in night["out"]


def test_alerts_equal_the_planted_truth_per_reason(night):
    alerts = _lake(night["var"], "thuiszitter_alerts")
    found = set(zip(alerts["pupil_key"], alerts["reason"]))
    planted = {(_key(entry["id"]), reason) for entry in night["truth"]["alerts"] for reason in entry["reasons"]}
    assert {reason for _, reason in planted} >= {"ABS", "LRV", "V16", "PO_GEEN_VO", "MBO_GEEN_AANMELDING",
                                                "MBO_NIET_INGESCHREVEN", "JZ_WACHT_VERZUIM"}
    assert found == planted


def test_each_municipality_gets_the_alerts_of_its_own_residents_in_its_own_list(night):
    expected: dict[str, set[str]] = {}
    for entry in night["truth"]["alerts"]:  # DOORSTROOMPUNT included: the municipality's own desk acts on it
        expected.setdefault(entry["woongemeente_code"], set()).add(_key(entry["id"]))
    lists = sorted((night["var"] / "outbox" / "signalen").glob("*/gemeenten/*/*.csv"))
    listed: dict[str, set[str]] = {}
    for path in lists:
        rows = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")
        keys = ("bsn:" + rows["BSN"]).fillna("onr:" + rows["Onderwijsnummer"])
        listed.setdefault(path.parent.name, set()).update(keys)
    assert {code: keys for code, keys in listed.items() if keys} == expected
    assert set(expected) <= set(GEMEENTEN) and len(expected) >= 5


def test_every_municipality_receives_its_own_export_and_no_other_residents(night):
    exports = night["var"] / "outbox" / "gemeenten"
    assert sorted(p.name for p in exports.iterdir()) == GEMEENTEN
    for path in exports.glob("*/*/*.csv"):
        rows = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")
        if "woongemeente_code" in rows.columns:
            assert set(rows["woongemeente_code"]) <= {path.parent.parent.name}, path


@pytest.mark.parametrize(("route", "truth_key", "code"), [("po-vo", "handovers_po_vo", "vo_brin6"),
                                                          ("vo-mbo", "handovers_vo_mbo", "mbo_brin")])
def test_every_pupil_is_handed_over_to_exactly_its_school(night, route, truth_key, code):
    frames = [pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig").assign(school=path.parent.name)
              for path in sorted((night["var"] / "outbox" / "overdracht" / route).glob("*/*/overdracht.csv"))]
    rows = pd.concat(frames, ignore_index=True)
    placed = rows.assign(id=rows["BSN"].fillna(rows["Onderwijsnummer"])).groupby("id")["school"].agg(set)
    expected = {entry["id"].get("bsn") or entry["id"].get("onderwijsnummer"): entry[code]
                for entry in night["truth"][truth_key]}
    assert {i: {school} for i, school in expected.items()} == placed.to_dict()


def test_po_vo_handovers_go_to_the_regions_own_schools_from_the_national_registry(night):
    registry = pd.read_csv(PROJECT / "reference" / "duo_schoolvestigingen_nl_2024.csv", dtype=str)
    schools = {p.name for p in (night["var"] / "outbox" / "overdracht" / "po-vo").glob("*/*")}
    provinces = set(registry.loc[registry["vestigingscode"].isin(schools), "provincie"])
    assert len(schools) > 10 and provinces <= {"Gelderland", "Noord-Brabant", "Limburg"}


def test_every_planted_defect_is_quarantined_under_its_rule(night):
    with sqlite3.connect(night["var"] / "warehouse.sqlite") as conn:
        quarantine = pd.read_sql("SELECT source_id, delivery, delivery_row, rule FROM quarantine", conn)
    found = set(zip(quarantine["source_id"], quarantine["delivery"], quarantine["delivery_row"], quarantine["rule"]))
    planted = {(d["source_id"], d["delivery"], d["row"], d["rule"]) for d in night["truth"]["defects"]}
    assert "absence_within_schedule" in {rule for *_, rule in planted}
    assert planted <= found


def test_the_delivery_shapes_are_read_as_configured(night):
    transfers = _lake(night["var"], "po_transfers")
    assert set(transfers["ondersteuningsbehoefte"].dropna()) == {True, False}  # from the labels geen and extra
    outflow = _lake(night["var"], "mbo_outflow")
    applied = outflow.loc[outflow["mbo_brin"].notna()]
    assert applied["aanmelddatum"].notna().all()  # derived from each application's first status
    first = applied.groupby(["bsn", "mbo_brin", "crebo"], dropna=False)["status_datum"].transform("min")
    assert (applied["aanmelddatum"] == first).all()
    assert _lake(night["var"], "vo_absence")["uren_rooster"].notna().all()
