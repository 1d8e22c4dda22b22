"""The support-plan monitor on a demo night, end to end: the acceptance tests of issue 20.

One module-scoped night (a demo region of 1,500 pupils, the partner APIs served on a free port, the
waitlist runs, the nightly job and the exports on a persistent instance), then the backfill command
for the Mondays since 14 September. The tests compute every indicator of the night themselves from
the planted truth (``var/demo/truth.json``) and the delivered files (defective rows left out as the
truth lists them), never from the pipeline's tables, and compare; re-run the night; check that a
backfill gives the rows of nights run one by one; and open the report in headless Chromium.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.conftest import DEMO_REGION, _service_missing
from tests.demo_region import LOCAL_PROFILE, demo_environment, serve_demo_api

pytestmark = pytest.mark.slow

PUPILS = 1500
SEED = 7
E = dt.date(2026, 10, 5)
PREVIOUS = dt.date(2026, 9, 28)  # the history's night before E once the Mondays are backfilled
FIRST_SCHOOL_DAY = dt.date(2026, 8, 17)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REPORT_COLUMNS = ("night", "indicator", "area", "category", "numerator", "denominator", "value", "unit", "published")


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from demo.generate import generate_region
    from pipelines.definitions import build_definitions
    from pipelines.commands.monitor_backfill import main as monitor_backfill
    from pipelines.night import run_night
    from settings.region import load_region

    var = tmp_path_factory.mktemp("var")
    region = load_region(DEMO_REGION)
    with demo_environment(var, SWV_LAKE_URL=None):
        (var / "dagster").mkdir()
        (var / "dagster" / "dagster.yaml").write_text(LOCAL_PROFILE.read_text())
        generate_region(region, var / "sources", var / "demo" / "truth.json", seed=SEED, pupils=PUPILS)
        with serve_demo_api(var):
            defs = build_definitions(DEMO_REGION)
            with dg.DagsterInstance.get() as instance:
                assert run_night(defs, instance).success
            at_night = _history(var)
            assert monitor_backfill(["--from", "2026-09-14", "--every", "week"]) == 0
            yield {"var": var, "region": region, "defs": defs, "at_night": at_night,
                   "truth": json.loads((var / "demo" / "truth.json").read_text()), "rows": _history(var)}


def _history(var: Path) -> pd.DataFrame:
    with sqlite3.connect(var / "warehouse.sqlite") as conn:
        return pd.read_sql("SELECT * FROM monitor_indicators ORDER BY night, indicator, area, category", conn)


def _figures(night_rows: pd.DataFrame, on: dt.date = E) -> dict[tuple[str, str, str], float]:
    rows = night_rows.loc[pd.to_datetime(night_rows["night"]).dt.date == on]
    return {(i, a, c): v for i, a, c, v in zip(rows["indicator"], rows["area"], rows["category"], rows["value"])}


# --------------------------------------------------------------------------- the delivered files, read here


def _date(values: pd.Series, fmt: str) -> pd.Series:
    text = values.astype("string").str.strip().str.slice(0, 10)
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    return parsed.fillna(pd.to_datetime(text, format="%Y-%m-%d", errors="coerce"))


def _read(var: Path, region, source_id: str) -> pd.DataFrame:
    """One source's delivered rows under canonical names, defective rows (per the truth) left out."""
    source = region.sources[source_id]
    frames = []
    if source.location.kind == "http":
        records = json.loads((var / "sources" / "api" / f"{source_id}.json").read_text(encoding="utf-8"))
        frames.append(pd.DataFrame(records).astype("string").assign(delivery="", row=np.arange(1, len(records) + 1)))
    else:
        for path in sorted((var / "sources").glob(source.location.path)):
            if source.location.format.type == "xlsx":
                cells = pd.read_excel(path, sheet_name=source.location.format.sheet, header=None, dtype=str,
                                      engine="openpyxl")
                header = int(np.flatnonzero(cells[0].eq(next(iter(source.columns))).to_numpy())[0])
                frame = cells.iloc[header + 1:].set_axis(list(cells.iloc[header]), axis=1).reset_index(drop=True)
            else:
                encoding = {"auto": "utf-8-sig", "utf-8": "utf-8-sig"}.get(source.location.format.encoding,
                                                                          source.location.format.encoding)
                frame = pd.read_csv(path, sep=source.location.format.delimiter, encoding=encoding, dtype=str,
                                    keep_default_na=False, na_values=[""])
            frames.append(frame.astype("string").assign(delivery=path.relative_to(var / "sources").as_posix(),
                                                        row=np.arange(1, len(frame) + 1)))
    rows = pd.concat(frames, ignore_index=True)
    truth = json.loads((var / "demo" / "truth.json").read_text())
    spoiled = {(d["delivery"], d["row"]) for d in truth["defects"] if d["source_id"] == source_id}
    keep = [(delivery, row) not in spoiled for delivery, row in zip(rows["delivery"], rows["row"])]
    rows = rows.loc[keep].rename(columns=source.columns)
    for field in rows.columns:
        if field.endswith("datum") or field == "week_start":
            rows[field] = _date(rows[field], source.date_format)
    for field, codelist in (("definitief_advies", "schooladvies"), ("onderwijsniveau", "schooladvies"),
                            ("vo_niveau", "schooladvies"), ("vva_status", "vva_status"),
                            ("vrijstelling", "vrijstelling")):
        if field in rows.columns:
            rows[field] = rows[field].map(lambda v: region.codelists[codelist].get(v, v) if pd.notna(v) else v)
    rows["key"] = ("bsn:" + rows["bsn"]).fillna("onr:" + rows["onderwijsnummer"]) if "onderwijsnummer" in rows \
        else "bsn:" + rows["bsn"]
    return rows.reset_index(drop=True)


