"""The demo region generator: reproducible, valid where clean, broken exactly where the truth says.

Deliveries are read back here with plain pandas/openpyxl/json (not with demo.render), and the
planted alerts are checked against an independent evaluation of the rules in docs/alerts.md: the
truth file must list exactly the pupils the rules find, no more (no background pupil trips a rule)
and no fewer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml
from stdnum.nl import brin, bsn, onderwijsnummer, postcode

from demo.generate import DEFECTS, applicable_defects, defect_counts, generate_region
from schemas.datasets import canonical_fields
from settings.paths import PROJECT_ROOT
from settings.region import DATASETS, Region, Source, load_region

REGION_FILE = PROJECT_ROOT / "regions" / "vo2203.yaml"
SMALL = 2_000
REASONS = {"ABS", "LRV", "V16", "T3M", "PO_GEEN_VO", "MBO_GEEN_AANMELDING", "MBO_NIET_INGESCHREVEN",
           "JZ_WACHT_VERZUIM", "DOORSTROOMPUNT"}
KNOWN_SCHOOLS = set(pd.read_csv(PROJECT_ROOT / "reference" / "duo_schoolvestigingen_nl_2024.csv",
                                dtype=str).vestigingscode)
CREBOS = set(pd.read_csv(PROJECT_ROOT / "reference" / "mbo_kwalificaties_crebo_2015.csv", dtype=str).crebo)
ADVICE = ("pro", "vso", "vmbo_b", "vmbo_b_k", "vmbo_k", "vmbo_k_gt", "vmbo_gt", "vmbo_gt_havo", "havo", "havo_vwo", "vwo")
CODELIST_OF_FIELD = {"voorlopig_advies": "schooladvies", "toets_advies": "schooladvies", "definitief_advies": "schooladvies",
                     "onderwijsniveau": "schooladvies", "vo_niveau": "schooladvies", "tlv_soort": "tlv_soort",
                     "vrijstelling": "vrijstelling", "vva_status": "vva_status"}


@dataclass
class Generated:
    region: Region
    root: Path
    truth: dict
    counts: dict

    @property
    def sources(self) -> Path:
        return self.root / "sources"


def generate(region: Region, root: Path, pupils: int = SMALL, seed: int = 2203) -> Generated:
    counts = generate_region(region, root / "sources", root / "truth.json", seed=seed, pupils=pupils)
    return Generated(region, root, json.loads((root / "truth.json").read_text(encoding="utf-8")), counts)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Generated:
    return generate(load_region(REGION_FILE), tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def delivered(demo) -> dict[str, pd.DataFrame]:
    return {sid: read_delivery(demo.sources, sid, source) for sid, source in demo.region.sources.items()}


@pytest.fixture(scope="module")
def clean(demo, delivered) -> dict[str, pd.DataFrame]:
    """Canonical rows of each dataset without the rows the truth lists as defective."""
    bad = {(d["source_id"], d["delivery"], d["row"]) for d in demo.truth["defects"]}
    parts = defaultdict(list)
    for sid, frame in delivered.items():
        source = demo.region.sources[sid]
        keep = [(sid, f, r) not in bad for f, r in zip(frame._delivery, frame._row)]
        parts[source.dataset].append(to_canonical(frame[keep], source, demo.region))
    return {dataset: pd.concat(frames, ignore_index=True) for dataset, frames in parts.items()}


# --------------------------------------------------------------------------- reading deliveries back


def read_delivery(root: Path, source_id: str, source: Source) -> pd.DataFrame:
    """Every delivered row of a source (None for empty), with its file and 1-based row number."""
    if source.location.kind == "http":
        records = json.loads((root / "api" / f"{source_id}.json").read_text(encoding="utf-8"))
        frame = pd.DataFrame.from_records(records, columns=list(source.columns)).astype(object)
        return frame.where(frame.notna(), None).assign(_delivery="", _row=range(1, len(frame) + 1))
    parts = []
    fmt = source.location.format
    for path in sorted(root.glob(source.location.path)):
        if fmt.type == "xlsx":
            rows = list(openpyxl.load_workbook(path, read_only=True)[fmt.sheet].iter_rows(values_only=True))
            header = next(i for i, row in enumerate(rows) if list(row) == list(source.columns))
            width = len(source.columns)  # read-only openpyxl drops trailing empty cells
            frame = pd.DataFrame([list(r) + [None] * (width - len(r)) for r in rows[header + 1:]],
                                 columns=list(source.columns), dtype=object)
        else:
            encoding = "utf-8" if fmt.encoding == "auto" else fmt.encoding
            frame = pd.read_csv(path, sep=fmt.delimiter or ";", encoding=encoding, dtype=str,
                                keep_default_na=False).astype(object)
            frame = frame.where(frame != "", None)
        parts.append(frame.assign(_delivery=path.relative_to(root).as_posix(), _row=range(1, len(frame) + 1)))
    return pd.concat(parts, ignore_index=True)


def code_of(label, field: str, source: Source, region: Region):
    mapping = {**region.codelists.get(CODELIST_OF_FIELD.get(field, ""), {}), **source.codes.get(field, {})}
    return mapping.get(label, label)


def parse_date(value, source: Source):
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.strptime(value, source.date_format)


def to_canonical(frame: pd.DataFrame, source: Source, region: Region) -> pd.DataFrame:
    out = frame.rename(columns=source.columns)
    for name, column in canonical_fields(source.dataset).items():
        if name not in out:
            out[name] = None
            continue
        kind = str(column.dtype)
        if "datetime" in kind:
            out[name] = pd.to_datetime([parse_date(v, source) for v in out[name]])
        elif "bool" in kind.lower():
            out[name] = [None if v is None else v in (True, "ja") for v in out[name]]
        elif "int" in kind.lower() or "float" in kind.lower():
            out[name] = pd.to_numeric(out[name])
        elif name in CODELIST_OF_FIELD:
            out[name] = [None if v is None else code_of(v, name, source, region) for v in out[name]]
    other = out.onderwijsnummer if "onderwijsnummer" in out else [None] * len(out)
    out["key"] = [("bsn", b) if b else ("onderwijsnummer", o) for b, o in zip(out.bsn, other)]
    return out


def id_key(identifier: dict) -> tuple:
    return next(iter(identifier.items()))


# --------------------------------------------------------------------------- docs/alerts.md, evaluated independently


def school_weeks(region: Region, evaluation: pd.Timestamp, year_start: pd.Timestamp) -> pd.DatetimeIndex:
    mondays = pd.date_range(year_start - pd.DateOffset(years=1), evaluation, freq="W-MON")
    mondays = mondays[mondays + pd.Timedelta(days=4) < evaluation]
    holiday = [any(m <= pd.Timestamp(h.end) and m + pd.Timedelta(days=4) >= pd.Timestamp(h.start)
                   for h in region.calendar.holidays) for m in mondays]
    return mondays[[not h for h in holiday]]


def leerplichtig(born: pd.Timestamp, on: pd.Timestamp) -> bool:
    sixteen = born + pd.DateOffset(years=16)
    return on <= pd.Timestamp(sixteen.year + (1 if sixteen.month >= 8 else 0), 7, 31)


def age(born: pd.Timestamp, on: pd.Timestamp) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def rule_alerts(region: Region, data: dict[str, pd.DataFrame]) -> dict[tuple, set[str]]:
    """The reasons each pupil raises under docs/alerts.md, computed from the clean deliveries."""
    E = pd.Timestamp(region.reference_date)
    start = pd.Timestamp(E.year if E.month >= 8 else E.year - 1, 8, 1)
    three_months_ago = E - pd.DateOffset(months=3)
    weeks = school_weeks(region, E, start)
    enrol, absence, transfers = data["vo_enrolment"], data["vo_absence"], data["po_transfers"]
    waitlist, outflow = data["youth_care_waitlist"], data["mbo_outflow"]
    active = set(enrol.key[(enrol.inschrijfdatum <= E) & (enrol.uitschrijfdatum.isna() | (enrol.uitschrijfdatum > E))])
    born = dict(zip(enrol.key, enrol.geboortedatum))
    reasons: dict[tuple, set[str]] = defaultdict(set)

    hours = absence.groupby(["key", "week_start"]).uren_ongeoorloofd.sum()
    last4 = {}
    for key, series in hours.groupby(level=0):
        weekly = series.droplevel(0).reindex(weeks, fill_value=0.0)
        last4[key] = weekly.iloc[-4:].sum()
        if key not in active:
            continue
        run = 0
        for value in reversed(weekly.to_numpy()):
            if value < 20:
                break
            run += 1
        if run > 4:
            reasons[key].add("LRV")
            if weeks[-run] < three_months_ago:
                reasons[key].add("T3M")
        elif last4[key] >= 16:
            reasons[key].add("V16")

    open_entries = waitlist.startdatum.isna() & waitlist.einddatum.isna()
    waiting = waitlist[open_entries & (E - waitlist.aanmelddatum > pd.Timedelta(weeks=14))]
    for key in waiting.key:
        if key in active and last4.get(key, 0) >= 8:
            reasons[key].add("JZ_WACHT_VERZUIM")

    leavers = set(outflow.key)
    exempt = set(enrol.key[enrol.vrijstelling.notna()])
    ended = enrol[enrol.uitschrijfdatum <= E].groupby("key").uitschrijfdatum.max()
    for key, left in ended.items():
        if key in active or key in leavers or key in exempt:
            continue
        if leerplichtig(born[key], E) or age(born[key], E) < 18:  # no outflow record: no startkwalificatie known
            reasons[key].add("ABS")
            if left < three_months_ago:
                reasons[key].add("T3M")

    started = transfers.schooljaar.str[:4].astype(int).map(lambda y: pd.Timestamp(y, 8, 1) <= E)
    for key in transfers.key[started]:
        if key not in active:
            reasons[key].add("PO_GEEN_VO")

    deadline, count_date = pd.Timestamp(start.year, 4, 1), pd.Timestamp(start.year, 10, 1)
    last_year = outflow[(outflow.uitstroomdatum >= start - pd.DateOffset(years=1)) & (outflow.uitstroomdatum < start)]
    for row in last_year.itertuples():
        if row.vo_diploma and row.vo_niveau in ("havo", "vwo"):
            continue  # startkwalificatie
        adult = age(row.geboortedatum, E) >= 18
        if pd.isna(row.aanmelddatum) or row.aanmelddatum > deadline:
            if E > deadline and adult and age(row.geboortedatum, E) < 23:
                reasons[row.key].add("DOORSTROOMPUNT")
            elif E > deadline and not adult and not leerplichtig(row.geboortedatum, E):
                reasons[row.key].add("MBO_GEEN_AANMELDING")
        elif row.vva_status != "ingeschreven" and E >= count_date:
            reasons[row.key].add("DOORSTROOMPUNT" if adult else "MBO_NIET_INGESCHREVEN")
    return dict(reasons)


# --------------------------------------------------------------------------- reproducibility and scale


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def test_same_seed_and_region_give_byte_identical_files(demo, tmp_path):
    again = generate(demo.region, tmp_path)
    assert tree_digest(again.root) == tree_digest(demo.root)


def test_another_seed_gives_other_pupils(demo, tmp_path):
    other = generate(demo.region, tmp_path, seed=7)
    assert {id_key(a["id"]) for a in other.truth["alerts"]}.isdisjoint(id_key(a["id"]) for a in demo.truth["alerts"])


def test_files_carry_a_fixed_modification_time(demo):
    mtimes = {p.stat().st_mtime for p in demo.sources.rglob("*") if p.is_file()}
    evening = dt.datetime(2026, 10, 4, 22, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # CEST
    assert mtimes == {evening.timestamp()}


def test_volumes_scale_with_the_number_of_pupils(demo, tmp_path):
    double = generate(demo.region, tmp_path, pupils=2 * SMALL)
    for dataset in DATASETS:
        small = sum(s["rows"] for s in demo.counts["sources"].values() if s["dataset"] == dataset)
        large = sum(s["rows"] for s in double.counts["sources"].values() if s["dataset"] == dataset)
        assert 1.8 < large / small < 2.2, dataset
    assert len(double.truth["alerts"]) > 1.5 * len(demo.truth["alerts"])


def test_returned_counts_are_the_truth_counts(demo):
    assert demo.counts == demo.truth["counts"]
    assert demo.truth["pupils"] == SMALL and demo.truth["reference_date"] == "2026-10-05" and demo.truth["seed"] == 2203


# --------------------------------------------------------------------------- formats as the YAML says


def test_po_exports_are_windows_1252_with_semicolons_and_dutch_dates(demo):
    raw = b"".join(p.read_bytes() for p in sorted((demo.sources / "po").glob("*.csv")))
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp1252")
    assert any(letter in text for letter in "éëï")
    header = text.split("\r\n", 1)[0]
    assert header.split(";") == list(demo.region.sources["po_overdracht"].columns)
    assert re.search(r";\d{2}-\d{2}-\d{4};", text)


def test_steenwijkerland_csv_has_a_bom_commas_and_iso_dates(demo):
    (path,) = (demo.sources / "jeugdhulp" / "steenwijkerland").glob("*.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0].split(",") == list(demo.region.sources["wachtlijst_steenwijkerland"].columns)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", lines[1].split(",")[6])


def test_meppel_workbook_has_a_title_block_and_real_excel_dates(demo):
    (path,) = (demo.sources / "jeugdhulp" / "meppel").glob("*.xlsx")
    sheet = openpyxl.load_workbook(path)["Wachtlijst"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Wachtlijst jeugdhulp Gemeente Meppel"
    assert rows[1][0] == "Peildatum: 05-10-2026"
    assert all(v is None for v in rows[2])
    assert list(rows[3]) == list(demo.region.sources["wachtlijst_meppel"].columns)
    assert any(isinstance(v, dt.datetime) for v in rows[4])


def test_apis_are_json_records_with_booleans_and_iso_dates(demo):
    records = json.loads((demo.sources / "api" / "mbo_vva.json").read_text(encoding="utf-8"))
    assert list(records[0]) == list(demo.region.sources["mbo_vva"].columns)
    assert {type(r["diploma"]) for r in records} == {bool}
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["datumUitstroom"]) for r in records)


def test_vo_exports_come_one_file_per_school_location(demo):
    vo_locations = {p.stem.split("_")[1] for p in (demo.sources / "vo").glob("inschrijvingen_*.csv")}
    assert len(vo_locations) == 22 and vo_locations <= KNOWN_SCHOOLS
    assert {p.stem.split("_")[1] for p in (demo.sources / "vo").glob("verzuim_*.csv")} == vo_locations


def test_rendering_follows_a_changed_yaml(tmp_path):
    raw = yaml.safe_load(REGION_FILE.read_text(encoding="utf-8"))
    absence = raw["sources"]["vo_verzuim"]
    absence["columns"] = {"Burgerservicenummer": "bsn", "ONR": "onderwijsnummer", "Brin": "vo_brin6",
                          "Maandag": "week_start", "Spijbeluren": "uren_ongeoorloofd", "Ziekteuren": "uren_geoorloofd"}
    absence["location"] = {"kind": "file", "path": "absentie/*.txt",
                           "format": {"type": "csv", "encoding": "utf-8-sig", "delimiter": "|"}}
    absence["date_format"] = "%Y%m%d"
    raw["sources"]["vo_inschrijvingen"]["codes"] = {"onderwijsniveau": {"Gymnasium/Atheneum": "vwo"}}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")

    result = generate(load_region(changed), tmp_path, pupils=1_000)

    files = sorted((result.sources / "absentie").glob("*.txt"))
    assert files and not (result.sources / "vo" / "verzuim_02VA00.csv").exists()
    lines = files[0].read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "Burgerservicenummer|ONR|Brin|Maandag|Spijbeluren|Ziekteuren"
    assert re.fullmatch(r"\d{8}", lines[1].split("|")[3])
    levels = pd.concat(pd.read_csv(p, sep=";", dtype=str) for p in (result.sources / "vo").glob("inschrijvingen_*.csv")).Niveau
    assert "Gymnasium/Atheneum" in set(levels) and "VWO" not in set(levels)


# --------------------------------------------------------------------------- clean identifiers


def test_every_clean_identifier_passes_python_stdnum(clean):
    for dataset, rows in clean.items():
        assert all(bsn.is_valid(v) for v in rows.bsn.dropna()), dataset
        if dataset != "youth_care_waitlist":  # iJw identifies clients by BSN only
            assert all(onderwijsnummer.is_valid(v) for v in rows.onderwijsnummer.dropna()), dataset
            assert (rows.bsn.notna() ^ rows.onderwijsnummer.notna()).all(), dataset
        for school in ("po_brin6", "vo_brin6"):
            if school in rows:
                assert all(brin.is_valid(v) and v in KNOWN_SCHOOLS for v in rows[school].dropna()), (dataset, school)
        if "postcode" in rows:
            assert all(postcode.is_valid(v) and re.fullmatch(r"[1-9]\d{3}[A-Z]{2}", v) for v in rows.postcode.dropna())
        if "woongemeente_code" in rows:
            assert rows.woongemeente_code.str.fullmatch(r"GM\d{4}").all(), dataset
    assert clean["youth_care_waitlist"].zorgaanbieder_agb.str.fullmatch(r"\d{8}").all()
    outflow = clean["mbo_outflow"]
    assert all(brin.is_valid(v) and len(v) == 4 for v in outflow.mbo_brin.dropna())
    assert set(outflow.crebo.dropna()) <= CREBOS


def test_a_bsn_belongs_to_one_person(clean):
    people = pd.concat([clean[d][["key", "geboortedatum"]] for d in ("po_transfers", "vo_enrolment", "mbo_outflow",
                                                                    "youth_care_waitlist")])
    assert people.drop_duplicates().key.is_unique


def test_definitive_advice_is_never_below_the_provisional_one(clean):
    rows = clean["po_transfers"].dropna(subset=["voorlopig_advies", "definitief_advies"])
    assert all(ADVICE.index(d) >= ADVICE.index(v) for v, d in zip(rows.voorlopig_advies, rows.definitief_advies))


def test_about_two_percent_of_pupils_have_an_onderwijsnummer_and_two_percent_live_outside(demo, clean):
    enrolled = clean["vo_enrolment"]
    assert 0.01 < enrolled.onderwijsnummer.notna().mean() < 0.03
    outside = {id_key(i) for i in demo.truth["out_of_region"]}
    assert 0.01 < len(outside & set(enrolled.key)) / enrolled.key.nunique() < 0.03
    codes = set(demo.region.gemeente_codes)
    assert not any(code in codes for key, code in zip(enrolled.key, enrolled.woongemeente_code) if key in outside)
    assert all(code in codes for key, code in zip(enrolled.key, enrolled.woongemeente_code) if key not in outside)


# --------------------------------------------------------------------------- defects


def located(delivered: dict[str, pd.DataFrame], defect: dict) -> pd.Series:
    frame = delivered[defect["source_id"]]
    (index,) = frame.index[(frame._delivery == defect["delivery"]) & (frame._row == defect["row"])]
    return frame.loc[index]


def is_defective(defect: dict, row: pd.Series, frame: pd.DataFrame, region: Region) -> bool:
    source = region.sources[defect["source_id"]]
    column = {f: c for c, f in source.columns.items()}
    value = row[column[defect["field"]]] if defect["field"] else None

    def date(field: str):
        return parse_date(row[column[field]], source)

    match defect["rule"]:
        case "bsn_elfproef":
            return len(value) == 9 and not bsn.is_valid(value)
        case "onderwijsnummer_valid":
            return value.startswith("10") and not onderwijsnummer.is_valid(value)
        case "one_identifier":
            return all(row[column[f]] is None for f in ("bsn", "onderwijsnummer") if f in column)
        case "known_school":
            return brin.is_valid(value) and len(value) == 6 and value not in KNOWN_SCHOOLS
        case "brin6_format":
            return not re.fullmatch(r"\d{2}[A-Z]{2}\d{2}", value)
        case "date_parse":
            try:
                parse_date(value, source)
            except ValueError:
                return True
            return False
        case "not_in_future":
            return date(defect["field"]) > dt.datetime(2026, 10, 5)
        case "date_order":
            earlier = {"startdatum": "aanmelddatum", "uitschrijfdatum": "inschrijfdatum"}[defect["field"]]
            return date(defect["field"]) < date(earlier)
        case "duplicate_row":
            same_file = frame[frame._delivery == row._delivery]
            previous = same_file[same_file._row == row._row - 1].iloc[0]
            columns = list(source.columns)
            return list(previous[columns]) == list(row[columns])
        case "required":
            return value is None
        case "unknown_code":
            return code_of(value, defect["field"], source, region) not in ADVICE + tuple(region.codelists["vva_status"].values())
        case "mojibake":
            return "Ã" in value
        case "postcode_format":
            return not postcode.is_valid(value)
        case "advice_not_lowered":
            lowered = code_of(value, "definitief_advies", source, region)
            provisional = code_of(row[column["voorlopig_advies"]], "voorlopig_advies", source, region)
            return ADVICE.index(lowered) < ADVICE.index(provisional)
        case "agb_format":
            return not re.fullmatch(r"\d{8}", value)
        case "gemeentecode_format":
            return not re.fullmatch(r"GM\d{4}", value)
        case "birthdate_plausible":
            return date(defect["field"]).year < 2005
        case "number_parse":
            try:
                float(value)
            except ValueError:
                return True
            return False
    raise AssertionError(f"unknown rule {defect['rule']}")


def test_every_recorded_defect_is_really_in_the_delivery(demo, delivered):
    for defect in demo.truth["defects"]:
        row = located(delivered, defect)
        assert is_defective(defect, row, delivered[defect["source_id"]], demo.region), defect


def test_each_defect_kind_appears_as_often_as_planned(demo):
    by_source = defaultdict(lambda: defaultdict(int))
    for defect in demo.truth["defects"]:
        by_source[demo.region.sources[defect["source_id"]].dataset][defect["kind"]] += 1
    # Every kind appears that the region's sources can carry (not the ones about unmapped optional fields).
    applicable = {d.kind for dataset in DATASETS
                  for d in applicable_defects(list(demo.region.sources_for(dataset).values()))}
    assert {kind for counts in by_source.values() for kind in counts} == applicable
    assert {d.kind for d in DEFECTS} - applicable == {"absence_above_schedule"}
    for dataset in DATASETS:
        kinds = [d.kind for d in applicable_defects(list(demo.region.sources_for(dataset).values()))]
        delivered_rows = sum(s["rows"] for s in demo.counts["sources"].values() if s["dataset"] == dataset)
        rows = delivered_rows - by_source[dataset]["duplicate_row"]
        assert dict(by_source[dataset]) == dict(zip(kinds, defect_counts(rows, len(kinds)))), dataset


def test_defects_use_the_agreed_rule_names(demo):
    assert {d["rule"] for d in demo.truth["defects"]} == {
        "bsn_elfproef", "onderwijsnummer_valid", "one_identifier", "known_school", "brin6_format", "date_parse",
        "not_in_future", "date_order", "duplicate_row", "required", "unknown_code", "mojibake", "postcode_format",
        "advice_not_lowered", "agb_format", "gemeentecode_format", "birthdate_plausible", "number_parse"}


def test_defective_rows_belong_to_no_pupil_the_truth_follows(demo, delivered):
    followed = {id_key(e["id"]) for key in ("alerts", "no_consent", "handovers_po_vo", "handovers_vo_mbo")
                for e in demo.truth[key]}
    for defect in demo.truth["defects"]:
        row = located(delivered, defect)
        source = demo.region.sources[defect["source_id"]]
        column = {f: c for c, f in source.columns.items()}
        identifiers = {("bsn", row[column["bsn"]]), ("onderwijsnummer", row.get(column.get("onderwijsnummer"), None))}
        assert not identifiers & followed, defect


# --------------------------------------------------------------------------- alerts, consent, handovers


def test_the_rules_find_exactly_the_planted_pupils(demo, clean):
    planted = {id_key(a["id"]): set(a["reasons"]) for a in demo.truth["alerts"]}
    assert rule_alerts(demo.region, clean) == planted


def test_every_reason_is_planted_and_spread_over_municipalities(demo):
    assert {r for a in demo.truth["alerts"] for r in a["reasons"]} == REASONS
    assert {a["woongemeente_code"] for a in demo.truth["alerts"]} == set(demo.region.gemeente_codes)


def test_a_long_absence_run_spans_a_holiday(demo, clean):
    absence = clean["vo_absence"]
    for alert in demo.truth["alerts"]:
        if "LRV" in alert["reasons"]:
            weeks = absence.week_start[(absence.key == id_key(alert["id"])) & (absence.uren_ongeoorloofd >= 20)].sort_values()
            if (weeks.diff().dt.days > 7).any():
                return
    pytest.fail("no LRV run crosses a school holiday")


def test_pupils_without_consent_still_carry_their_support_details_in_the_source(demo, clean):
    transfers = clean["po_transfers"].set_index("key")
    assert demo.truth["no_consent"]
    for entry in demo.truth["no_consent"]:
        row = transfers.loc[[id_key(entry["id"])]].iloc[0]
        assert (row.toestemming_ouders, row.ondersteuningsbehoefte) == (False, True)
        assert entry["values"]["ondersteuning_details"] == row.ondersteuning_details
        assert entry["values"]["jeugdhulp_betrokken"] == row.jeugdhulp_betrokken
    support = transfers[transfers.ondersteuningsbehoefte == True]  # noqa: E712
    assert 0.7 < (support.toestemming_ouders == True).mean() < 0.95  # noqa: E712


def test_handovers_follow_the_pupil_to_the_enrolling_school_else_the_aanmelding(demo, clean):
    transfers = clean["po_transfers"][clean["po_transfers"].schooljaar.isin(["2026-2027", "2027-2028"])]
    enrol = clean["vo_enrolment"]
    evaluation = pd.Timestamp(demo.region.reference_date)
    running = enrol[enrol.uitschrijfdatum.isna() | (enrol.uitschrijfdatum > evaluation)].sort_values("inschrijfdatum")
    enrolled_at = running.drop_duplicates("key", keep="last").set_index("key").vo_brin6
    registered = transfers.vo_brin6.where(transfers.aanmelddatum.notna())
    school = transfers.key.map(enrolled_at).fillna(registered)
    handed_over = {(id_key(h["id"]), h["vo_brin6"]) for h in demo.truth["handovers_po_vo"]}
    assert handed_over == set(zip(transfers.key[school.notna()], school.dropna()))
    outflow = clean["mbo_outflow"].dropna(subset=["mbo_brin"]).drop_duplicates("key")
    assert {(id_key(h["id"]), h["mbo_brin"]) for h in demo.truth["handovers_vo_mbo"]} == set(zip(outflow.key, outflow.mbo_brin))


def test_transfers_are_mostly_enrolled_where_aangemeld_and_some_elsewhere(clean):
    transfers, enrol = clean["po_transfers"], clean["vo_enrolment"]
    assert set(transfers.schooljaar) == {"2026-2027", "2025-2026"}  # last year's: not handed over any more
    transfers = transfers[transfers.schooljaar == "2026-2027"]
    assert transfers.aanmelddatum.dropna().dt.month.eq(3).all()
    first_year = enrol[(enrol.leerjaar == 1) & (enrol.inschrijfdatum == pd.Timestamp(2026, 8, 1))]
    joined = transfers.merge(first_year, on="key", suffixes=("_po", "_vo")).dropna(subset=["vo_brin6_po"])
    assert len(joined) > 0.9 * len(transfers)
    elsewhere = (joined.vo_brin6_po != joined.vo_brin6_vo).mean()
    assert 0 < elsewhere < 0.06  # registered at one school, enrolled at another: the routing follows them


def test_a_region_with_other_alert_thresholds_is_refused_rather_than_given_a_wrong_truth(tmp_path):
    import yaml

    from settings.region import load_region

    from tests.conftest import DEMO_REGION

    data = yaml.safe_load(DEMO_REGION.read_text(encoding="utf-8"))
    data["alerts"] = {"v16_hours": 12}
    path = tmp_path / "region.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="default thresholds"):
        generate_region(load_region(path), tmp_path / "sources", tmp_path / "truth.json", pupils=500)


# --------------------------------------------------------------------------- any region in the country


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Generated:
    """SWV VO2507 (Nijmegen, Land van Cuijk, north Limburg) as `swv init` writes it, with three delivery shapes:
    support levels as labels, a VVA status history without application dates, weekly scheduled hours."""
    from schemas.onboarding import starter_region_yaml, swv_area

    root = tmp_path_factory.mktemp("vo2507")
    raw = yaml.safe_load(starter_region_yaml(swv_area("VO2507")))
    raw["reference_date"] = "2026-10-05"
    raw["sources"]["po_overdracht"]["codes"] = {"ondersteuningsbehoefte": {"geen": "nee", "extra": "ja"}}
    del raw["sources"]["mbo_vva"]["columns"]["aanmelddatum"]
    raw["sources"]["mbo_vva"]["derive"] = {"aanmelddatum": "first_status_date"}
    path = root / "vo2507.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return generate(load_region(path), root, pupils=1500)


def _files(generated: Generated, source_id: str) -> pd.DataFrame:
    return read_delivery(generated.sources, source_id, generated.region.sources[source_id])


def test_a_region_elsewhere_gets_its_own_real_schools(elsewhere):
    registry = pd.read_csv(PROJECT_ROOT / "reference" / "duo_schoolvestigingen_nl_2024.csv", dtype=str)
    mine = registry[registry.gemeentecode.isin(elsewhere.region.gemeente_codes)]
    defective = {(d["delivery"], d["row"]) for d in elsewhere.truth["defects"]
                 if d["field"] in ("vo_brin6", "po_brin6")}

    def clean_codes(source_id: str, field: str) -> set[str]:
        frame = _files(elsewhere, source_id)
        keep = [(f, r) not in defective for f, r in zip(frame._delivery, frame._row)]
        return set(frame.loc[keep, field].dropna())

    assert clean_codes("vo_inschrijvingen", "vo_brin6") <= set(mine.vestigingscode[mine.sector == "VO"])
    assert clean_codes("po_overdracht", "po_brin6") <= set(mine.vestigingscode[mine.sector.isin(["BAO", "SBAO"])])
    assert len(clean_codes("vo_inschrijvingen", "vo_brin6")) > 20


def test_pupils_live_in_every_municipality_of_the_region_merged_ones_included(elsewhere):
    enrolled = _files(elsewhere, "vo_inschrijvingen")
    assert set(elsewhere.region.gemeente_codes) <= set(enrolled.woongemeente_code)
    from schemas.onboarding import pc4_municipalities

    areas = pc4_municipalities()
    cuijk = set(areas.pc4[areas.gemeentecode == "GM1982"])  # Land van Cuijk: five municipalities of 2015
    living = enrolled[enrolled.woongemeente_code == "GM1982"].postcode.dropna().str[:4]
    assert set(living) <= cuijk and len(set(living)) > 5


def test_yes_no_fields_are_delivered_with_the_labels_the_region_maps(elsewhere):
    assert set(_files(elsewhere, "po_overdracht").ondersteuningsbehoefte.dropna()) == {"geen", "extra"}


def test_a_status_history_starts_each_application_with_its_first_status(elsewhere):
    vva = _files(elsewhere, "mbo_vva").dropna(subset=["mbo_brin"])
    assert "aanmelddatum" not in vva.columns
    applications = vva.groupby(["bsn", "mbo_brin", "crebo"], dropna=False)
    first = vva.loc[applications.status_datum.idxmin()]
    assert (first.vva_status == "aanmelding_ontvangen").mean() > 0.95  # the rest: a spoiled first row
    assert (applications.size() >= 2).mean() > 0.5


def test_scheduled_hours_cover_each_weeks_absence(elsewhere):
    absence = _files(elsewhere, "vo_verzuim")
    defective = {(d["delivery"], d["row"]) for d in elsewhere.truth["defects"] if d["source_id"] == "vo_verzuim"}
    absence = absence[[(f, r) not in defective for f, r in zip(absence._delivery, absence._row)]]
    hours = absence[["uren_ongeoorloofd", "uren_geoorloofd", "uren_rooster"]].astype(float)
    assert (hours.uren_ongeoorloofd + hours.uren_geoorloofd <= hours.uren_rooster).all()
    assert "absence_within_schedule" in {d["rule"] for d in elsewhere.truth["defects"]}
