"""Municipal exports: each municipality gets its own residents only, pseudonymised, without identifiers."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
from dataclasses import dataclass, replace

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets.signalen.alert_rules import REASONS
from assets.gemeenten.export_assets import write_export
from assets.gemeenten.export_settings import ExportSettings
from assets.gemeenten.pseudonyms import pseudonymise
from assets.gemeenten.published_tables import AGGREGATES, MONITORING_COLUMNS, municipal_export
from assets.gemeenten.resident_facts import ExportInputs, resident_facts
from connectors.outbox import Outbox, csv_bytes, neutralise
from settings.region import load_region
from tests.conftest import DEMO_REGION, PROJECT

E = dt.date(2026, 10, 5)
CALENDAR = load_region(DEMO_REGION).calendar
REGION_POOL = ("GM0118", "GM0119", "GM1690", "GM1701", "GM1708", "GM0109")
OUTSIDE_REGION = ("GM0193", "GM0166")  # Zwolle, Kampen: never a recipient
WINDOW = pd.to_datetime(["2026-09-07", "2026-09-14", "2026-09-21", "2026-09-28"])  # last 4 school weeks before E
FORMULA = "=cmd|' /C calc'!A0"


def _check_digit(prefix: str, remainder: int) -> str | None:
    """The 9th digit that makes the elfproef come out at ``remainder`` (0 for a BSN, 5 for an onderwijsnummer)."""
    total = sum(int(d) * w for d, w in zip(prefix, range(9, 1, -1)))
    digit = (total - remainder) % 11
    return None if digit > 9 else str(digit)


def bsn(i: int) -> str:
    """A BSN that passes the elfproef, distinct per ``i`` (domain.md §3)."""
    n = 20_000_000 + 7_919 * i
    while (digit := _check_digit(f"{n:08d}", 0)) is None:
        n += 1
    return f"{n:08d}{digit}"


def onderwijsnummer(i: int) -> str:
    """An onderwijsnummer (starts with 10, elfproef remainder 5), distinct per ``i``."""
    n = 10_000_000 + 3_571 * i
    while (digit := _check_digit(f"{n:08d}", 5)) is None:
        n += 1
    return f"{n:08d}{digit}"


@dataclass
class Pupil:
    """One synthetic pupil: where they live and what the sources say about them."""

    home: str
    by_bsn: bool = True
    age: int = 14
    school: str | None = "04AB00"
    hours: tuple[float, ...] = ()
    wait: str = "geen"  # geen, wacht, in zorg, beeindigd
    wait_weeks: int = 6
    po: bool = False
    mbo: str | None = None  # vva status of a VO leaver
    reasons: tuple[str, ...] = ()
    productcategorie: str = "45"
    first_name: str = "Berendina"
    surname: str = "Zwiersema"
    postcode: str = "7901AB"


def build_inputs(pupils: list[Pupil], region: tuple[str, ...]) -> ExportInputs:
    """Validated-looking datasets (schemas/datasets.py dtypes) for these pupils."""
    rows, absence, waits, transfers, leavers, alerts = [], [], [], [], [], []
    for i, p in enumerate(pupils):
        ids = {"bsn": bsn(i) if p.by_bsn else None, "onderwijsnummer": None if p.by_bsn else onderwijsnummer(i)}
        key = f"bsn:{ids['bsn']}" if p.by_bsn else f"onr:{ids['onderwijsnummer']}"
        birth = pd.Timestamp(E) - pd.DateOffset(years=p.age, days=40 + i % 200)
        rows.append({"pupil_key": key, **ids, "voornaam": p.first_name, "achternaam": p.surname,
                     "geboortedatum": birth, "postcode": p.postcode, "woongemeente_code": p.home,
                     "buiten_regio": p.home not in region, "vo_brin6": p.school, "onderwijsniveau": "havo"})
        for week, hours in zip(WINDOW, p.hours):
            absence.append({**ids, "vo_brin6": p.school or "04AB00", "week_start": week,
                            "uren_ongeoorloofd": hours, "uren_geoorloofd": 0.0})
        if p.wait != "geen" and p.by_bsn:
            registered = pd.Timestamp(E) - pd.Timedelta(weeks=p.wait_weeks)
            waits.append({"bsn": ids["bsn"], "geboortedatum": birth, "woongemeente_code": p.home,
                          "productcategorie": p.productcategorie, "aanmelddatum": registered,
                          "intakedatum": registered + pd.Timedelta(weeks=2),
                          "startdatum": registered + pd.Timedelta(weeks=3) if p.wait != "wacht" else pd.NaT,
                          "einddatum": registered + pd.Timedelta(weeks=4) if p.wait == "beeindigd" else pd.NaT})
        if p.po:
            transfers.append({**ids, "geboortedatum": birth, "postcode": p.postcode, "woongemeente_code": p.home,
                              "vo_brin6": p.school, "aanmelddatum": pd.Timestamp("2026-03-28") if p.school else pd.NaT,
                              "schooljaar": "2026-2027"})
        if p.mbo is not None:
            leavers.append({**ids, "geboortedatum": birth, "woongemeente_code": p.home, "vo_brin6": "04AB00",
                            "vva_status": p.mbo, "aanmelddatum": pd.Timestamp("2026-03-01"),
                            "status_datum": pd.Timestamp("2026-06-01")})
        for reason in p.reasons:
            alerts.append({"pupil_key": key, "reason": reason, "category": "SWV", "woongemeente_code": p.home,
                           "vo_brin6": p.school, "episode_start": pd.Timestamp("2026-09-01"), "weeks": 4,
                           "status": "open"})
    return ExportInputs(
        pupils=_typed(rows, {"geboortedatum"}, {"buiten_regio"}),
        vo_absence=_typed(absence, {"week_start"}, set(), ["bsn", "onderwijsnummer", "vo_brin6", "week_start",
                                                          "uren_ongeoorloofd", "uren_geoorloofd"]),
        youth_care_waitlist=_typed(waits, {"geboortedatum", "aanmelddatum", "intakedatum", "startdatum", "einddatum"},
                                   set(), ["bsn", "geboortedatum", "woongemeente_code", "productcategorie",
                                           "aanmelddatum", "intakedatum", "startdatum", "einddatum"]),
        po_transfers=_typed(transfers, {"geboortedatum", "aanmelddatum"}, set(),
                            ["bsn", "onderwijsnummer", "geboortedatum", "postcode", "woongemeente_code", "vo_brin6",
                             "aanmelddatum", "schooljaar"]),
        mbo_outflow=_typed(leavers, {"geboortedatum", "aanmelddatum", "status_datum"}, set(),
                           ["bsn", "onderwijsnummer", "geboortedatum", "woongemeente_code", "vo_brin6", "vva_status",
                            "aanmelddatum", "status_datum"]),
        thuiszitter_alerts=_typed(alerts, {"episode_start"}, set(),
                                  ["pupil_key", "reason", "category", "woongemeente_code", "vo_brin6",
                                   "episode_start", "weeks", "status"]),
    )


def _typed(rows: list[dict], dates: set[str], flags: set[str], columns: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns or (list(rows[0]) if rows else []))
    for column in frame.columns:
        if column in dates:
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
        elif column in flags:
            frame[column] = frame[column].astype("boolean")
        elif column in ("uren_ongeoorloofd", "uren_geoorloofd"):
            frame[column] = frame[column].astype("float64")
        elif column == "weeks":
            frame[column] = frame[column].astype("Int64")
        else:
            frame[column] = frame[column].astype("str")
    return frame


def key_of(gemeente: str) -> bytes:
    return f"test-key-{gemeente}".encode()


def export_for(inputs: ExportInputs, gemeente: str, on: dt.date = E):
    return municipal_export(inputs, gemeente=gemeente, evaluation_date=on, calendar=CALENDAR, key=key_of(gemeente),
                            swv_code="VO2203")


def expected_pseudonym(pupil_key: str, gemeente: str) -> str:
    return hmac.new(key_of(gemeente), pupil_key.encode(), hashlib.sha256).hexdigest()


# -- reading published files back, as a municipality would ------------------------------------


def csv_frame(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)


def cell_texts(name: str, data: bytes) -> list[str]:
    """Every cell value (and header) of a published file as text."""
    if name.endswith(".csv"):
        return [data.decode("utf-8-sig")]
    if name.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(data)).to_pandas()
        return [*map(str, table.columns), *map(str, table.to_numpy().ravel())]
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return [str(v) for sheet in workbook for row in sheet.iter_rows(values_only=True) for v in row if v is not None]


def forbidden_values(inputs: ExportInputs) -> list[str]:
    """What must never be published: identifiers, names, full postcodes, birth dates."""
    pupils = inputs.pupils
    values = [*pupils["bsn"].dropna(), *pupils["onderwijsnummer"].dropna(), *pupils["voornaam"].dropna(),
              *pupils["achternaam"].dropna()]
    for postcode in pupils["postcode"].dropna():
        values += [postcode, f"{postcode[:4]} {postcode[4:]}"]
    for birth in pupils["geboortedatum"].dropna():
        values += [birth.strftime("%Y-%m-%d"), birth.strftime("%d-%m-%Y"), birth.strftime("%Y%m%d")]
    return values


PRIVATE_TABLES = ("monitoring", "aggregaat_")


# -- the property: isolation over many small regions ------------------------------------------
# The properties read the CSV bytes (``csv_bytes``, exactly what ``table_files`` writes); the XLSX and
# Parquet files are scanned in the written-folder test below, which is slower per region.

pupil_strategy = st.builds(
    Pupil,
    home=st.sampled_from(REGION_POOL + OUTSIDE_REGION),
    by_bsn=st.booleans(),
    age=st.integers(10, 19),
    school=st.sampled_from([None, "04AB00", "05CD01", "06EF00"]),
    hours=st.lists(st.sampled_from([0.0, 2.0, 5.5, 8.0]), max_size=4).map(tuple),
    wait=st.sampled_from(["geen", "wacht", "in zorg", "beeindigd"]),
    wait_weeks=st.integers(1, 30),
    po=st.booleans(),
    mbo=st.sampled_from([None, "ingeschreven", "aanmelding_ontvangen"]),
    reasons=st.lists(st.sampled_from(tuple(REASONS)), max_size=2, unique=True).map(tuple),
    productcategorie=st.sampled_from(["45", "54", "51"]),
    postcode=st.sampled_from(["7901AB", "7941CD", "8331EF", "7711GH"]),
)


@pytest.mark.slow  # a property search over 30 regions: `make test` runs it, `make test-fast` does not
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(2, 6), pupils=st.lists(pupil_strategy, min_size=1, max_size=30))
def test_each_municipality_receives_exactly_its_own_residents(size, pupils):
    region = REGION_POOL[:size]
    inputs = build_inputs(pupils, region)
    keys = inputs.pupils["pupil_key"]
    for gemeente in region:
        export = export_for(inputs, gemeente)
        monitoring = csv_frame(csv_bytes(export.monitoring))
        own = keys[(inputs.pupils["woongemeente_code"] == gemeente).to_numpy()]
        assert sorted(monitoring["pseudonym"]) == sorted(expected_pseudonym(k, gemeente) for k in own)
        assert set(monitoring["woongemeente_code"]) <= {gemeente}
        people = csv_frame(csv_bytes(export.aggregates["aggregaat_per_leeftijd"]))
        grand_total = people["totaal"].iloc[-1]
        assert grand_total in ("<5", "x", ".") or int(grand_total) == len(own)


@pytest.mark.slow  # a property search over 20 regions of five municipalities
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pupils=st.lists(pupil_strategy, min_size=1, max_size=25))
def test_no_identifier_name_postcode_or_birth_date_in_any_published_cell(pupils):
    region = REGION_POOL[:5]
    inputs = build_inputs(pupils, region)
    forbidden = forbidden_values(inputs)
    for gemeente in region:
        export = export_for(inputs, gemeente)
        for name, table in {"monitoring": export.monitoring, **export.aggregates}.items():
            text = csv_bytes(table).decode("utf-8-sig")
            assert not [v for v in forbidden if v in text], name


def test_no_identifier_in_the_written_csv_parquet_or_xlsx_files(tmp_path):
    region = REGION_POOL[:5]
    pupils = [Pupil(home=g, age=10 + i % 9, wait=("wacht", "in zorg", "geen")[i % 3], po=i % 2 == 0,
                    mbo="ingeschreven" if i % 5 == 0 else None, reasons=("V16",) if i % 4 == 0 else (),
                    hours=(4.0, 4.0), postcode=f"79{i % 90 + 10:02d}AB", by_bsn=i % 7 != 0)
              for i, g in enumerate(list(region) * 8 + list(OUTSIDE_REGION) * 3)]
    inputs = build_inputs(pupils, region)
    forbidden = forbidden_values(inputs)
    outbox = Outbox(root=str(tmp_path))
    for gemeente in region:
        written = write_export(export_for(inputs, gemeente), outbox)
        for path in written.folder.iterdir():
            if path.name.startswith(PRIVATE_TABLES):
                text = "\n".join(cell_texts(path.name, path.read_bytes()))
                assert not [v for v in forbidden if v in text], path.name


def test_every_written_row_names_the_municipality_of_its_folder(tmp_path):
    region = REGION_POOL[:3]
    pupils = [Pupil(home=g) for g in list(region) * 3 + list(OUTSIDE_REGION)]
    inputs = build_inputs(pupils, region)
    outbox = Outbox(root=str(tmp_path))
    for gemeente in region:
        write_export(export_for(inputs, gemeente), outbox)
    for folder in (tmp_path / "gemeenten").glob("*/2026-10-05"):
        gemeente = folder.parent.name
        csv = csv_frame((folder / "monitoring.csv").read_bytes())
        parquet = pq.read_table(folder / "monitoring.parquet").to_pandas()
        sheet = openpyxl.load_workbook(folder / "monitoring.xlsx", read_only=True).active
        xlsx = [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]
        for codes in (list(csv["woongemeente_code"]), list(parquet["woongemeente_code"]), xlsx):
            assert codes == [gemeente] * 3
    assert sorted(p.name for p in (tmp_path / "gemeenten").iterdir()) == sorted(region)


def test_an_out_of_region_pupil_reaches_no_municipality():
    inputs = build_inputs([Pupil(home="GM0193"), Pupil(home="GM0118")], REGION_POOL[:2])
    exports = [export_for(inputs, g) for g in REGION_POOL[:2]]
    outsider = expected_pseudonym(inputs.pupils["pupil_key"].iloc[0], "GM0118")
    assert [len(e.monitoring) for e in exports] == [1, 0]
    assert outsider not in set(exports[0].monitoring["pseudonym"])


def test_a_pupil_marked_outside_the_region_is_left_out_even_with_a_region_code():
    inputs = build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])
    outside = replace(inputs, pupils=inputs.pupils.assign(buiten_regio=pd.array([True], dtype="boolean")))
    export = export_for(outside, "GM0118")
    assert export.monitoring.empty


# -- the pseudonym ---------------------------------------------------------------------------------


def test_pseudonyms_are_stable_across_nights():
    inputs = build_inputs([Pupil(home="GM0118"), Pupil(home="GM0118", by_bsn=False)], REGION_POOL[:2])
    first = export_for(inputs, "GM0118", E)
    second = export_for(inputs, "GM0118", E + dt.timedelta(days=1))
    assert list(first.monitoring["pseudonym"]) == list(second.monitoring["pseudonym"])


def test_the_same_pupil_gets_a_different_pseudonym_in_another_municipality():
    keys = pd.Series(["bsn:111222333"], dtype="str")
    assert pseudonymise(keys, key_of("GM0118")).iat[0] != pseudonymise(keys, key_of("GM0119")).iat[0]


def test_a_pupil_who_moves_is_not_linkable_across_municipalities():
    before = build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])
    after = build_inputs([Pupil(home="GM0119")], REGION_POOL[:2])
    assert set(export_for(before, "GM0118").monitoring["pseudonym"]).isdisjoint(
        export_for(after, "GM0119").monitoring["pseudonym"])


def test_the_pseudonym_is_an_hmac_of_the_pupil_key_never_the_bsn_itself():
    inputs = build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])
    export = export_for(inputs, "GM0118")
    key = inputs.pupils["pupil_key"].iat[0]
    assert export.monitoring["pseudonym"].iat[0] == expected_pseudonym(key, "GM0118")
    assert bsn(0) not in export.monitoring["pseudonym"].iat[0]
    assert export.monitoring["pseudonym"].iat[0] != hashlib.sha256(bsn(0).encode()).hexdigest()


@pytest.mark.parametrize("key_length", [1, 32, 63, 64, 65, 200])
def test_the_pseudonym_is_the_hmac_sha256_of_the_pupil_key_in_hex_for_every_key_length(key_length):
    """Keys up to, at and beyond SHA-256's 64-byte block; text as UTF-8; no key, no pseudonym."""
    key = bytes(range(key_length))
    messages = ["", "bsn:111222333", "onr:101234567 é", "x" * 300]
    pseudonyms = pseudonymise(pd.Series([*messages, None], dtype="str"), key)
    assert pseudonyms.iloc[:-1].tolist() == [hmac.new(key, m.encode("utf-8"), hashlib.sha256).hexdigest()
                                             for m in messages]
    assert pd.isna(pseudonyms.iloc[-1])