@pytest.fixture(scope="module")
def delivered(night):
    var, region = night["var"], night["region"]
    by_dataset: dict[str, list[pd.DataFrame]] = {}
    for source_id, source in region.sources.items():
        by_dataset.setdefault(source.dataset, []).append(_read(var, region, source_id).assign(source_id=source_id))
    return {dataset: pd.concat(frames, ignore_index=True) for dataset, frames in by_dataset.items()}


@pytest.fixture(scope="module")
def residence(delivered):
    """Every person's woongemeente as the clean rows deliver it (the demo world has one per person)."""
    parts = [delivered[d].loc[:, ["key", "woongemeente_code"]] for d in
             ("vo_enrolment", "po_transfers", "mbo_outflow", "youth_care_waitlist")]
    rows = pd.concat(parts).dropna().drop_duplicates("key")
    return dict(zip(rows["key"], rows["woongemeente_code"]))


def _area(code, region) -> str:
    return code if code in region.gemeente_codes else "OVERIG"


def _expect_counts(expected: dict, indicator: str, per_pupil: pd.DataFrame, region, categories: list[str]) -> None:
    """Add the counts of ``per_pupil`` (columns area, category) for every area and category."""
    areas = [*region.gemeente_codes, "OVERIG"]
    for area in [*areas, "REGIO"]:
        mine = per_pupil if area == "REGIO" else per_pupil.loc[per_pupil["area"] == area]
        expected[(indicator, area, "")] = float(len(mine))
        for category in categories:
            expected[(indicator, area, category)] = float((mine["category"] == category).sum())


def _compare(expected: dict, found: dict) -> None:
    wrong = {key: (value, found.get(key)) for key, value in expected.items()
             if found.get(key) is None or not np.isclose(found[key], value, equal_nan=True)}
    sample = dict(list(wrong.items())[:8])
    assert not wrong, f"{len(wrong)} of {len(expected)} figures differ (expected, found): {sample}"


# --------------------------------------------------------------------------- every indicator, computed here


def _active(enrolment: pd.DataFrame, on: dt.date) -> pd.DataFrame:
    day = pd.Timestamp(on)
    running = (enrolment["inschrijfdatum"] <= day) & (enrolment["uitschrijfdatum"].isna()
                                                     | (enrolment["uitschrijfdatum"] > day))
    return enrolment.loc[running]


def _thuiszitters_on(on: dt.date, truth: dict, enrolment: pd.DataFrame,
                     absence: pd.DataFrame) -> dict[str, pd.Timestamp]:
    """Planted ABS and LRV pupils who are thuiszitter on ``on`` (September: no holiday), with their start."""
    out = {}
    for entry in truth["alerts"]:
        key = f"bsn:{entry['id']['bsn']}" if "bsn" in entry["id"] else f"onr:{entry['id']['onderwijsnummer']}"
        if "ABS" in entry["reasons"]:
            left = enrolment.loc[enrolment["key"] == key, "uitschrijfdatum"].max()
            if left <= pd.Timestamp(on):
                out[key] = left
        if "LRV" in entry["reasons"]:
            weeks = set(absence.loc[(absence["key"] == key) & (absence["uren_ongeoorloofd"].astype(float) >= 20),
                                    "week_start"])
            monday = pd.Timestamp(on) - pd.Timedelta(days=pd.Timestamp(on).weekday() + 7)
            run = 0
            while monday - pd.Timedelta(weeks=run) in weeks:
                run += 1
            if run > 4:
                out[key] = monday - pd.Timedelta(weeks=run - 1)
    return out


