"""The alert rules of docs/alerts.md, one behaviour per test, on small hand-built datasets."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from assets.signalen.alert_assets import night_alerts, record_alert_night
from assets.signalen.signal_lists import deliver_signal_lists, signal_lists
from assets.signalen.alert_rules import (
    ALERT_COLUMNS,
    AlertThresholds,
    SchoolWeeks,
    age_scope,
    evaluate_alerts,
    kwalificatieplichtig,
    leerplicht_end,
    leerplichtig,
)
from connectors.alert_store import AlertStore
from connectors.outbox import Outbox
from schemas.datasets import MODELS
from settings.region import Calendar, load_region
from tests.conftest import DEMO_REGION

REGION = load_region(DEMO_REGION)
CALENDAR = REGION.calendar  # holidays regio noord 2025-2027
E = dt.date(2026, 10, 5)  # a Monday, after 1 October; herfstvakantie is 17-25 October


def _d(value: str | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value)


def mondays(first: str, last: str) -> list[str]:
    """Every Monday from ``first`` to ``last``, holidays included (the rules must skip them)."""
    return [d.date().isoformat() for d in pd.date_range(first, last, freq="W-MON")]


class Night:
    """A few pupils and their rows in every dataset, typed as the validated assets deliver them."""

    def __init__(self) -> None:
        self.people: list[dict] = []
        self.rows: dict[str, list[dict]] = {name: [] for name in MODELS}

    def pupil(self, bsn: str, born: str | None = "2012-03-01", gemeente: str = "GM0118", *,
              buiten_regio: bool = False, naam: str = "Jansen") -> str:
        self.people.append({"pupil_key": f"bsn:{bsn}", "bsn": bsn, "onderwijsnummer": None,
                            "geboortedatum": _d(born), "woongemeente_code": gemeente, "buiten_regio": buiten_regio,
                            "naam": naam})
        return f"bsn:{bsn}"

    def _person(self, bsn: str) -> dict:
        return next(p for p in self.people if p["bsn"] == bsn)

    def enrolled(self, bsn: str, since: str = "2024-08-19", until: str | None = None, *, school: str = "01AB00",
                 vrijstelling: str | None = None) -> None:
        p = self._person(bsn)
        self.rows["vo_enrolment"].append({
            "bsn": bsn, "geboortedatum": p["geboortedatum"], "voornaam": "Sam", "achternaam": p["naam"],
            "woongemeente_code": p["woongemeente_code"], "vo_brin6": school, "leerjaar": 2,
            "onderwijsniveau": "vmbo_gt",
            "inschrijfdatum": _d(since), "uitschrijfdatum": _d(until), "vrijstelling": vrijstelling})

    def absent(self, bsn: str, weeks: list[str], hours: float, *, school: str = "01AB00",
               scheduled: float | None = None) -> None:
        for week in weeks:
            self.rows["vo_absence"].append({"bsn": bsn, "vo_brin6": school, "week_start": _d(week),
                                            "uren_ongeoorloofd": float(hours), "uren_geoorloofd": 0.0,
                                            "uren_rooster": scheduled})

    def transfer(self, bsn: str, schooljaar: str = "2026-2027", *, vo_brin6: str | None = "01AB00") -> None:
        p = self._person(bsn)
        self.rows["po_transfers"].append({
            "bsn": bsn, "geboortedatum": p["geboortedatum"], "voornaam": "Kim", "achternaam": p["naam"],
            "woongemeente_code": p["woongemeente_code"], "po_brin6": "09XY00", "vo_brin6": vo_brin6,
            "aanmelddatum": _d("2026-03-27"), "schooljaar": schooljaar})

    def leaver(self, bsn: str, left: str | None = "2026-07-10", *, niveau: str = "vmbo_gt", diploma: bool = True,
               applied: str | None = None, status: str | None = None) -> None:
        p = self._person(bsn)
        self.rows["mbo_outflow"].append({
            "bsn": bsn, "geboortedatum": p["geboortedatum"], "woongemeente_code": p["woongemeente_code"],
            "vo_brin6": "01AB00", "vo_niveau": niveau, "vo_diploma": diploma, "uitstroomdatum": _d(left),
            "aanmelddatum": _d(applied), "vva_status": status, "status_datum": _d(applied)})

    def waiting(self, bsn: str, since: str, *, started: str | None = None, ended: str | None = None) -> None:
        p = self._person(bsn)
        self.rows["youth_care_waitlist"].append({
            "bsn": bsn, "geboortedatum": p["geboortedatum"], "woongemeente_code": p["woongemeente_code"],
            "verwijzer": "03", "productcategorie": "54", "zorgaanbieder_agb": "12345678",
            "aanmelddatum": _d(since), "startdatum": _d(started), "einddatum": _d(ended)})

    def frames(self) -> dict[str, pd.DataFrame]:
        frames = {name: _typed(name, rows) for name, rows in self.rows.items()}
        people = pd.DataFrame(self.people, columns=["pupil_key", "bsn", "onderwijsnummer", "geboortedatum",
                                                    "woongemeente_code", "buiten_regio"])
        frames["pupils"] = people.astype({"pupil_key": "str", "bsn": "str", "onderwijsnummer": "str",
                                          "geboortedatum": "datetime64[ns]", "woongemeente_code": "str",
                                          "buiten_regio": "boolean"})
        frames["pupil_conflicts"] = pd.DataFrame({"pupil_key": pd.Series([], dtype="str")})
        return frames

    def alerts(self, on: dt.date = E, **kwargs) -> pd.DataFrame:
        return evaluate_alerts(**self.frames(), calendar=CALENDAR, evaluation_date=on, **kwargs)


def _typed(dataset: str, rows: list[dict]) -> pd.DataFrame:
    """Rows with every column of the dataset's model (provenance included), in the model's dtypes."""
    columns = MODELS[dataset].to_schema().columns
    provenance = {"source_id": "test", "delivery": "test", "delivery_sha256": "test", "fetched_at": "test"}
    data = {}
    for name, column in columns.items():
        kind = str(column.dtype)
        if name in provenance:
            values = [provenance[name]] * len(rows)
        elif name == "delivery_row":
            values = list(range(1, len(rows) + 1))
        else:
            values = [row.get(name) for row in rows]
        data[name] = pd.array(values, dtype="str" if kind.startswith("string") else kind)
    if "woongemeente_code" in columns:
        data["buiten_regio"] = pd.array([False] * len(rows), dtype="boolean")
    return pd.DataFrame(data)


def reasons(alerts: pd.DataFrame, key: str) -> set[str]:
    return set(alerts.loc[alerts["pupil_key"] == key, "reason"])


def alert(alerts: pd.DataFrame, key: str, reason: str) -> pd.Series:
    rows = alerts.loc[(alerts["pupil_key"] == key) & (alerts["reason"] == reason)]
    assert len(rows) == 1, f"expected one {reason} alert for {key}, found {len(rows)}"
    return rows.iloc[0]


# -- age scope (docs/alerts.md "Age scope"; domain.md §4.1) ----------------------------------------


def test_sixteen_in_june_is_leerplichtig_until_31_july_then_kwalificatieplichtig():
    born = pd.Series([pd.Timestamp("2010-06-15")])
    no_sq = pd.Series([False])
    assert leerplicht_end(born, CALENDAR).iloc[0] == pd.Timestamp("2026-07-31")
    assert leerplichtig(born, dt.date(2026, 7, 31), CALENDAR).iloc[0]
    assert not kwalificatieplichtig(born, no_sq, dt.date(2026, 7, 31), CALENDAR).iloc[0]
    assert not leerplichtig(born, dt.date(2026, 8, 1), CALENDAR).iloc[0]
    assert kwalificatieplichtig(born, no_sq, dt.date(2026, 8, 1), CALENDAR).iloc[0]


def test_sixteen_on_1_august_stays_leerplichtig_a_whole_school_year_more():
    born = pd.Series([pd.Timestamp("2010-08-01")])
    assert leerplicht_end(born, CALENDAR).iloc[0] == pd.Timestamp("2027-07-31")
    assert leerplichtig(born, dt.date(2027, 7, 31), CALENDAR).iloc[0]


def test_leerplicht_begins_on_the_first_of_the_month_after_the_fifth_birthday():
    born = pd.Series([pd.Timestamp("2021-05-10")])
    assert not leerplichtig(born, dt.date(2026, 5, 31), CALENDAR).iloc[0]
    assert leerplichtig(born, dt.date(2026, 6, 1), CALENDAR).iloc[0]


def test_kwalificatieplicht_ends_at_18_or_with_a_startkwalificatie():
    turning_18 = pd.Series([pd.Timestamp("2008-10-06")])
    assert age_scope(turning_18, pd.Series([False]), dt.date(2026, 10, 5), CALENDAR).tolist() == ["SWV"]
    assert age_scope(turning_18, pd.Series([False]), dt.date(2026, 10, 6), CALENDAR).tolist() == ["DOORSTROOMPUNT"]
    with_havo_diploma = pd.Series([pd.Timestamp("2009-01-01")])
    assert age_scope(with_havo_diploma, pd.Series([True]), dt.date(2026, 10, 5), CALENDAR).isna().all()


def test_23_year_olds_are_out_of_every_scope_and_unknown_birth_dates_count_as_swv():
    born = pd.Series([pd.Timestamp("2003-01-01"), pd.NaT])
    assert age_scope(born, pd.Series([False, False]), E, CALENDAR).isna().tolist() == [True, False]
    assert age_scope(born, pd.Series([False, False]), E, CALENDAR).iloc[1] == "SWV"


def _reference_leerplichtig(born: dt.date, on: dt.date) -> bool:
    """Plain-date reading of domain.md §4.1 (school year 1 August - 31 July)."""
    month_after_5 = dt.date(born.year + 5 + (born.month == 12), born.month % 12 + 1, 1)
    turns_16 = dt.date(born.year + 16, born.month, 28 if (born.month, born.day) == (2, 29) else born.day)
    end_year = turns_16.year + (1 if turns_16 >= dt.date(turns_16.year, 8, 1) else 0)
    return month_after_5 <= on <= dt.date(end_year, 7, 31)


@given(st.dates(dt.date(1995, 1, 1), dt.date(2022, 12, 31)), st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31)))
def test_vectorised_leerplicht_agrees_with_a_plain_date_reading(born, on):
    vectorised = leerplichtig(pd.Series([pd.Timestamp(born)]), on, CALENDAR).iloc[0]
    assert bool(vectorised) == _reference_leerplichtig(born, on)


# -- school weeks ------------------------------------------------------------------------------


def test_holiday_weeks_are_skipped_when_counting_back_school_weeks():
    weeks = SchoolWeeks.from_calendar(CALENDAR)
    last_four = weeks.last_weeks(dt.date(2026, 11, 2), 4)
    assert [str(w) for w in last_four] == ["2026-09-28", "2026-10-05", "2026-10-12", "2026-10-26"]


@pytest.mark.parametrize(("sunday", "expected"), [
    (dt.date(2026, 3, 29), ["2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"]),  # summer time starts
    (dt.date(2026, 10, 25), ["2026-09-21", "2026-09-28", "2026-10-05", "2026-10-12"]),  # winter time, herfstvakantie
])
def test_evaluation_on_a_clock_change_sunday_uses_date_week_boundaries(sunday, expected):
    assert [str(w) for w in SchoolWeeks.from_calendar(CALENDAR).last_weeks(sunday, 4)] == expected


def test_absence_weeks_stamped_at_amsterdam_midnight_keep_their_monday_across_clock_changes():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", ["2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"], 4)
    night.absent("100000001", ["2026-02-23"], 10)
    frames = night.frames()
    # Amsterdam midnight is 23:00 or 22:00 UTC on the Sunday before: read naively, every week would
    # slide back one Monday and the window would hold 10 + 4 + 4 + 4 = 22 hours, not 16.
    local = frames["vo_absence"]["week_start"].dt.tz_localize("Europe/Amsterdam").dt.tz_convert("UTC")
    frames["vo_absence"] = frames["vo_absence"].assign(week_start=local)
    alerts = evaluate_alerts(**frames, calendar=CALENDAR, evaluation_date=dt.date(2026, 3, 29))
    assert alert(alerts, key, "V16")["detail"].startswith("16 uur")


# -- ABS ---------------------------------------------------------------------------------------


def test_abs_fires_for_a_leerplichtige_whose_enrolment_ended():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001", until="2026-09-01")
    row = alert(night.alerts(), key, "ABS")
    assert (row["category"], row["episode_start"], row["vo_brin6"]) == ("SWV", pd.Timestamp("2026-09-01"), "01AB00")
    assert row["weeks"] == 5  # 31 Aug (the week of 1 Sep) to 28 Sep


@pytest.mark.parametrize("situation", ["enrolled elsewhere", "vrijstelling", "in the mbo outflow", "ended after E"])
def test_abs_does_not_fire(situation):
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001", until="2026-09-01" if situation != "ended after E" else "2026-10-06",
                   vrijstelling="5a" if situation == "vrijstelling" else None)
    if situation == "enrolled elsewhere":
        night.enrolled("100000001", since="2026-09-02", school="02AB00")
    if situation == "in the mbo outflow":
        night.leaver("100000001", applied="2026-02-01", status="ingeschreven")
    assert "ABS" not in reasons(night.alerts(), key)


def test_abs_is_not_raised_for_an_18_year_old():
    night = Night()
    key = night.pupil("100000001", born="2008-01-01")
    night.enrolled("100000001", until="2026-09-01")
    assert reasons(night.alerts(), key) == set()


# -- LRV and V16 -------------------------------------------------------------------------------


def test_lrv_fires_after_more_than_four_consecutive_school_weeks_of_20_hours():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", mondays("2026-08-31", "2026-09-28"), 20)
    row = alert(night.alerts(), key, "LRV")
    assert (row["weeks"], row["episode_start"]) == (5, pd.Timestamp("2026-08-31"))
    assert "V16" not in reasons(night.alerts(), key)  # the higher rung replaces the early warning


def test_with_scheduled_hours_an_lrv_week_is_one_with_every_scheduled_lesson_missed():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", mondays("2026-08-31", "2026-09-28"), 16, scheduled=16)  # a part-time timetable
    row = alert(night.alerts(), key, "LRV")
    assert (row["weeks"], row["episode_start"]) == (5, pd.Timestamp("2026-08-31"))
    assert "alle geroosterde lesuren" in row["detail"]


def test_with_scheduled_hours_twenty_hours_of_a_longer_timetable_is_no_lrv_week():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", mondays("2026-08-31", "2026-09-28"), 24, scheduled=30)
    assert "LRV" not in reasons(night.alerts(), key)


def test_without_scheduled_hours_twenty_unexcused_hours_stand_for_a_whole_week():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", mondays("2026-08-31", "2026-09-21"), 30, scheduled=30)
    night.absent("100000001", ["2026-09-28"], 20)  # this school's export has no timetable
    row = alert(night.alerts(), key, "LRV")
    assert row["weeks"] == 5
    assert "ten minste 20 uur" in row["detail"]


def test_lrv_does_not_fire_after_four_weeks():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", mondays("2026-09-07", "2026-09-28"), 30)
    assert reasons(night.alerts(), key) == {"V16"}


def test_lrv_run_must_reach_the_last_complete_school_week():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", mondays("2026-08-17", "2026-09-21"), 25)
    night.absent("100000001", ["2026-09-28"], 19)
    assert "LRV" not in reasons(night.alerts(), key)


def test_a_school_holiday_neither_counts_nor_breaks_an_lrv_run():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    # 21 Sep - 26 Oct with the herfstvakantie week (19 Oct) in between, where the LAS still wrote 25 hours.
    night.absent("100000001", mondays("2026-09-21", "2026-10-26"), 25)
    row = alert(night.alerts(on=dt.date(2026, 11, 2)), key, "LRV")
    assert (row["weeks"], row["episode_start"]) == (5, pd.Timestamp("2026-09-21"))


def test_a_week_without_absence_ends_the_lrv_run():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", [*mondays("2026-08-17", "2026-08-31"), *mondays("2026-09-14", "2026-09-28")], 25)
    assert "LRV" not in reasons(night.alerts(), key)


def test_lrv_needs_an_active_enrolment():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001", until="2026-10-02")
    night.absent("100000001", mondays("2026-08-17", "2026-09-28"), 25)
    assert reasons(night.alerts(), key) == {"ABS"}


def test_v16_fires_at_16_hours_in_the_last_four_school_weeks():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", ["2026-09-14", "2026-09-28"], 8)
    night.absent("100000001", ["2026-08-31"], 30)  # before the window
    row = alert(night.alerts(), key, "V16")
    assert row["episode_start"] == pd.Timestamp("2026-09-14") and pd.isna(row["weeks"])


def test_v16_does_not_fire_below_16_hours():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", ["2026-09-07", "2026-09-14", "2026-09-21", "2026-09-28"], 3.9)
    assert reasons(night.alerts(), key) == set()


def test_v16_window_skips_the_holiday_instead_of_counting_it_as_an_empty_week():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", ["2026-09-28"], 16)  # four school weeks back from 2 November
    night.absent("100000001", ["2026-10-19"], 40)  # herfstvakantie: never counts
    assert reasons(night.alerts(on=dt.date(2026, 11, 2)), key) == {"V16"}
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", ["2026-09-21"], 16)  # five school weeks back: outside the window
    assert reasons(night.alerts(on=dt.date(2026, 11, 2)), key) == set()


def test_hours_at_two_schools_in_one_week_add_up():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", ["2026-09-28"], 9, school="01AB00")
    night.absent("100000001", ["2026-09-28"], 7, school="02AB00")
    assert reasons(night.alerts(), key) == {"V16"}


# -- T3M ---------------------------------------------------------------------------------------


def test_t3m_fires_with_abs_after_more_than_three_months():
    night = Night()
    late, on_the_day = night.pupil("100000001"), night.pupil("100000002")
    night.enrolled("100000001", until="2026-07-04")
    night.enrolled("100000002", until="2026-07-05")  # exactly three months before 5 October
    alerts = night.alerts()
    assert reasons(alerts, late) == {"ABS", "T3M"}
    assert reasons(alerts, on_the_day) == {"ABS"}
    assert alert(alerts, late, "T3M")["episode_start"] == pd.Timestamp("2026-07-04")


def test_t3m_fires_with_an_lrv_run_that_began_more_than_three_months_ago_across_the_summer():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", mondays("2026-06-01", "2026-09-28"), 26)  # summer weeks are skipped
    row = alert(night.alerts(), key, "T3M")
    assert row["episode_start"] == pd.Timestamp("2026-06-01")
    assert reasons(night.alerts(), key) == {"LRV", "T3M"}


# -- PO_GEEN_VO --------------------------------------------------------------------------------


def test_po_geen_vo_fires_when_the_school_year_has_started_without_a_vo_enrolment():
    night = Night()
    key = night.pupil("100000001", born="2014-05-01")
    night.transfer("100000001", "2026-2027")
    row = alert(night.alerts(), key, "PO_GEEN_VO")
    assert row["episode_start"] == pd.Timestamp("2026-08-01") and row["vo_brin6"] == "01AB00"


@pytest.mark.parametrize("situation", ["enrolled", "next school year"])
def test_po_geen_vo_does_not_fire(situation):
    night = Night()
    key = night.pupil("100000001", born="2014-05-01")
    night.transfer("100000001", "2027-2028" if situation == "next school year" else "2026-2027")
    if situation == "enrolled":
        night.enrolled("100000001", since="2026-08-17")
    assert reasons(night.alerts(), key) == set()


# -- MBO rules and the Doorstroompunt ----------------------------------------------------------


def test_mbo_geen_aanmelding_fires_for_a_kwalificatieplichtige_leaver_without_application():
    night = Night()
    key = night.pupil("100000001", born="2010-03-01")
    night.leaver("100000001", left="2026-07-10")
    row = alert(night.alerts(), key, "MBO_GEEN_AANMELDING")
    assert (row["category"], row["episode_start"]) == ("SWV", pd.Timestamp("2026-04-01"))


def test_mbo_geen_aanmelding_waits_until_after_1_april_of_the_leaving_year():
    night = Night()
    key = night.pupil("100000001", born="2010-03-01")
    night.leaver("100000001", left="2026-07-10")
    assert reasons(night.alerts(on=dt.date(2026, 4, 1)), key) == set()
    assert reasons(night.alerts(on=dt.date(2026, 4, 2)), key) == {"MBO_GEEN_AANMELDING"}


@pytest.mark.parametrize("situation", ["applied on 1 April", "havo diploma", "left two school years ago"])
def test_mbo_geen_aanmelding_does_not_fire(situation):
    night = Night()
    key = night.pupil("100000001", born="2010-03-01")
    if situation == "applied on 1 April":
        night.leaver("100000001", applied="2026-04-01", status="ingeschreven")
    elif situation == "havo diploma":
        night.leaver("100000001", niveau="havo", diploma=True)
    else:
        night.leaver("100000001", left="2025-06-30")
    assert reasons(night.alerts(), key) == set()


def test_mbo_niet_ingeschreven_fires_from_1_october_for_an_applicant_without_enrolment():
    night = Night()
    key = night.pupil("100000001", born="2010-03-01")
    night.leaver("100000001", applied="2026-03-10", status="onderwijsovereenkomst_aangeboden")
    assert reasons(night.alerts(on=dt.date(2026, 9, 30)), key) == set()
    row = alert(night.alerts(on=dt.date(2026, 10, 1)), key, "MBO_NIET_INGESCHREVEN")
    assert row["episode_start"] == pd.Timestamp("2026-10-01")
    assert "onderwijsovereenkomst aangeboden" in row["detail"]


def test_mbo_niet_ingeschreven_does_not_fire_once_ingeschreven():
    night = Night()
    key = night.pupil("100000001", born="2010-03-01")
    night.leaver("100000001", applied="2026-03-10", status="aanmelding_ontvangen")
    night.leaver("100000001", applied="2026-03-12", status="ingeschreven")
    assert reasons(night.alerts(), key) == set()


def test_an_18_year_old_leaver_goes_to_the_doorstroompunt_only():
    night = Night()
    late, unplaced = night.pupil("100000001", born="2008-05-01"), night.pupil("100000002", born="2007-11-01")
    night.leaver("100000001")
    night.leaver("100000002", applied="2026-02-01", status="niet_tot_inschrijving")
    alerts = night.alerts()
    assert reasons(alerts, late) == reasons(alerts, unplaced) == {"DOORSTROOMPUNT"}
    assert alert(alerts, late, "DOORSTROOMPUNT")["category"] == "DOORSTROOMPUNT"
    assert alert(alerts, late, "DOORSTROOMPUNT")["detail"].startswith("MBO_GEEN_AANMELDING: ")
    assert alert(alerts, unplaced, "DOORSTROOMPUNT")["detail"].startswith("MBO_NIET_INGESCHREVEN: ")


def test_an_18_year_old_with_long_absence_goes_to_the_doorstroompunt_and_23_to_nobody():
    night = Night()
    adult, older = night.pupil("100000001", born="2008-01-01"), night.pupil("100000002", born="2003-01-01")
    for bsn in ("100000001", "100000002"):
        night.enrolled(bsn)
        night.absent(bsn, mondays("2026-06-01", "2026-09-28"), 25)
    alerts = night.alerts()
    row = alert(alerts, adult, "DOORSTROOMPUNT")  # LRV and T3M, one row for the Doorstroompunt
    assert row["detail"].startswith("LRV: ") and " | T3M: " in row["detail"]
    assert row["episode_start"] == pd.Timestamp("2026-06-01")
    assert reasons(alerts, adult) == {"DOORSTROOMPUNT"} and reasons(alerts, older) == set()


# -- JZ_WACHT_VERZUIM --------------------------------------------------------------------------


def test_jz_wacht_verzuim_fires_beyond_14_weeks_with_8_hours_absence():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", ["2026-09-21", "2026-09-28"], 4)
    night.waiting("100000001", since="2026-06-22")  # 15 weeks before 5 October
    row = alert(night.alerts(), key, "JZ_WACHT_VERZUIM")
    assert (row["weeks"], row["episode_start"]) == (15, pd.Timestamp("2026-06-22"))
    assert "54" not in row["detail"] and "12345678" not in row["detail"]  # no product, no provider


@pytest.mark.parametrize("situation", ["exactly 14 weeks", "care started", "care ended", "7.5 hours", "not enrolled"])
def test_jz_wacht_verzuim_does_not_fire(situation):
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001", until="2026-09-01" if situation == "not enrolled" else None)
    night.absent("100000001", ["2026-09-28"], 7.5 if situation == "7.5 hours" else 8)
    night.waiting("100000001", since="2026-06-29" if situation == "exactly 14 weeks" else "2026-05-01",
                  started="2026-09-01" if situation == "care started" else None,
                  ended="2026-09-15" if situation == "care ended" else None)
    assert "JZ_WACHT_VERZUIM" not in reasons(night.alerts(), key)


# -- the frame as a whole ----------------------------------------------------------------------


def test_alerts_have_the_documented_columns_and_one_row_per_pupil_and_reason():
    night = Night()
    night.pupil("100000001")
    night.enrolled("100000001", until="2026-06-01")
    night.pupil("100000002")
    night.enrolled("100000002")
    night.absent("100000002", mondays("2026-08-17", "2026-09-28"), 25)
    alerts = night.alerts()
    assert tuple(alerts.columns) == ALERT_COLUMNS
    assert not alerts.duplicated(["pupil_key", "reason"]).any()
    assert not alerts["detail"].str.contains("100000001|100000002").any()


def test_pupils_with_conflicting_identities_are_left_out():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001", until="2026-09-01")
    frames = night.frames()
    frames["pupil_conflicts"] = pd.DataFrame({"pupil_key": pd.Series([key], dtype="str")})
    assert evaluate_alerts(**frames, calendar=CALENDAR, evaluation_date=E).empty


def test_no_data_gives_no_alerts():
    alerts = Night().alerts()
    assert alerts.empty and tuple(alerts.columns) == ALERT_COLUMNS


def test_thresholds_are_configuration():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", ["2026-09-28"], 10)
    assert reasons(night.alerts(thresholds=AlertThresholds(v16_hours=10)), key) == {"V16"}


def test_a_region_without_holidays_counts_every_week():
    night = Night()
    key = night.pupil("100000001")
    night.enrolled("100000001")
    night.absent("100000001", mondays("2026-09-21", "2026-10-19"), 25)  # 19 October: herfstvakantie noord
    without_holidays = evaluate_alerts(**night.frames(), calendar=Calendar(), evaluation_date=dt.date(2026, 10, 24))
    assert alert(without_holidays, key, "LRV")["weeks"] == 5
    assert "LRV" not in reasons(night.alerts(on=dt.date(2026, 10, 24)), key)


# -- residence: lists and moves (domain.md §7: own residents only) -----------------------------


def _region_night() -> tuple[Night, dict[str, str]]:
    night = Night()
    keys = {}
    for i, gemeente in enumerate(["GM0118", "GM0119", "GM1690", "GM1708", "GM1701", "GM0114"]):
        bsn = f"20000000{i}"
        keys[gemeente] = night.pupil(bsn, gemeente=gemeente, buiten_regio=gemeente == "GM0114", naam=f"Naam{i}")
        night.enrolled(bsn, until="2026-09-01")
    return night, keys


def test_no_municipality_list_contains_another_municipalitys_resident(tmp_path):
    night, keys = _region_night()
    frames = night.frames()
    store = AlertStore(f"sqlite:///{tmp_path / 'warehouse.db'}")
    tonight = night.alerts()
    record_alert_night(store, tonight, E, salt=b"test-salt")
    alerts = night_alerts(store, tonight, E, frames["pupils"])
    coordinator, municipal = signal_lists(alerts, frames["pupils"], frames["vo_enrolment"], frames["po_transfers"],
                                          REGION, night=E)
    deliver_signal_lists(Outbox(root=str(tmp_path / "outbox")), E, coordinator, municipal, REGION)

    residents = frames["pupils"].set_index("bsn")["woongemeente_code"]
    for code in REGION.gemeente_codes:
        path = tmp_path / "outbox" / "signalen" / "2026-10-05" / "gemeenten" / code / f"signalen_{code}.csv"
        listed = pd.read_csv(path, sep=";", encoding="utf-8-sig", dtype=str)
        assert len(listed) == 1 and (residents.loc[listed["BSN"]] == code).all()
        assert {"Woongemeente", "Buiten regio", "productcategorie", "zorgaanbieder_agb"}.isdisjoint(listed.columns)
    everyone = pd.read_csv(tmp_path / "outbox" / "signalen" / "2026-10-05" / "signalen_thuiszittercoordinator.csv",
                           sep=";", encoding="utf-8-sig", dtype=str)
    assert set(everyone["BSN"]) == set(residents.index)  # the out-of-region pupil is here only
    assert everyone.loc[everyone["BSN"] == "200000005", "Buiten regio"].tolist() == ["ja"]
    assert set(everyone["Achternaam"]) == {f"Naam{i}" for i in range(6)}


def test_an_alert_follows_a_pupil_who_moves_with_the_same_id(tmp_path):
    store = AlertStore(f"sqlite:///{tmp_path / 'warehouse.db'}")
    ids = {}
    for on, gemeente in ((dt.date(2026, 10, 5), "GM0118"), (dt.date(2026, 10, 6), "GM0119")):
        night = Night()
        key = night.pupil("100000001", gemeente=gemeente)
        night.enrolled("100000001", until="2026-09-01")
        frames = night.frames()
        tonight = night.alerts(on=on)
        record_alert_night(store, tonight, on, salt=b"test-salt")
        alerts = night_alerts(store, tonight, on, frames["pupils"])
        ids[on] = alert(alerts, key, "ABS")["alert_id"]
        _, municipal = signal_lists(alerts, frames["pupils"], frames["vo_enrolment"], frames["po_transfers"], REGION,
                                    night=on)
        assert {code for code, frame in municipal.items() if len(frame)} == {gemeente}
    assert len(set(ids.values())) == 1