def test_the_manifest_shows_when_the_key_changed_without_revealing_it():
    inputs = build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])
    first = export_for(inputs, "GM0118").manifest["pseudoniem"]["sleutel_id"]
    rotated = municipal_export(inputs, gemeente="GM0118", evaluation_date=E, calendar=CALENDAR, key=b"new-key",
                               swv_code="VO2203").manifest["pseudoniem"]["sleutel_id"]
    assert first != rotated and key_of("GM0118").decode() not in first
    assert first == export_for(inputs, "GM0118", E + dt.timedelta(days=1)).manifest["pseudoniem"]["sleutel_id"]


# -- what the monitoring table says ----------------------------------------------------------------


def _row(pupil: Pupil) -> pd.Series:
    inputs = build_inputs([pupil], REGION_POOL[:2])
    return export_for(inputs, pupil.home).monitoring.iloc[0]


def test_monitoring_shows_birth_year_and_pc4_only():
    row = _row(Pupil(home="GM0118", age=13, postcode="7901AB"))
    assert row["pc4"] == "7901"
    assert row["geboortejaar"] == (pd.Timestamp(E) - pd.DateOffset(years=13, days=40)).year


def test_absence_counts_the_last_four_school_weeks():
    assert _row(Pupil(home="GM0118", hours=(2.0, 4.0, 6.0, 8.5)))["uren_ongeoorloofd_4w"] == 20.5