def test_thuiszitters_equal_the_planted_absent_pupils_by_time_at_home(night, delivered, residence):
    region, truth = night["region"], night["truth"]
    home = _thuiszitters_on(E, truth, delivered["vo_enrolment"], delivered["vo_absence"])
    t3m = {f"bsn:{a['id'].get('bsn')}" for a in truth["alerts"] if "T3M" in a["reasons"]}
    assert set(home) == {f"bsn:{a['id']['bsn']}" for a in truth["alerts"] if {"ABS", "LRV"} & set(a["reasons"])}
    days = {key: (pd.Timestamp(E) - start).days for key, start in home.items()}
    per_pupil = pd.DataFrame({
        "area": [_area(residence[k], region) for k in home],
        "category": ["langer_dan_3_maanden" if k in t3m else "korter_dan_4_weken" if days[k] < 28
                     else "4_weken_tot_3_maanden" for k in home]})
    expected: dict = {}
    _expect_counts(expected, "thuiszitters", per_pupil, region,
                   ["korter_dan_4_weken", "4_weken_tot_3_maanden", "langer_dan_3_maanden"])
    _compare(expected, _figures(night["rows"]))


def test_new_and_ended_thuiszitters_compare_with_the_previous_night_of_the_history(night, delivered, residence):
    region, truth = night["region"], night["truth"]
    now = set(_thuiszitters_on(E, truth, delivered["vo_enrolment"], delivered["vo_absence"]))
    before = set(_thuiszitters_on(PREVIOUS, truth, delivered["vo_enrolment"], delivered["vo_absence"]))
    assert now - before, "the demo's planted episodes start between the two nights"
    expected: dict = {}
    for code, keys in (("thuiszitters_nieuw", now - before), ("thuiszitters_beeindigd", before - now)):
        _expect_counts(expected, code, pd.DataFrame({"area": [_area(residence[k], region) for k in keys],
                                                         "category": ""}), region, [])
    _compare(expected, _figures(night["rows"]))


