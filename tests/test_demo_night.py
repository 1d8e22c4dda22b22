"""One whole demo night, end to end, on a small demo region: the acceptance tests of the pipeline.

The night runs once per test module (generation, partner API server on a free port, the nightly
run, on a persistent Dagster instance and a SQLite warehouse in a temporary folder); the tests then compare what landed with the generator's planted truth.
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

pytestmark = pytest.mark.slow  # a whole demo night
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
                after_first = _outbox_state(var / "outbox")
                second = run_night(defs, instance)
            yield {"var": var, "truth": json.loads(truth_path.read_text()), "first": first, "second": second,
                   "defs": defs, "outbox_after_first": after_first}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _outbox_state(outbox: Path) -> dict[str, tuple[str, int]]:
    import hashlib

    return {str(p.relative_to(outbox)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(outbox.rglob("*")) if p.is_file()}


def _lake(var: Path, asset: str) -> pd.DataFrame:
    folder = var / "lake" / "assets" / asset
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))], ignore_index=True)


def _quarantine(var: Path) -> pd.DataFrame:
    with sqlite3.connect(var / "warehouse.sqlite") as conn:
        return pd.read_sql("SELECT * FROM quarantine", conn)


def test_the_night_succeeds_with_every_municipality_ingested(night):
    assert night["first"].success and night["second"].success
    assert all(night["first"].waitlists.values()), night["first"].waitlists
    assert sorted(night["first"].exports) == ["GM0118", "GM0119", "GM1690", "GM1701", "GM1708"]


def test_the_pupil_history_holds_every_linked_pupil_and_each_night_is_observed(night):
    var = night["var"]
    pupils = _lake(var, "pupils")
    with sqlite3.connect(var / "warehouse.sqlite") as conn:
        open_keys = [key for (key,) in conn.execute("SELECT pupil_key FROM pupil_history WHERE valid_to IS NULL")]
    assert sorted(open_keys) == sorted(pupils["pupil_key"])
    with dg.DagsterInstance.from_config(str(var / "dagster")) as instance:
        records = instance.fetch_observations(dg.AssetKey("pupils"), limit=10, ascending=True).records
    counts = [{name: value.value for name, value in r.asset_observation.metadata.items()} for r in records]
    assert counts == [  # the second night replays the same deliveries on the same date: nothing changes
        {"history_opened": len(pupils), "history_closed": 0, "history_unchanged": 0},
        {"history_opened": 0, "history_closed": 0, "history_unchanged": len(pupils)},
    ]


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


def test_every_municipalitys_waitlist_shows_its_row_count(night):
    checks = {e.check_name: e for e in night["first"].nightly.get_asset_check_evaluations()}
    region = night["defs"].resources["region_config"].region
    for source_id in region.sources_for("youth_care_waitlist"):
        check = checks[f"delivery_{source_id}"]
        assert check.passed and check.metadata["rows"].value > 0, source_id


def test_every_freshness_check_is_judged_by_the_night_itself(night):
    """Not only by the 07:00 freshness job: after a night no source or municipality stays 'not evaluated'."""
    checks = {e.check_name: e for e in night["first"].nightly.get_asset_check_evaluations()}
    region = night["defs"].resources["region_config"].region
    expected = {f"freshness_{code}" for code in region.gemeente_codes}
    expected |= {f"freshness_{source_id}" for source_id, source in region.sources.items()
                 if source.dataset != "youth_care_waitlist"}
    assert expected <= set(checks), sorted(expected - set(checks))


def test_every_partner_gets_feedback_on_its_own_rows_only_without_personal_values(night):
    var, region = night["var"], night["defs"].resources["region_config"].region
    from assets.validatie.feedback import partner_of

    folders = sorted((var / "outbox" / "terugkoppeling").iterdir())
    assert {f.name for f in folders} >= {"mbo_vva", *region.sources_for("youth_care_waitlist")}
    lines = 0
    for folder in folders:
        feedback = pd.read_csv(folder / "afgekeurde_rijen.csv", sep=";", dtype=str, encoding="utf-8-sig")
        assert (folder / "afgekeurde_rijen.xlsx").exists() and (folder / "manifest.json").exists()
        owners = [(source_id, source) for source_id, source in region.sources.items()
                  if source.partner in set(feedback["Bron"])]
        for delivery in feedback["Levering"]:
            assert any(partner_of(sid, source, delivery) == folder.name for sid, source in owners), (folder, delivery)
        lines += len(feedback)
    assert lines > 0  # the demo spoils 1.5 % of the rows
    pattern = re.compile("|".join(re.escape(t) for t in sorted(_personal_tokens(var), key=len, reverse=True)))
    for path in (var / "outbox" / "terugkoppeling").rglob("afgekeurde_rijen.csv"):
        assert not pattern.search(path.read_text(encoding="utf-8-sig")), path


def _id(entry: dict) -> str:
    return entry["id"].get("bsn") or entry["id"].get("onderwijsnummer")


def _handover_rows(var: Path, route: str) -> pd.DataFrame:
    frames = []
    for path in sorted((var / "outbox" / "overdracht" / route).glob("*/*/overdracht.csv")):
        frame = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")
        frames.append(frame.assign(school=path.parent.name))
    rows = pd.concat(frames, ignore_index=True)
    rows["id"] = rows["BSN"].fillna(rows["Onderwijsnummer"])
    return rows


@pytest.mark.parametrize(("route", "truth_key", "code"), [("po-vo", "handovers_po_vo", "vo_brin6"),
                                                          ("vo-mbo", "handovers_vo_mbo", "mbo_brin")])
def test_every_pupil_is_routed_to_exactly_the_school_it_registered_at(night, route, truth_key, code):
    rows = _handover_rows(night["var"], route)
    expected = {_id(e): e[code] for e in night["truth"][truth_key]}
    placed = rows.groupby("id")["school"].agg(set)
    wrong = {i: (expected[i], placed.get(i)) for i in expected if placed.get(i) != {expected[i]}}
    assert not wrong, f"{len(wrong)} of {len(expected)} pupils not (only) in their school's file"
    unexpected = set(placed.index) - set(expected)
    assert not unexpected, f"{len(unexpected)} pupils in a handover file without a planted aanmelding there"


def test_no_consent_gated_value_of_a_pupil_without_consent_appears_anywhere(night):
    var = night["var"]
    secrets = {v for entry in night["truth"]["no_consent"] for v in entry["values"].values()
               if isinstance(v, str) and len(v) >= 8}
    assert secrets
    leaks = []
    for root in (var / "outbox", var / "dagster"):
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            if path.suffix == ".xlsx":
                import openpyxl

                book = openpyxl.load_workbook(path, read_only=True)
                text = "\n".join(str(c) for ws in book for row in ws.iter_rows(values_only=True) for c in row if c)
            else:
                text = path.read_bytes().decode("utf-8", errors="ignore")
            leaks += [(str(path.relative_to(var)), s[:10]) for s in secrets if s in text]
    assert not leaks, leaks[:5]


def test_handover_csv_and_xlsx_hold_the_same_rows_and_the_manifest_matches(night):
    import hashlib

    import openpyxl

    folders = sorted((night["var"] / "outbox" / "overdracht").glob("*/*/*/manifest.json"))
    assert folders
    for manifest_path in folders:
        manifest = json.loads(manifest_path.read_text())
        for name, entry in manifest["files"].items():
            assert hashlib.sha256((manifest_path.parent / name).read_bytes()).hexdigest() == entry["sha256"]
        csv = pd.read_csv(manifest_path.parent / "overdracht.csv", sep=";", dtype=str, encoding="utf-8-sig")
        sheet = openpyxl.load_workbook(manifest_path.parent / "overdracht.xlsx").active
        assert sheet.max_row - 1 == len(csv) == manifest["files"]["overdracht.csv"]["rows"]
        assert [c.value for c in sheet[1]] == list(csv.columns)
        assert sheet.freeze_panes == "A2"


def test_a_second_night_on_the_same_input_rewrites_no_output_file(night):
    before = night["outbox_after_first"]
    after = _outbox_state(night["var"] / "outbox")
    changed = [p for p in before if "overdracht" in p and before[p] != after.get(p)]
    assert not changed, changed[:5]


def test_alerts_equal_the_planted_truth_per_reason_code(night):
    alerts = _lake(night["var"], "thuiszitter_alerts")
    found = set(zip(alerts["pupil_key"], alerts["reason"]))
    planted = set()
    for entry in night["truth"]["alerts"]:
        key = f"bsn:{entry['id']['bsn']}" if "bsn" in entry["id"] else f"onr:{entry['id']['onderwijsnummer']}"
        planted |= {(key, reason) for reason in entry["reasons"]}
    reasons = sorted({r for _, r in found | planted})
    report = []
    for reason in reasons:
        want = {k for k, r in planted if r == reason}
        got = {k for k, r in found if r == reason}
        recall = len(want & got) / len(want) if want else 1.0
        precision = len(want & got) / len(got) if got else 1.0
        report.append((reason, len(want), len(got), recall, precision))
        print(f"{reason:24} planted {len(want):3} found {len(got):3} recall {recall:6.1%} precision {precision:6.1%}")
    assert all(recall == precision == 1.0 for *_, recall, precision in report), report


def test_no_municipal_list_or_export_holds_a_resident_of_another_municipality(night):
    outbox = night["var"] / "outbox"
    signal_lists = sorted((outbox / "signalen").glob("*/gemeenten/*/*.csv"))
    exports = sorted((outbox / "gemeenten").glob("*/*/*.csv"))
    assert signal_lists and exports
    pupils = _lake(night["var"], "pupils")
    residence = dict(zip(pupils["pupil_key"], pupils["woongemeente_code"]))
    for path in signal_lists:
        rows = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")
        keys = ("bsn:" + rows["BSN"]).fillna("onr:" + rows["Onderwijsnummer"])
        assert {residence[k] for k in keys} <= {path.parent.name}, path
    for path in exports:
        rows = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")
        if "woongemeente_code" in rows.columns:
            assert set(rows["woongemeente_code"]) == {path.parent.parent.name}, path


def test_municipal_exports_hold_no_identifier_name_postcode_or_birth_date(night):
    var = night["var"]
    tokens = _personal_tokens(var)
    for dataset in ("po_transfers", "vo_enrolment"):
        raw = _lake(var, f"{dataset}_raw")
        tokens |= set(raw["postcode"].dropna().str.replace(" ", "")) | set(raw["geboortedatum"].dropna())
    tokens = {t for t in tokens if len(t) >= 6}
    leaks = []
    for path in (var / "outbox" / "gemeenten").rglob("*.csv"):
        cells = set(pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig").stack().astype(str))
        leaks += [(path.name, c[:3]) for c in cells & tokens]
    assert not leaks, leaks[:5]