def test_a_pupil_waiting_longer_than_fourteen_weeks_is_over_every_norm_that_has_run():
    row = _row(Pupil(home="GM0118", wait="wacht", wait_weeks=16))
    assert (row["wachtlijst_status"], row["wachttijd_weken"]) == ("wacht", 16)
    # intake two weeks after aanmelding: within 4 weeks; 14 weeks since intake: over 10
    assert (row["boven_norm_4"], row["boven_norm_10"], row["boven_norm_14"]) == (False, True, True)
    assert row["productcategorie"] == "45"


def test_a_pupil_in_care_shows_the_waiting_time_until_the_start():
    row = _row(Pupil(home="GM0118", wait="in zorg", wait_weeks=20))
    assert (row["wachtlijst_status"], row["wachttijd_weken"], row["boven_norm_14"]) == ("in zorg", 3, False)


def test_ended_care_counts_as_no_waitlist():
    row = _row(Pupil(home="GM0118", wait="beeindigd", wait_weeks=20))
    assert row["wachtlijst_status"] == "geen" and pd.isna(row["wachttijd_weken"])


def test_education_status_follows_enrolment_then_mbo():
    assert _row(Pupil(home="GM0118"))["onderwijsstatus"] == "ingeschreven VO"
    assert _row(Pupil(home="GM0118", school=None, mbo="ingeschreven"))["onderwijsstatus"] == "uitgestroomd naar MBO"
    left = _row(Pupil(home="GM0118", school=None, mbo="aanmelding_ontvangen"))
    assert (left["onderwijsstatus"], left["mbo_status"]) == ("uitgestroomd VO zonder MBO-inschrijving",
                                                             "aanmelding_ontvangen")
    assert _row(Pupil(home="GM0118", school=None))["onderwijsstatus"] == "niet ingeschreven"