def test_youth_care_figures_equal_the_waitlists_counted_here(night, delivered):
    region = night["region"]
    wait = delivered["youth_care_waitlist"]
    day = pd.Timestamp(E)
    open_ = wait.loc[(wait["aanmelddatum"] <= day) & ~(wait["startdatum"] <= day) & ~(wait["einddatum"] <= day)]
    open_ = open_.sort_values(["key", "aanmelddatum"]).drop_duplicates("key")
    days = (day - open_["aanmelddatum"]).dt.days
    classes = np.select([days <= 28, days <= 70, days <= 98], ["tot_4_weken", "4_tot_10_weken", "10_tot_14_weken"],
                        "meer_dan_14_weken")
    area = open_["woongemeente_code"].map(lambda c: _area(c, region)).to_numpy()
    expected: dict = {}
    _expect_counts(expected, "jeugdhulp_wachtend", pd.DataFrame({"area": area, "category": classes}), region,
                   ["tot_4_weken", "4_tot_10_weken", "10_tot_14_weken", "meer_dan_14_weken"])
    intake = open_["intakedatum"].where(open_["intakedatum"] <= day)
    late = ((intake.fillna(day) - open_["aanmelddatum"]).dt.days > 28).to_numpy()
    _expect_counts(expected, "jeugdhulp_norm_intake", pd.DataFrame(
        {"area": area, "category": np.where(late, "boven_norm", "binnen_norm")}), region, ["boven_norm", "binnen_norm"])
    seen = intake.notna().to_numpy()
    _expect_counts(expected, "jeugdhulp_norm_start", pd.DataFrame(
        {"area": area[seen], "category": np.where((day - intake[seen]).dt.days > 70, "boven_norm", "binnen_norm")}),
        region, ["boven_norm", "binnen_norm"])
    weeks = days.to_numpy() / 7
    for name, q in (("jeugdhulp_wachttijd_mediaan", 0.5), ("jeugdhulp_wachttijd_p90", 0.9)):
        for a in [*region.gemeente_codes, "REGIO"]:
            group = weeks if a == "REGIO" else weeks[area == a]
            expected[(name, a, "")] = float(np.quantile(group, q)) if len(group) else np.nan
    for a in [*region.gemeente_codes, "OVERIG", "REGIO"]:
        mine = np.ones(len(area), bool) if a == "REGIO" else area == a
        n, past = mine.sum(), (classes[mine] == "meer_dan_14_weken").sum()
        expected[("jeugdhulp_boven_norm_14_aandeel", a, "")] = 100 * past / n if n else np.nan
        expected[("jeugdhulp_boven_norm_4_aandeel", a, "")] = 100 * late[mine].sum() / n if n else np.nan
    product = open_["productcategorie"].to_numpy()
    for code in sorted(set(product)):
        expected[("jeugdhulp_productcategorie", "REGIO", f"{code}|")] = float((product == code).sum())
        expected[("jeugdhulp_productcategorie", "REGIO", f"{code}|meer_dan_14_weken")] = float(
            ((product == code) & (classes == "meer_dan_14_weken")).sum())
    enrolled = set(_active(delivered["vo_enrolment"], E)["key"])
    absence = delivered["vo_absence"]
    window = [pd.Timestamp("2026-09-07") + pd.Timedelta(weeks=w) for w in range(4)]  # Friday before E: 2 October
    hours = absence.loc[absence["week_start"].isin(window)].groupby("key")["uren_ongeoorloofd"].apply(
        lambda h: h.astype(float).sum())
    in_vo = open_["key"].isin(enrolled).to_numpy()
    absent = open_["key"].map(hours).fillna(0).to_numpy() > 0
    _expect_counts(expected, "jeugdhulp_onderwijs", pd.DataFrame({"area": area, "category": np.select(
        [in_vo & absent, in_vo], ["vo_met_verzuim", "vo_zonder_verzuim"], "geen_vo")}), region,
        ["vo_met_verzuim", "vo_zonder_verzuim", "geen_vo"])
    _compare(expected, _figures(night["rows"]))


def test_po_vo_figures_equal_this_years_transfers_counted_here(night, delivered, residence):
    from schemas.codelists import school_registry

    region = night["region"]
    po = delivered["po_transfers"]
    po = po.loc[po["schooljaar"] == "2026-2027"].assign(
        registered=lambda f: f["vo_brin6"].notna() & f["aanmelddatum"].notna())
    po = po.sort_values(["key", "registered", "aanmelddatum"], na_position="first").drop_duplicates("key", keep="last")
    area = po["key"].map(lambda k: _area(residence.get(k), region)).to_numpy()
    support = po["ondersteuningsbehoefte"].eq("ja").to_numpy()
    consent = (po["toestemming_ouders"].eq("ja") & po["toestemming_datum"].notna()).to_numpy()
    registered = po["registered"].to_numpy()
    expected: dict = {}
    _expect_counts(expected, "po_vo_dossier", pd.DataFrame({"area": area, "category": np.select(
        [registered & support & consent, registered & support, registered],
        ["met_toestemming", "zonder_toestemming", "geen_ondersteuningsbehoefte"], "niet_aangemeld")}), region,
        ["met_toestemming", "zonder_toestemming", "geen_ondersteuningsbehoefte", "niet_aangemeld"])
    first_day = _active(delivered["vo_enrolment"], FIRST_SCHOOL_DAY).drop_duplicates("key", keep="last")
    school = po["key"].map(dict(zip(first_day["key"], first_day["vo_brin6"])))
    registry = school_registry().set_index("vestigingscode")["gemeentecode"]
    inside = school.map(registry).isin(region.gemeente_codes).to_numpy()
    _expect_counts(expected, "po_vo_plaatsing", pd.DataFrame({"area": area, "category": np.where(
        school.isna(), "niet_ingeschreven", np.where(inside, "ingeschreven_in_regio", "ingeschreven_buiten_regio"))}),
        region, ["ingeschreven_in_regio", "ingeschreven_buiten_regio", "niet_ingeschreven"])
    cluster = po["cluster"].fillna("").str.lower().str.replace("cluster", "").str.strip().to_numpy()
    national = np.isin(cluster, ["1", "2"])
    _expect_counts(expected, "po_vo_cluster", pd.DataFrame({"area": area[national], "category": np.where(
        cluster[national] == "1", "cluster_1", "cluster_2")}), region, ["cluster_1", "cluster_2"])
    opp = po["opp"].eq("ja").to_numpy()
    _expect_counts(expected, "po_vo_opp", pd.DataFrame({"area": area[opp], "category": ""}), region, [])
    arrangement = po["arrangement"].fillna("").str.upper().to_numpy()
    some = arrangement != ""
    _expect_counts(expected, "po_vo_arrangement", pd.DataFrame({"area": area[some], "category": np.where(
        arrangement[some] == "OZA", "oza", "ander_arrangement")}), region, ["oza", "ander_arrangement"])
    total = len(po)
    placed = (school.notna()).sum()
    expected[("po_vo_geplaatst_aandeel", "REGIO", "")] = 100 * placed / total
    expected[("po_vo_dossier_aandeel", "REGIO", "")] = 100 * registered.sum() / total
    _compare(expected, _figures(night["rows"]))