def _facts_of(inputs: ExportInputs) -> pd.DataFrame:
    return resident_facts(inputs, "GM0118", E, CALENDAR, ExportSettings())


def test_of_several_waitlist_entries_the_longest_waiting_open_one_counts():
    inputs = build_inputs([Pupil(home="GM0118", wait="wacht", wait_weeks=6)], REGION_POOL[:2])
    entry = inputs.youth_care_waitlist
    registered = pd.Timestamp(E) - pd.Timedelta(weeks=16)
    longest = entry.assign(aanmelddatum=registered, intakedatum=registered + pd.Timedelta(weeks=5),
                           productcategorie="54")
    in_care = entry.assign(aanmelddatum=registered - pd.Timedelta(weeks=10), startdatum=registered)
    waits = pd.concat([in_care, entry, longest], ignore_index=True)
    row = _facts_of(replace(inputs, youth_care_waitlist=waits)).iloc[0]
    assert (row["wachtlijst_status"], row["wachttijd_weken"], row["productcategorie"]) == ("wacht", 16, "54")
    assert (row["boven_norm_4"], row["boven_norm_14"]) == (True, True)


def test_the_latest_transfer_and_the_latest_mbo_record_count_wherever_they_are_in_the_delivery():
    inputs = build_inputs([Pupil(home="GM0118", school=None, po=True, mbo="aanmelding_ontvangen")], REGION_POOL[:2])
    older_transfer = inputs.po_transfers.assign(schooljaar="2025-2026", vo_brin6="04AB00",
                                                aanmelddatum=pd.Timestamp("2025-03-28"))
    later_status = inputs.mbo_outflow.assign(vva_status="ingeschreven", status_datum=pd.Timestamp("2026-07-01"))
    earlier_status = inputs.mbo_outflow.assign(vva_status="afgewezen", status_datum=pd.Timestamp("2026-05-01"))
    row = _facts_of(replace(
        inputs,
        po_transfers=pd.concat([inputs.po_transfers, older_transfer], ignore_index=True),
        mbo_outflow=pd.concat([later_status, inputs.mbo_outflow, earlier_status], ignore_index=True),
    )).iloc[0]
    # 2026-2027 has no school and no aanmelding yet; the older dossier with a school does not count
    assert row["overdracht_status"] == "niet aangemeld"
    assert (row["mbo_status"], row["onderwijsstatus"]) == ("ingeschreven", "uitgestroomd naar MBO")