def test_vo_mbo_figures_equal_last_years_leavers_counted_here(night, delivered, residence):
    region = night["region"]
    flow = delivered["mbo_outflow"]
    flow = flow.loc[flow["uitstroomdatum"].between(pd.Timestamp("2025-08-01"), pd.Timestamp("2026-07-31"))]
    per_row = flow.assign(
        applied=flow["aanmelddatum"] <= pd.Timestamp("2026-04-01"),
        enrolled=flow["vva_status"].eq("ingeschreven") & (flow["status_datum"] <= pd.Timestamp("2026-10-01")),
        qualified=flow["vo_diploma"].str.lower().eq("true") & flow["vo_niveau"].isin(["havo", "vwo", "havo_vwo"]))
    leavers = per_row.groupby("key").agg(applied=("applied", "any"), enrolled=("enrolled", "any"),
                                         qualified=("qualified", "any"), gemeente=("woongemeente_code", "last"))
    area = [_area(residence.get(k, g), region) for k, g in zip(leavers.index, leavers["gemeente"])]
    expected: dict = {}
    _expect_counts(expected, "vo_mbo_aanmelding", pd.DataFrame({"area": area, "category": np.where(
        leavers["applied"], "aangemeld_voor_1_april", "niet_aangemeld_voor_1_april")}), region,
        ["aangemeld_voor_1_april", "niet_aangemeld_voor_1_april"])
    _expect_counts(expected, "vo_mbo_inschrijving", pd.DataFrame({"area": area, "category": np.select(
        [leavers["enrolled"], leavers["qualified"]], ["ingeschreven", "startkwalificatie_zonder_mbo"], "vsv_risico")}),
        region, ["ingeschreven", "startkwalificatie_zonder_mbo", "vsv_risico"])
    expected[("vo_mbo_aangemeld_aandeel", "REGIO", "")] = 100 * leavers["applied"].mean()
    _compare(expected, _figures(night["rows"]))


def test_no_pupil_of_the_demo_is_at_a_vso_or_cluster_location(night, delivered):
    from schemas.codelists import cluster_institutions, school_registry

    active = _active(delivered["vo_enrolment"], E)
    sector = active["vo_brin6"].map(school_registry().set_index("vestigingscode")["sector"])
    clusters = {b for codes in cluster_institutions().values() for b in codes}
    counted = (sector.eq("(V)SO") | active["vo_brin6"].str[:4].isin(clusters)).sum()
    assert _figures(night["rows"])[("vso_leerlingen", "REGIO", "")] == counted == 0


def test_delivery_figures_equal_the_delivered_rows_and_the_planted_defects(night):
    truth, found = night["truth"], _figures(night["rows"])
    defects = pd.DataFrame(truth["defects"]).drop_duplicates(["source_id", "delivery", "row"])
    for source_id, counts in truth["counts"]["sources"].items():
        assert found[("rijen_geleverd", "REGIO", source_id)] == counts["rows"], source_id
        assert found[("rijen_in_quarantaine", "REGIO", source_id)] == (defects["source_id"] == source_id).sum(), \
            source_id
        assert found[("bronnen_verouderd", "REGIO", source_id)] == 0, source_id


# --------------------------------------------------------------------------- history


def test_re_running_the_night_leaves_the_history_unchanged(night):
    from pipelines.night import run_night

    before = _history(night["var"])
    with dg.DagsterInstance.get() as instance:
        assert run_night(night["defs"], instance).success
    pd.testing.assert_frame_equal(_history(night["var"]), before)  # recorded_at included: nothing rewritten


def test_the_backfill_recomputed_the_mondays_and_left_the_night_that_ran_as_it_was(night):
    rows = night["rows"]
    sources = rows.groupby(rows["night"].str[:10])["source"].agg(set)
    assert sources.to_dict() == {"2026-09-14": {"backfill"}, "2026-09-21": {"backfill"}, "2026-09-28": {"backfill"},
                                 "2026-10-05": {"night", "backfill"}}
    # The night that ran got its new and ended thuiszitters (it has a previous night now); its other
    # figures are what the night computed, and its delivery figures are the night's own.
    changes = ["thuiszitters_nieuw", "thuiszitters_beeindigd"]
    at_night = night["at_night"].loc[~night["at_night"]["indicator"].isin(changes)]
    after = rows.loc[rows["night"].str.startswith("2026-10-05") & ~rows["indicator"].isin(changes)]
    pd.testing.assert_frame_equal(after.loc[:, list(REPORT_COLUMNS)].reset_index(drop=True),
                                  at_night.loc[:, list(REPORT_COLUMNS)].reset_index(drop=True))
    assert set(after.loc[after["indicator"] == "rijen_geleverd", "source"]) == {"night"}
    assert ("rijen_geleverd", "REGIO", "") not in _figures(rows, dt.date(2026, 9, 14))


def _known_then(frames: dict[str, pd.DataFrame], on: dt.date) -> dict[str, pd.DataFrame]:
    """What honest deliveries of ``on`` would hold: later registrations absent, later dates not yet filled."""
    day = pd.Timestamp(on)
    later = lambda values: pd.to_datetime(values) > day  # noqa: E731
    wait = frames["youth_care_waitlist"].loc[lambda f: ~later(f["aanmelddatum"])].copy()
    for column in ("besluitdatum", "intakedatum", "startdatum"):
        wait[column] = wait[column].mask(later(wait[column]))
    ended_later = later(wait["einddatum"])
    wait["einddatum"], wait["reden_beeindiging"] = wait["einddatum"].mask(ended_later), \
        wait["reden_beeindiging"].mask(ended_later)
    enrolment = frames["vo_enrolment"].loc[lambda f: ~later(f["inschrijfdatum"])].copy()
    enrolment["uitschrijfdatum"] = enrolment["uitschrijfdatum"].mask(later(enrolment["uitschrijfdatum"]))
    absence = frames["vo_absence"].loc[lambda f: ~later(f["week_start"])]
    po = frames["po_transfers"].copy()
    for column, depending in (("aanmelddatum", "vo_brin6"), ("toestemming_datum", "toestemming_ouders"),
                              ("tlv_datum", "tlv_soort"), ("opp_instemming_datum", None)):
        future = later(po[column])
        po[column] = po[column].mask(future)
        if depending:
            po[depending] = po[depending].mask(future)
    flow = frames["mbo_outflow"].copy()
    unknown = later(flow["aanmelddatum"])
    for column in ("mbo_brin", "crebo", "mbo_niveau", "aanmelddatum", "vva_status", "status_datum"):
        flow[column] = flow[column].mask(unknown)
    pending = later(flow["status_datum"])
    flow["vva_status"] = flow["vva_status"].mask(pending, "aanmelding_ontvangen")
    flow["status_datum"] = flow["status_datum"].mask(pending, flow["aanmelddatum"])
    return {"youth_care_waitlist": wait, "vo_enrolment": enrolment, "vo_absence": absence, "po_transfers": po,
            "mbo_outflow": flow}