def test_a_resident_without_any_record_has_empty_facts():
    row = _facts_of(build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])).iloc[0]
    assert (row["wachtlijst_status"], row["uren_ongeoorloofd_4w"]) == ("geen", 0.0)
    assert all(pd.isna(row[c]) for c in ("wachttijd_weken", "boven_norm_4", "productcategorie", "overdracht_status",
                                         "mbo_status", "open_signalen"))


def test_open_alert_reasons_are_listed_in_rule_order():
    assert _row(Pupil(home="GM0118", reasons=("V16", "ABS")))["open_signalen"] == "ABS,V16"


def test_a_resolved_alert_is_not_listed():
    inputs = build_inputs([Pupil(home="GM0118", reasons=("V16",))], REGION_POOL[:2])
    resolved = replace(inputs, thuiszitter_alerts=inputs.thuiszitter_alerts.assign(status="resolved"))
    export = export_for(resolved, "GM0118")
    assert pd.isna(export.monitoring["open_signalen"].iat[0])


# -- formula neutralisation ------------------------------------------------------------------------


def test_a_formula_in_an_input_arrives_neutralised_in_every_format():
    inputs = build_inputs([Pupil(home="GM0118", wait="wacht", productcategorie=FORMULA, mbo=FORMULA)], REGION_POOL[:2])
    export = export_for(inputs, "GM0118")
    for stem in ("monitoring", "aggregaat_per_productcategorie"):
        for suffix in (".csv", ".parquet", ".xlsx"):
            texts = cell_texts(stem + suffix, export.files[stem + suffix][0])
            cells = [c for t in texts for row in csv.reader(io.StringIO(t), delimiter=";") for c in row] \
                if suffix == ".csv" else texts
            assert f"'{FORMULA}" in cells, stem + suffix
            assert FORMULA not in cells, stem + suffix