def test_a_backfill_gives_the_rows_of_the_nights_run_one_by_one(night, tmp_path):
    """Three honest nights through the pipeline's own assets, then the backfill over them: same rows."""
    from assets.monitor.history import DATASETS, FIELDS, backfill
    from connectors.lake import LakeIOManager, read_asset, write_parquet
    from connectors.warehouse import Warehouse

    latest = {name: read_asset(night["var"] / "lake", name) for name in DATASETS}
    lake, warehouse_path = tmp_path / "lake", tmp_path / "warehouse.sqlite"
    defs = night["defs"]
    nights = [dt.date(2026, 9, 21), dt.date(2026, 9, 28), E]
    for on in nights:
        honest = _known_then(latest, on)
        for name, frame in honest.items():
            write_parquet(frame, lake / "assets" / name / "_all.parquet")
            raw = frame.loc[:, ["source_id"]]  # what the monitor reads of a raw delivery
            write_parquet(raw, lake / "assets" / f"{name}_raw" / "_all.parquet")
        resources = {**defs.resources, "lake_io_manager": LakeIOManager(root=str(lake)),
                     "warehouse": Warehouse(url=f"sqlite:///{warehouse_path}")}
        from connectors.outbox import Outbox
        from connectors.region_config import RegionConfig

        resources |= {"outbox": Outbox(root=str(tmp_path / "outbox")),
                      "region_config": RegionConfig(path=str(DEMO_REGION), evaluation_date=on.isoformat())}
        result = dg.materialize(defs.assets, selection=["pupils", "pupil_conflicts", "thuiszitter_alerts",
                                                        "monitor_indicators"], resources=resources)
        assert result.success, on
    engine = sa.create_engine(f"sqlite:///{warehouse_path}")
    one_by_one = _rows_of(engine)
    datasets = {name: frame.loc[:, [c for c in FIELDS[name] if c in frame.columns]] for name, frame in latest.items()}

    stored = _rows_of(engine, with_recorded_at=True)
    done = backfill(nights, datasets=datasets, region=night["region"], engine=engine)
    assert not any(n.changed for n in done) and all(n.from_history for n in done)
    pd.testing.assert_frame_equal(_rows_of(engine, with_recorded_at=True), stored)  # not even rewritten

    fresh = tmp_path / "fresh.sqlite"
    shutil.copy(warehouse_path, fresh)
    fresh_engine = sa.create_engine(f"sqlite:///{fresh}")
    with fresh_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM monitor_indicators"))
    backfill(nights, datasets=datasets, region=night["region"], engine=fresh_engine)
    reconstructable = one_by_one.loc[~one_by_one["indicator"].isin(
        ["rijen_geleverd", "rijen_in_quarantaine", "quarantaine_aandeel", "bronnen_verouderd"])]
    pd.testing.assert_frame_equal(_rows_of(fresh_engine), reconstructable.reset_index(drop=True))


def _rows_of(engine: sa.Engine, *, with_recorded_at: bool = False) -> pd.DataFrame:
    columns = [*REPORT_COLUMNS, "recorded_at"] if with_recorded_at else list(REPORT_COLUMNS)
    with engine.connect() as conn:
        rows = pd.read_sql(f"SELECT {', '.join(columns)} FROM monitor_indicators "
                           "ORDER BY night, indicator, area, category", conn)
    return rows.reset_index(drop=True)


# --------------------------------------------------------------------------- Dagster


def test_the_asset_page_gets_the_headline_figures_as_numbers_and_the_jump_check_ran(night):
    with dg.DagsterInstance.get() as instance:
        record = instance.fetch_materializations(dg.AssetKey("monitor_indicators"), limit=1).records[0]
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("monitor_indicators"), "indicator_jumps"), limit=1)
    metadata = record.asset_materialization.metadata
    for key in ("thuiszitters", "jeugdhulp_wachtend", "po_vo_geplaatst_pct", "vo_mbo_aangemeld_pct"):
        assert isinstance(metadata[key].value, (int, float)), key
    assert metadata["thuiszitters"].value == _figures(night["rows"])[("thuiszitters", "REGIO", "")]
    assert "| thuiszitters |" in metadata["summary"].value
    assert checks, "the indicator_jumps check was evaluated"


# --------------------------------------------------------------------------- the report


def _small_counts_in(texts: list[str]) -> list[str]:
    """Texts that show a count from 1 to 5 (a number standing alone, possibly after 'n = ')."""
    return [t for t in texts if re.fullmatch(r"(n = )?[1-5]", t.strip())]


def test_the_report_and_its_table_show_no_count_of_one_to_five(night):
    folder = night["var"] / "outbox" / "monitor" / E.isoformat()
    table = pd.read_csv(folder / "monitor.csv", sep=";", dtype=str, encoding="utf-8-sig")
    counts = table["eenheid"].isin(["leerlingen", "kinderen"])
    assert not _small_counts_in(table.loc[counts, "waarde"].dropna().tolist())
    assert {"<5", "x"} & set(table["waarde"].dropna()), "the demo region has small numbers to hide"
    import openpyxl

    sheet = openpyxl.load_workbook(folder / "monitor.xlsx", read_only=True).active
    assert sheet.max_row - 1 == len(table)