def test_every_formula_start_is_neutralised_and_nothing_else():
    """OWASP CSV injection: a cell starting with = + - @ tab or carriage return gets an apostrophe."""
    risky = ["=1+1", "+31 6", "-2", "@SUM(A1)", "\tx", "\rx"]
    safe = ["gewoon", " =spatie ervoor", "", "'=al", "1-2"]
    frame = pd.DataFrame({
        "tekst": pd.Series([*risky, *safe, None], dtype="str"),
        "gemengd": pd.Series([-5, "=x", 3, "<5", None, *[""] * 7], dtype=object),
        "getal": range(12),
    })
    shown = neutralise(frame)
    assert shown["tekst"].tolist()[:len(risky)] == ["'" + text for text in risky]
    assert shown["tekst"].tolist()[len(risky):-1] == safe and pd.isna(shown["tekst"].iloc[-1])
    assert shown["gemengd"].tolist()[:4] == ["'-5", "'=x", "3", "<5"]
    assert shown["getal"].tolist() == list(range(12))
    assert frame["tekst"].iloc[0] == "=1+1"  # the caller's frame is untouched


# -- the data dictionary ---------------------------------------------------------------------------


def test_the_data_dictionary_describes_every_published_column():
    export = export_for(build_inputs([Pupil(home="GM0118")], REGION_POOL[:2]), "GM0118")
    described = set(zip(export.dictionary["bestand"], export.dictionary["kolom"]))
    published = {("monitoring", c) for c in export.monitoring.columns}
    published |= {(name, c) for name, table in export.aggregates.items() for c in table.columns}
    assert described == published
    assert (export.dictionary[["type", "betekenis", "bron"]] != "").all().all()


def test_every_exported_dataset_must_have_a_legal_basis():
    with pytest.raises(ValueError, match="aggregaten"):
        ExportSettings(grondslag={"monitoring": "convenant", "datadictionary": "-", "manifest": "-"})