def test_the_report_is_self_contained(night):
    html = (night["var"] / "outbox" / "monitor" / E.isoformat() / "monitor.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert '<html lang="nl">' in html
    assert html.count("<figure") == html.count("Zo lees je deze grafiek:") >= 6


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _service_missing(f"Chromium at {CHROMIUM}", FileNotFoundError(CHROMIUM))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_the_report_renders_every_chart_in_chromium_without_errors_or_small_counts(night, browser, tmp_path):
    report = night["var"] / "outbox" / "monitor" / E.isoformat() / "monitor.html"
    page = browser.new_page(viewport={"width": 900, "height": 1200})
    errors, requests = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert not errors
    assert requests == [report.as_uri()], "the report fetches nothing"
    assert page.locator("img").count() == 0
    figures = page.locator("figure.grafiek")
    assert figures.count() >= 6
    for i in range(figures.count()):
        chart = figures.nth(i).locator("svg")
        box = chart.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100, f"chart {i} did not render"
        assert chart.locator("text").count() > 5, f"chart {i} has no title or labels"
    cells = page.locator('[data-soort="aantal"]').all_inner_texts()
    labels = page.locator('svg g[id^="aantal-"] text').all_text_contents()
    assert cells and labels
    assert not _small_counts_in(cells), _small_counts_in(cells)
    assert not _small_counts_in(labels), _small_counts_in(labels)
    page.screenshot(path=tmp_path / "monitor.png", full_page=True)
    assert (tmp_path / "monitor.png").stat().st_size > 50_000
    page.pdf(path=tmp_path / "monitor.pdf", format="A4", print_background=True)  # what printing gives
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", (tmp_path / "monitor.pdf").read_bytes()))
    assert 3 <= pages <= 20, f"{pages} A4 pages"
    page.close()


# --------------------------------------------------------------------------- the leerplichttelling


def test_each_municipality_gets_its_leerplichttelling_beside_its_exports(night, delivered, residence):
    outbox = night["var"] / "outbox" / "gemeenten"
    region, truth = night["region"], night["truth"]
    home = _thuiszitters_on(E, truth, delivered["vo_enrolment"], delivered["vo_absence"])
    for gemeente in region.gemeente_codes:
        folder = outbox / gemeente / "leerplichttelling" / "2026-2027"
        manifest = json.loads((folder / "manifest.json").read_text())
        stems = ("leerplichttelling", "leerplichttelling_openbaar", "legenda")
        assert set(manifest["files"]) == {f"{stem}.{ext}" for stem in stems for ext in ("csv", "xlsx")}
        assert manifest["gegevens_vanaf"] == E.isoformat() and manifest["niet_bekend"]
        exact = pd.read_csv(folder / "leerplichttelling.csv", sep=";", dtype=str, encoding="utf-8-sig")
        mine = [k for k in home if residence[k] == gemeente]
        assert int(exact.loc[exact["categorie"] == "thuiszitters", "totaal"].iat[0]) == len(mine), gemeente
        public = pd.read_csv(folder / "leerplichttelling_openbaar.csv", sep=";", dtype=str, encoding="utf-8-sig")
        numbers = public.loc[:, ["korter_dan_4_weken", "4_weken_tot_3_maanden", "langer_dan_3_maanden",
                                 "totaal"]].stack().dropna().tolist()
        assert not _small_counts_in(numbers)
        legend = pd.read_csv(folder / "legenda.csv", sep=";", dtype=str, encoding="utf-8-sig")
        assert (legend["categorie"] == "niet bekend").sum() >= 4
        nightly = json.loads((outbox / gemeente / E.isoformat() / "manifest.json").read_text())
        assert not any("leerplicht" in name for name in nightly["files"])
    with sqlite3.connect(night["var"] / "warehouse.sqlite") as conn:
        logged = pd.read_sql("SELECT gemeente, folder, file, grondslag FROM export_log "
                             "WHERE folder LIKE '%/leerplichttelling/%'", conn)
    assert set(logged["gemeente"]) == set(region.gemeente_codes)
    assert (logged["file"] == "manifest.json").sum() == len(region.gemeente_codes)
    assert logged.loc[logged["file"] == "leerplichttelling.csv", "grondslag"].str.contains("art. 25").all()