def test_the_documentation_describes_every_published_column_and_table():
    text = (PROJECT / "docs" / "exports.md").read_text(encoding="utf-8")
    assert [c for c in MONITORING_COLUMNS if f"`{c}`" not in text] == []
    assert [t for t in AGGREGATES if f"`{t}.*`" not in text] == []


def test_the_manifest_carries_period_legal_basis_and_stale_sources():
    inputs = build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])
    export = municipal_export(inputs, gemeente="GM0118", evaluation_date=E, calendar=CALENDAR,
                              key=key_of("GM0118"), swv_code="VO2203", stale_sources=["vo_verzuim"])
    assert export.manifest["periode"] == "2026-10-05"
    assert export.manifest["verouderde_bronnen"] == ["vo_verzuim"]
    assert export.grondslag("monitoring.csv").startswith("Wet passend onderwijs")
    assert export.grondslag("aggregaat_per_school.xlsx") == "geanonimiseerd, geen persoonsgegevens"
    assert set(export.manifest["tabellen"]) == {name.rsplit(".", 1)[0] for name in export.files}


# -- the privacy guard: the last line of defence before anything is written -------------------------


def test_the_privacy_guard_finds_every_kind_of_identifier_planted_in_a_published_cell():
    from assets.gemeenten.identifier_leaks import leaked_identifiers

    region = REGION_POOL[:2]
    inputs = build_inputs([Pupil(home=g, by_bsn=i % 2 == 0) for i, g in enumerate(list(region) * 3)], region)
    export = export_for(inputs, region[0])
    assert leaked_identifiers(export, inputs.pupils) == []

    pupil = inputs.pupils.iloc[1]
    born = pd.Timestamp(pupil["geboortedatum"])
    other = inputs.pupils.loc[inputs.pupils["woongemeente_code"] == region[1]].iloc[0]  # another municipality's pupil
    monitoring = export.monitoring.copy()
    monitoring.loc[0, "vo_brin6"] = other["bsn"] if pd.notna(other["bsn"]) else other["onderwijsnummer"]
    monitoring.loc[0, "pc4"] = pupil["postcode"].replace(" ", "")
    monitoring.loc[0, "open_signalen"] = born.strftime("%d-%m-%Y")
    monitoring.loc[0, "productcategorie"] = pupil["achternaam"]
    aggregates = dict(export.aggregates)
    first = next(iter(aggregates))
    table = aggregates[first].copy()
    table.iloc[0, 0] = born.strftime("%Y-%m-%d")
    aggregates[first] = table
    leaking = replace(export, monitoring=monitoring, aggregates=aggregates)

    assert sorted(leaked_identifiers(leaking, inputs.pupils)) == sorted([
        "monitoring.vo_brin6", "monitoring.pc4", "monitoring.open_signalen", "monitoring.productcategorie",
        f"{first}.{table.columns[0]}",
    ])


def test_the_privacy_guard_finds_a_bsn_that_became_a_number():
    """A BSN in a numeric column (as a float it would print as 123456782.0) is still the BSN."""
    from assets.gemeenten.identifier_leaks import leaked_identifiers

    inputs = build_inputs([Pupil(home="GM0118"), Pupil(home="GM0118")], REGION_POOL[:1])
    export = export_for(inputs, "GM0118")
    bsn_number = float(inputs.pupils["bsn"].dropna().iat[0])
    monitoring = export.monitoring.assign(uren_ongeoorloofd_4w=[bsn_number, 2.5])
    assert leaked_identifiers(replace(export, monitoring=monitoring), inputs.pupils) == ["monitoring.uren_ongeoorloofd_4w"]


def test_the_privacy_guard_refuses_a_date_column_and_a_date_that_is_nobodys_birth_date_passes():
    from assets.gemeenten.identifier_leaks import leaked_identifiers

    inputs = build_inputs([Pupil(home="GM0118")], REGION_POOL[:1])
    export = export_for(inputs, "GM0118")
    monitoring = export.monitoring.assign(open_signalen="01-01-1900", peildatum=pd.Timestamp(E))
    assert leaked_identifiers(replace(export, monitoring=monitoring), inputs.pupils) == ["monitoring.peildatum (datum)"]


def test_the_nights_region_wide_facts_give_each_municipality_exactly_its_own_export():
    """``export_facts`` computes the facts of every resident once; each municipality's export selects its own."""
    from assets.gemeenten.published_tables import export_from_facts

    region = REGION_POOL[:3]
    pupils = [Pupil(home=g, age=11 + i % 8, wait=("wacht", "in zorg", "geen")[i % 3], po=i % 2 == 0,
                    mbo="ingeschreven" if i % 4 == 0 else None, reasons=("V16",) if i % 3 == 0 else (),
                    hours=(2.0, 5.0), by_bsn=i % 5 != 0)
              for i, g in enumerate(list(region) * 7 + list(OUTSIDE_REGION) * 2)]
    inputs = build_inputs(pupils, region)
    facts = resident_facts(inputs, region, E, CALENDAR, ExportSettings())
    assert set(facts["woongemeente_code"]) == set(region)
    for gemeente in region:
        own = export_for(inputs, gemeente)
        shared = export_from_facts(facts, inputs.thuiszitter_alerts, gemeente=gemeente, evaluation_date=E,
                                   key=key_of(gemeente), swv_code="VO2203")
        pd.testing.assert_frame_equal(shared.monitoring, own.monitoring)
        for name, table in own.aggregates.items():
            pd.testing.assert_frame_equal(shared.aggregates[name], table)
        assert shared.files.keys() == own.files.keys()
        assert all(shared.files[f][0] == own.files[f][0] for f in own.files)


# -- what an analyst opens: Dutch decimals, labels beside codes, a legend -------------------------------


def test_decimals_in_the_csv_have_a_comma_and_parquet_keeps_real_numbers(tmp_path):
    inputs = build_inputs([Pupil(home="GM0118", hours=(2.0, 4.0, 6.0, 8.5))], REGION_POOL[:2])
    written = write_export(export_for(inputs, "GM0118"), Outbox(root=str(tmp_path)))
    csv = csv_frame((written.folder / "monitoring.csv").read_bytes())
    assert csv["uren_ongeoorloofd_4w"].tolist() == ["20,5"]
    assert pq.read_table(written.folder / "monitoring.parquet").to_pandas()["uren_ongeoorloofd_4w"].tolist() == [20.5]
    read_as_dutch_excel_does = pd.read_csv(written.folder / "monitoring.csv", sep=";", decimal=",",
                                           encoding="utf-8-sig")
    assert read_as_dutch_excel_does["uren_ongeoorloofd_4w"].tolist() == [20.5]


def test_labels_stand_beside_the_codes_of_product_categories_vva_statuses_and_schools():
    row = _row(Pupil(home="GM0118", school="19IW00", wait="wacht", productcategorie="54", mbo="niet_tot_inschrijving"))
    assert (row["productcategorie"], row["productcategorie_omschrijving"]) == ("54", "Jeugd-ggz")
    assert (row["mbo_status"], row["mbo_status_omschrijving"]) == (
        "niet_tot_inschrijving", "aanmelding leidt niet tot inschrijving")
    assert (row["vo_brin6"], row["vo_schoolnaam"]) == ("19IW00", "Regionale Scholengemeenschap Wolfsbos")


def test_the_aggregates_name_their_schools_and_product_categories_beside_the_codes():
    inputs = build_inputs([Pupil(home="GM0118", school="19IW00", wait="wacht", productcategorie="54")
                           for _ in range(7)], REGION_POOL[:2])
    aggregates = export_for(inputs, "GM0118").aggregates
    per_school = aggregates["aggregaat_per_school"].set_index("vo_brin6")
    assert per_school.loc["19IW00", "schoolnaam"] == "Regionale Scholengemeenschap Wolfsbos"
    assert per_school.loc["totaal", "schoolnaam"] == "totaal"
    per_category = aggregates["aggregaat_per_productcategorie"].set_index("productcategorie")
    assert per_category.loc["54", "omschrijving"] == "Jeugd-ggz"


def test_every_export_folder_has_a_dutch_legend_of_symbols_pseudonym_and_columns(tmp_path):
    inputs = build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])
    export = export_for(inputs, "GM0118")
    written = write_export(export, Outbox(root=str(tmp_path)))
    legend = (written.folder / "legenda.txt").read_text(encoding="utf-8-sig")
    for symbol in ("<5", "x ", ". ", "decimale komma", "HMAC-SHA256", export.manifest["pseudoniem"]["sleutel_id"]):
        assert symbol in legend, symbol
    assert all(column in legend for column in MONITORING_COLUMNS)
    assert export.grondslag("legenda.txt") == export.manifest["grondslag"]["datadictionary"]
    assert "legenda.txt" in written.files  # in the manifest, with its sha256
