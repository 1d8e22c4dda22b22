"""Thuiszitter and outflow alert rules: which pupil needs attention on the evaluation date, and why.

The specification is ``docs/alerts.md``; the facts behind it are in ``docs/domain.md`` (§4 leerplicht
and verzuim, §5.3 waiting norms, §6 VVA, 1 April and 1 October). Every reason code is one function
below, named after the code (``rule_abs`` for ``ABS``), used nowhere else. ``evaluate_alerts`` runs them
all on one evaluation date and returns one row per (pupil, reason).

Dates are calendar dates, never clock times: the evaluation date ``E`` is run configuration, nothing
here reads the wall clock, and a timestamp that carries a time zone is read as its date in
Europe/Amsterdam, so summer time cannot move a week boundary.

Everything is vectorised over integer pupil positions (``pupils`` row numbers, found once per
dataset by ``assets.koppeling.linkage.PupilIndex``, an Arrow hash lookup): no loop runs per pupil, so
national scale stays within the night (bench/README.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from assets.koppeling.linkage import KEY_FIELDS, PupilIndex
from schemas.frames import select_rows
from schemas.vocabulary import VVA_LABELS, labelled
from settings.constants import TIMEZONE
from settings.region import AlertThresholds, Calendar

_EPOCH_MONDAY = np.datetime64("1970-01-05", "D")  # the first Monday of 1970
SWV = "SWV"
DOORSTROOMPUNT = "DOORSTROOMPUNT"  # both a category and, for its rows, the reason (docs/alerts.md)

ALERT_COLUMNS = ("pupil_key", "reason", "category", "woongemeente_code", "buiten_regio", "vo_brin6",
                 "episode_start", "weeks", "detail")

# Reason code -> what a leerplicht officer reads in the list (docs/signalen.md explains each one).
REASONS = {
    "ABS": "Absoluut verzuim: niet ingeschreven op een school",
    "LRV": "Langdurig relatief verzuim: meer dan 4 schoolweken op rij",
    "V16": "16 uur ongeoorloofd verzuim in 4 schoolweken",
    "T3M": "Langer dan 3 maanden zonder passend aanbod",
    "PO_GEEN_VO": "Overdracht PO-VO zonder inschrijving in het VO",
    "MBO_GEEN_AANMELDING": "VO verlaten zonder mbo-aanmelding voor 1 april",
    "MBO_NIET_INGESCHREVEN": "Aangemeld bij het mbo maar niet ingeschreven (1 oktober)",
    "JZ_WACHT_VERZUIM": "Wacht langer dan de norm op jeugdhulp en verzuimt",
    DOORSTROOMPUNT: "18 tot 23 jaar zonder startkwalificatie: voor het Doorstroompunt",
}

# What the rules (and the exports' absence hours) read of the weekly absence and of the enrolments,
# besides the pupil's identifiers (``assets.koppeling.linkage.KEY_FIELDS``): their steps ask the lake for these
# columns only (``dg.AssetIn(metadata=...)``), not for the names, addresses and provenance texts of
# millions of rows.
ABSENCE_FIELDS = ("week_start", "uren_ongeoorloofd")
ENROLMENT_FIELDS = ("vo_brin6", "inschrijfdatum", "uitschrijfdatum", "vrijstelling")

# A havo or vwo diploma is a startkwalificatie (domain.md §4.1); havo_vwo is at least havo.
STARTKWALIFICATIE_LEVELS = ("havo", "vwo", "havo_vwo")


# ---------------------------------------------------------------------------------------------
# Dates


def as_dates(values: pd.Series) -> pd.Series:
    """Calendar dates (midnight, no time zone). A tz-aware value counts by its date in Europe/Amsterdam."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert(TIMEZONE).dt.tz_localize(None)
    return pd.to_datetime(values).dt.normalize()


def _days(values: pd.Series) -> np.ndarray:
    return as_dates(values).to_numpy(dtype="datetime64[D]")


def _day(value: dt.date | pd.Timestamp) -> np.datetime64:
    return np.datetime64(pd.Timestamp(value).date(), "D")


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day numbers; a missing date reads as 1970-01-01 (callers mask it)."""
    days = np.where(np.isnat(days), np.datetime64("1970-01-01", "D"), days)
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    return (years.astype(np.int64) + 1970, (months - years).astype(np.int64) + 1,
            (days - months).astype(np.int64) + 1)


def _date(year: np.ndarray | int, month_day: tuple[int, int]) -> np.ndarray:
    month, day = month_day
    first = (np.asarray(year, dtype=np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[M]")
    return (first + (month - 1)).astype("datetime64[D]") + (day - 1)


def _month_day(mm_dd: str) -> tuple[int, int]:
    month, day = mm_dd.split("-")
    return int(month), int(day)


def _md(month: np.ndarray | int, day: np.ndarray | int) -> np.ndarray | int:
    return month * 100 + day


def school_year_of(days: np.ndarray, calendar: Calendar) -> np.ndarray:
    """The calendar year in which the school year containing each date began (2026 for 2026-2027)."""
    start = _md(*_month_day(calendar.school_year_start))
    year, month, day = _ymd(days)
    return year - (_md(month, day) < start)


def monday_of(days: np.ndarray) -> np.ndarray:
    """The Monday of each date's week (ISO weeks: Monday to Sunday)."""
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    return days - weekday


# ---------------------------------------------------------------------------------------------
# Age scope (docs/alerts.md "Age scope"; domain.md §4.1)


def age_on(geboortedatum: pd.Series, evaluation_date: dt.date) -> pd.Series:
    """Age in whole years on ``evaluation_date``; NA where the birth date is unknown."""
    birth = _days(geboortedatum)
    age = pd.Series(_age(birth, _day(evaluation_date)), index=geboortedatum.index, dtype="Int64")
    return age.where(~np.isnat(birth))


def _age(birth: np.ndarray, e: np.datetime64) -> np.ndarray:
    """Whole years from each birth date (days) to ``e``; meaningless where the date is missing."""
    e_year, e_month, e_day = _ymd(np.array([e]))
    year, month, day = _ymd(birth)
    return e_year[0] - year - (_md(e_month[0], e_day[0]) < _md(month, day))


def _leerplicht_end(birth: np.ndarray, calendar: Calendar) -> np.ndarray:
    # The 16th birthday falls on the birth date's month and day, so its school year is the birth
    # date's school year shifted by 16 (a 29 February birthday stays before 1 August).
    year_turning_16 = school_year_of(birth, calendar) + 16
    return _date(year_turning_16 + 1, _month_day(calendar.school_year_start)) - np.timedelta64(1, "D")


def leerplicht_end(geboortedatum: pd.Series, calendar: Calendar) -> pd.Series:
    """Last day of leerplicht: the end (31 July) of the school year in which the child turns 16.

    domain.md §4.1 (NJI definitions): leerplicht runs until the end of the school year in which the
    child turns 16. A child turning 16 in June is leerplichtig until 31 July of that year; one turning
    16 on 1 August (the first day of a school year) until 31 July a year later.
    """
    birth = _days(geboortedatum)
    end = _leerplicht_end(birth, calendar)
    return pd.Series(np.where(np.isnat(birth), np.datetime64("NaT"), end), index=geboortedatum.index,
                     dtype="datetime64[s]")


def leerplichtig(geboortedatum: pd.Series, evaluation_date: dt.date, calendar: Calendar) -> pd.Series:
    """Leerplichtig on ``evaluation_date`` (docs/alerts.md "Age scope"; domain.md §4.1).

    From the first day of the month after the 5th birthday until the end of the school year (31 July)
    in which the child turns 16 (``leerplicht_end``). NA where the birth date is unknown.
    """
    birth = _days(geboortedatum)
    is_leerplichtig = _is_leerplichtig(birth, _leerplicht_end(birth, calendar), _day(evaluation_date))
    return _boolean(is_leerplichtig, ~np.isnat(birth), geboortedatum.index)


def _is_leerplichtig(birth: np.ndarray, end: np.ndarray, e: np.datetime64) -> np.ndarray:
    first_month = birth.astype("datetime64[M]") + np.timedelta64(5 * 12 + 1, "M")
    return (e >= first_month.astype("datetime64[D]")) & (e <= end)


def kwalificatieplichtig(geboortedatum: pd.Series, startkwalificatie: pd.Series, evaluation_date: dt.date,
                         calendar: Calendar) -> pd.Series:
    """Kwalificatieplichtig on ``evaluation_date`` (docs/alerts.md "Age scope"; domain.md §4.1).

    Leerplicht has ended (``leerplicht_end``), younger than 18, and without startkwalificatie. NA where
    the birth date is unknown.
    """
    birth, e = _days(geboortedatum), _day(evaluation_date)
    is_kwalificatieplichtig = _is_kwalificatieplichtig(_leerplicht_end(birth, calendar), _age(birth, e),
                                                       _without(startkwalificatie), e)
    return _boolean(is_kwalificatieplichtig, ~np.isnat(birth), geboortedatum.index)


def _is_kwalificatieplichtig(end: np.ndarray, age: np.ndarray, without_sq: np.ndarray, e: np.datetime64) -> np.ndarray:
    return (e > end) & (age < 18) & without_sq


def doorstroompunt_age(geboortedatum: pd.Series, startkwalificatie: pd.Series, evaluation_date: dt.date) -> pd.Series:
    """18 to 22 without startkwalificatie: the Doorstroompunt's (formerly RMC) group (domain.md §4.1)."""
    birth = _days(geboortedatum)
    in_group = _is_doorstroompunt(_age(birth, _day(evaluation_date)), _without(startkwalificatie))
    return _boolean(in_group, ~np.isnat(birth), geboortedatum.index)


def _is_doorstroompunt(age: np.ndarray, without_sq: np.ndarray) -> np.ndarray:
    return (age >= 18) & (age <= 22) & without_sq


def _without(startkwalificatie: pd.Series) -> np.ndarray:
    return ~startkwalificatie.fillna(False).to_numpy(dtype=bool)


def age_scope(geboortedatum: pd.Series, startkwalificatie: pd.Series, evaluation_date: dt.date,
              calendar: Calendar) -> pd.Series:
    """Who may be alerted, and to whom (docs/alerts.md "Age scope"; domain.md §4.1).

    ``SWV`` for leer- and kwalificatieplichtigen, ``DOORSTROOMPUNT`` for 18-22 without startkwalificatie,
    NA for everyone else. An unknown birth date counts as ``SWV``: missing a thuiszitter is the worse
    error, and the coordinator can see the date is missing. The birth dates' ages and leerplicht ends
    are worked out once for the three rules (a million pupils a night).
    """
    birth, e = _days(geboortedatum), _day(evaluation_date)
    known = ~np.isnat(birth)
    end, age, without_sq = _leerplicht_end(birth, calendar), _age(birth, e), _without(startkwalificatie)
    swv = ~known | _is_leerplichtig(birth, end, e) | _is_kwalificatieplichtig(end, age, without_sq, e)
    dsp = known & _is_doorstroompunt(age, without_sq)
    scope = pd.Series(pd.NA, index=geboortedatum.index, dtype="str")
    return scope.mask(dsp, DOORSTROOMPUNT).mask(swv, SWV)


def has_startkwalificatie(mbo_outflow: pd.DataFrame) -> pd.Series:
    """Per outflow row: left VO with a havo or vwo diploma (domain.md §4.1; docs/alerts.md "Age scope").

    An mbo diploma at level 2 or higher also counts, but no delivered dataset carries mbo diplomas.
    """
    diploma = mbo_outflow["vo_diploma"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return pd.Series(diploma & mbo_outflow["vo_niveau"].isin(STARTKWALIFICATIE_LEVELS).to_numpy(),
                     index=mbo_outflow.index)


def _boolean(values: np.ndarray, known: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.array(values, dtype="boolean"), index=index).where(known)


# ---------------------------------------------------------------------------------------------
# The school-week calendar (docs/alerts.md: a school week is a Mon-Fri week outside the holidays)


@dataclass(frozen=True)
class SchoolWeeks:
    """School weeks of the region: Monday-Friday weeks that do not fall inside a school holiday.

    A week falls inside a holiday when all five weekdays are holiday days; such a week neither
    counts nor breaks a run of absence weeks (domain.md §4.3: "holidays don't count"). Weeks are
    named by their Monday and numbered so that consecutive school weeks differ by exactly one.
    """

    holiday_mondays: np.ndarray  # datetime64[D], sorted

    @classmethod
    def from_calendar(cls, calendar: Calendar) -> SchoolWeeks:
        days = [np.arange(_day(h.start), _day(h.end) + 1, dtype="datetime64[D]") for h in calendar.holidays]
        holiday_days = np.concatenate([np.array([], dtype="datetime64[D]"), *days])
        mondays = np.unique(monday_of(holiday_days))
        inside = np.all([np.isin(mondays + k, holiday_days) for k in range(5)], axis=0) if len(mondays) else []
        return cls(mondays[np.asarray(inside, dtype=bool)])

    def is_school_week(self, mondays: np.ndarray) -> np.ndarray:
        return ~np.isin(mondays, self.holiday_mondays)

    def number(self, mondays: np.ndarray) -> np.ndarray:
        """Week number that skips holiday weeks; a holiday week gets the number of the next school week."""
        weeks = (mondays - _EPOCH_MONDAY).astype(np.int64) // 7
        return weeks - np.searchsorted(self.holiday_mondays, mondays, side="left")

    def last_complete(self, evaluation_date: dt.date) -> np.datetime64:
        """Monday of the last school week whose Friday lies before ``evaluation_date``."""
        e = _day(evaluation_date)
        monday = monday_of(np.array([e]))[0]
        if monday + 4 >= e:
            monday -= 7
        while not self.is_school_week(np.array([monday]))[0]:
            monday -= 7
        return monday

    def last_weeks(self, evaluation_date: dt.date, count: int) -> np.ndarray:
        """Mondays of the last ``count`` complete school weeks before ``evaluation_date``, oldest first."""
        weeks = [self.last_complete(evaluation_date)]
        while len(weeks) < count:
            monday = weeks[-1] - 7
            while not self.is_school_week(np.array([monday]))[0]:
                monday -= 7
            weeks.append(monday)
        return np.array(weeks[::-1], dtype="datetime64[D]")

    def weeks_since(self, starts: np.ndarray, evaluation_date: dt.date) -> np.ndarray:
        """Complete school weeks before ``evaluation_date`` with a school day on or after each start."""
        # The first week that still has a weekday on or after the start: a Saturday or Sunday start
        # moves on to the next Monday, a Monday-Friday start keeps its own week.
        first = monday_of(starts + 2)
        last = self.last_complete(evaluation_date)
        counted = self.number(np.array([last]))[0] - self.number(first) + 1
        return np.clip(counted, 0, None)


# ---------------------------------------------------------------------------------------------
# Facts per pupil, computed once per night


@dataclass(frozen=True)
class AlertFacts:
    """Everything the rules need, linked to pupil positions (rows of ``pupils``).

    ``pupils`` has one row per linked pupil (conflicting identities left out) with ``scope``
    (``age_scope``), ``active`` (active in VO on ``E``), ``school`` (the active enrolment's school,
    else the last one) and the flags ``vrijstelling``, ``in_outflow`` and ``startkwalificatie``.
    ``weekly_absence`` holds unexcused hours per pupil and complete school week up to ``E`` (weeks
    with hours only); the other frames are the datasets with a ``pupil`` column.
    """

    evaluation_date: pd.Timestamp
    calendar: Calendar
    thresholds: AlertThresholds
    school_weeks: SchoolWeeks
    pupils: pd.DataFrame
    enrolment: pd.DataFrame
    weekly_absence: pd.DataFrame
    po_transfers: pd.DataFrame
    mbo_outflow: pd.DataFrame
    youth_care_waitlist: pd.DataFrame
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def e(self) -> np.datetime64:
        return _day(self.evaluation_date)

    def at(self, column: str, pupil: pd.Series | np.ndarray) -> np.ndarray:
        """The per-pupil ``column`` for each pupil position (NumPy, converted once per column)."""
        if column not in self._arrays:
            self._arrays[column] = self.pupils[column].to_numpy()
        return self._arrays[column][np.asarray(pupil, dtype=np.int64)]

    def window_hours(self) -> pd.DataFrame:
        """Unexcused hours per pupil over the last ``window_weeks`` complete school weeks before ``E``,
        and the Monday of the first of those weeks with any."""
        weeks = self.school_weeks.last_weeks(self.evaluation_date, self.thresholds.window_weeks)
        mondays = self.weekly_absence["monday"].to_numpy(dtype="datetime64[D]")
        rows = self.weekly_absence.loc[np.isin(mondays, weeks)]
        return rows.groupby("pupil").agg(hours=("hours", "sum"), first_week=("monday", "min"))


def _linked(frame: pd.DataFrame, pupils: PupilIndex, columns: list[str]) -> pd.DataFrame:
    """The frame's ``columns`` plus ``pupil`` (position among the pupils); rows of unknown pupils dropped."""
    position = pupils.positions(frame)
    out = select_rows(frame.loc[:, columns], position >= 0)
    return out.assign(pupil=position[position >= 0])


def alert_facts(*, vo_enrolment: pd.DataFrame, vo_absence: pd.DataFrame, po_transfers: pd.DataFrame,
                mbo_outflow: pd.DataFrame, youth_care_waitlist: pd.DataFrame, pupils: pd.DataFrame,
                calendar: Calendar, evaluation_date: dt.date, thresholds: AlertThresholds | None = None,
                pupil_conflicts: pd.DataFrame | None = None) -> AlertFacts:
    """Link every dataset to the pupils once and derive the per-pupil facts of ``evaluation_date``."""
    thresholds = thresholds or AlertThresholds()
    e = _day(evaluation_date)
    school_weeks = SchoolWeeks.from_calendar(calendar)

    conflicts = pupil_conflicts["pupil_key"] if pupil_conflicts is not None else pd.Series([], dtype="str")
    people = pupils.loc[pupils["pupil_key"].notna() & ~pupils["pupil_key"].isin(conflicts),
                        ["pupil_key", "geboortedatum", "woongemeente_code", "buiten_regio"]]
    people = people.drop_duplicates("pupil_key", keep="last").reset_index(drop=True)
    index = PupilIndex(pa.Array.from_pandas(people["pupil_key"]))
    n = len(people)
    weekly_absence = _weekly_absence(vo_absence, index, school_weeks, evaluation_date)

    enrolment = _linked(vo_enrolment, index, list(ENROLMENT_FIELDS))
    enrolment = enrolment.assign(inschrijfdatum=as_dates(enrolment["inschrijfdatum"]),
                                 uitschrijfdatum=as_dates(enrolment["uitschrijfdatum"]))
    started = enrolment["inschrijfdatum"].to_numpy(dtype="datetime64[D]") <= e
    ends = enrolment["uitschrijfdatum"].to_numpy(dtype="datetime64[D]")
    enrolment = enrolment.assign(active=started & (np.isnat(ends) | (ends > e)))

    active = np.zeros(n, dtype=bool)
    active[enrolment.loc[enrolment["active"], "pupil"].to_numpy()] = True
    # The school to show: the active enrolment that began last, else the enrolment that began last.
    latest = enrolment.sort_values(["active", "inschrijfdatum"], kind="stable")
    latest = latest.drop_duplicates("pupil", keep="last")
    school = pd.Series(pd.NA, index=range(n), dtype="str")
    school.iloc[latest["pupil"].to_numpy()] = latest["vo_brin6"].to_numpy()
    vrijstelling = np.zeros(n, dtype=bool)
    exempt = enrolment["vrijstelling"].fillna("").str.strip() != ""
    vrijstelling[enrolment.loc[exempt, "pupil"].to_numpy()] = True

    outflow = _linked(mbo_outflow, index, ["vo_brin6", "vo_niveau", "vo_diploma", "uitstroomdatum", "aanmelddatum",
                                          "vva_status", "status_datum"])
    outflow = outflow.assign(startkwalificatie=has_startkwalificatie(outflow),
                             uitstroomdatum=as_dates(outflow["uitstroomdatum"]),
                             aanmelddatum=as_dates(outflow["aanmelddatum"]),
                             status_datum=as_dates(outflow["status_datum"]))
    in_outflow = np.zeros(n, dtype=bool)
    in_outflow[outflow["pupil"].to_numpy()] = True
    startkwalificatie = np.zeros(n, dtype=bool)
    startkwalificatie[outflow.loc[outflow["startkwalificatie"], "pupil"].to_numpy()] = True

    people = people.assign(
        active=active, school=school, vrijstelling=vrijstelling, in_outflow=in_outflow,
        startkwalificatie=startkwalificatie,
        scope=age_scope(people["geboortedatum"], pd.Series(startkwalificatie), evaluation_date, calendar),
    )

    transfers = _linked(po_transfers, index, ["po_brin6", "vo_brin6", "schooljaar", "aanmelddatum"])
    waitlist = _linked(youth_care_waitlist, index, ["aanmelddatum", "startdatum", "einddatum"])
    return AlertFacts(
        evaluation_date=pd.Timestamp(evaluation_date),
        calendar=calendar,
        thresholds=thresholds,
        school_weeks=school_weeks,
        pupils=people,
        enrolment=enrolment,
        weekly_absence=weekly_absence,
        po_transfers=transfers,
        mbo_outflow=outflow,
        youth_care_waitlist=waitlist,
    )


def _weekly_absence(vo_absence: pd.DataFrame, pupils: PupilIndex, school_weeks: SchoolWeeks,
                    evaluation_date: dt.date) -> pd.DataFrame:
    """Unexcused hours per pupil and complete school week before ``E``; holiday weeks dropped.

    Columns ``pupil``, ``monday``, ``week`` (``SchoolWeeks.number``), ``hours`` and ``scheduled``
    (the week's scheduled lesson hours, ``uren_rooster``; NaN unless every row of that week has
    them), sorted by pupil and week; only weeks with unexcused hours.
    """
    hours = vo_absence["uren_ongeoorloofd"].to_numpy(dtype=float, na_value=0.0)
    scheduled = (vo_absence["uren_rooster"].to_numpy(dtype=float, na_value=np.nan)
                 if "uren_rooster" in vo_absence.columns else np.full(len(hours), np.nan))
    monday = monday_of(_days(vo_absence["week_start"]))
    # A row without absence still counts for its scheduled hours (a pupil at two schools in one week).
    keep = (((hours > 0) | ~np.isnan(scheduled)) & (monday >= _EPOCH_MONDAY)
            & (monday <= school_weeks.last_complete(evaluation_date)))
    keep[keep] = school_weeks.is_school_week(monday[keep])
    position = pupils.positions(vo_absence.loc[keep, [c for c in KEY_FIELDS if c in vo_absence.columns]])
    known = position >= 0
    position, monday = position[known], monday[keep][known]
    hours, scheduled = hours[keep][known], scheduled[keep][known]
    # One integer per (pupil, week) so the sum is a sort and a bincount. Two schools (or two rows)
    # in one week add up: the pupil missed both.
    week_of_epoch = (monday - _EPOCH_MONDAY).astype(np.int64) // 7  # < 2**16 until the year 3226
    combined, inverse = np.unique((position << 16) | week_of_epoch, return_inverse=True)
    mondays = _EPOCH_MONDAY + 7 * (combined & 0xFFFF)
    unscheduled = np.bincount(inverse, weights=np.isnan(scheduled), minlength=len(combined)) > 0
    weekly = pd.DataFrame({
        "pupil": combined >> 16,
        "monday": mondays,
        "week": school_weeks.number(mondays),
        "hours": np.bincount(inverse, weights=hours, minlength=len(combined)),
        "scheduled": np.where(unscheduled, np.nan,
                              np.bincount(inverse, weights=np.nan_to_num(scheduled), minlength=len(combined))),
    })
    return weekly.loc[weekly["hours"].to_numpy() > 0].reset_index(drop=True)


def absent_whole_week(weekly_absence: pd.DataFrame, thresholds: AlertThresholds) -> np.ndarray:
    """An LRV week: the pupil missed every scheduled lesson of it without permission (domain.md §4.2, §4.3).

    Where the school delivers the week's scheduled hours (``uren_rooster``) the unexcused hours must
    reach them; where it does not, ``lrv_week_hours`` (20) unexcused hours stand for a whole week
    (docs/alerts.md says why).
    """
    hours, scheduled = weekly_absence["hours"].to_numpy(), weekly_absence["scheduled"].to_numpy(dtype=float)
    return hours >= np.where(np.isnan(scheduled), thresholds.lrv_week_hours, scheduled)


# ---------------------------------------------------------------------------------------------
# The rules. Each returns "hits": pupil, episode_start, weeks, vo_brin6, detail.


def _hits(pupil, episode_start, weeks, vo_brin6, detail) -> pd.DataFrame:
    return pd.DataFrame({
        "pupil": np.asarray(pupil, dtype=np.int64),
        "episode_start": pd.Series(np.asarray(episode_start, dtype="datetime64[D]")).astype("datetime64[s]").to_numpy(),
        "weeks": pd.array(weeks, dtype="Int64"),
        "vo_brin6": pd.array(np.asarray(vo_brin6, dtype=object), dtype="str"),
        "detail": pd.array(np.asarray(detail, dtype=object), dtype="str"),
    })


def _fmt(days: np.ndarray | pd.Series) -> pd.Series:
    return pd.Series(np.asarray(days, dtype="datetime64[D]")).dt.strftime("%d-%m-%Y").astype("str")


def _text(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object)).astype("str")


def _hours(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float)).round(1).map("{:g}".format).astype("str")


RuleHits = pd.DataFrame


def rule_abs(facts: AlertFacts) -> RuleHits:
    """ABS, absoluut verzuim (docs/alerts.md "Reason codes"; domain.md §4.2).

    Leer- or kwalificatieplichtig on ``E``, had a VO enrolment that ended (``uitschrijfdatum <= E``),
    is not active in VO on ``E``, has no vrijstelling, and is not in the VO->MBO outflow (leavers are
    covered by the MBO rules). The episode starts on the last ``uitschrijfdatum``.
    """
    ends = facts.enrolment["uitschrijfdatum"].to_numpy(dtype="datetime64[D]")
    ended = facts.enrolment.loc[~np.isnat(ends) & (ends <= facts.e)]
    last = ended.sort_values("uitschrijfdatum", kind="stable").drop_duplicates("pupil", keep="last")
    pupil = last["pupil"].to_numpy()
    fires = (~facts.at("active", pupil) & ~facts.at("vrijstelling", pupil) & ~facts.at("in_outflow", pupil)
             & (facts.at("scope", pupil) == SWV))
    last = last.loc[fires]
    start = last["uitschrijfdatum"].to_numpy(dtype="datetime64[D]")
    school = _text(last["vo_brin6"]).fillna("onbekende school")
    return _hits(last["pupil"], start, facts.school_weeks.weeks_since(start, facts.evaluation_date),
                 last["vo_brin6"], "uitgeschreven bij " + school + " op " + _fmt(start)
                 + "; niet ingeschreven, geen vrijstelling")


def rule_lrv(facts: AlertFacts) -> RuleHits:
    """LRV, langdurig relatief verzuim (docs/alerts.md "Reason codes"; domain.md §4.2, §4.3).

    Active in VO on ``E``, and the run of consecutive school weeks that ends with the last complete
    school week before ``E``, each a week absent without permission (``absent_whole_week``: every
    scheduled hour, or 20 hours where the schedule is not delivered), is longer than 4 weeks. Holiday
    weeks neither count nor break the run. The episode starts on the Monday of the run's first week.
    """
    th = facts.thresholds
    last = facts.school_weeks.number(np.array([facts.school_weeks.last_complete(facts.evaluation_date)]))[0]
    heavy = facts.weekly_absence.loc[absent_whole_week(facts.weekly_absence, th)]
    heavy = heavy.sort_values(["pupil", "week"], ascending=[True, False], kind="stable")
    # Walking back from the last week, the k-th heavy week belongs to the run when it is exactly k
    # school weeks back: the first gap ends the run.
    in_run = (last - heavy["week"]) == heavy.groupby("pupil").cumcount()
    heavy = heavy.assign(assumed=heavy["scheduled"].isna())
    runs = heavy.loc[in_run].groupby("pupil").agg(weeks=("week", "size"), start=("monday", "min"),
                                                  hours=("hours", "sum"), assumed=("assumed", "any"))
    runs = runs.loc[(runs["weeks"] > th.lrv_more_than_weeks).to_numpy() & facts.at("active", runs.index)]
    pupil = runs.index.to_numpy()
    assumed = f" schoolweken op rij ten minste {th.lrv_week_hours:g} uur ongeoorloofd verzuim per week"
    per_week = pd.Series(np.where(runs["assumed"].to_numpy(dtype=bool), assumed,
                                  " schoolweken op rij alle geroosterde lesuren ongeoorloofd verzuimd"), dtype="str")
    return _hits(pupil, runs["start"], runs["weeks"], facts.at("school", pupil),
                 _text(runs["weeks"]) + per_week + ", sinds " + _fmt(runs["start"]))


def rule_v16(facts: AlertFacts, lrv: RuleHits) -> RuleHits:
    """V16, 16 uur in 4 weken: the early warning (docs/alerts.md "Reason codes"; domain.md §4.3).

    Active in VO, at least 16 unexcused hours over the last 4 complete school weeks before ``E``
    (holiday weeks skipped, not counted as empty weeks), and LRV does not fire: the higher rung
    replaces it. The episode starts on the first of those weeks with unexcused hours.
    """
    th = facts.thresholds
    window = facts.window_hours()
    window = window.loc[(window["hours"] >= th.v16_hours).to_numpy() & facts.at("active", window.index)
                        & ~window.index.isin(lrv["pupil"])]
    pupil = window.index.to_numpy()
    return _hits(pupil, window["first_week"], pd.array([pd.NA] * len(window), dtype="Int64"),
                 facts.at("school", pupil), _hours(window["hours"]) + " uur ongeoorloofd verzuim in de laatste "
                 + f"{th.window_weeks} schoolweken")


def rule_t3m(facts: AlertFacts, abs_hits: RuleHits, lrv: RuleHits) -> RuleHits:
    """T3M, more than 3 months without a suitable place (docs/alerts.md "Reason codes"; domain.md §4.2).

    The Thuiszitterspact escalation: ABS fires and the ended enrolment's ``uitschrijfdatum`` is more
    than 3 calendar months before ``E``, or LRV fires and its run began more than 3 calendar months
    before ``E``. Fires in addition to ABS or LRV, with the same episode start.
    """
    months = facts.thresholds.t3m_more_than_months
    limit = _day(facts.evaluation_date - pd.DateOffset(months=months))
    parts = []
    for hits, what in ((abs_hits, "niet ingeschreven"), (lrv, "langdurig verzuim")):
        late = hits.loc[hits["episode_start"].to_numpy(dtype="datetime64[D]") < limit]
        parts.append(_hits(late["pupil"], late["episode_start"], late["weeks"], late["vo_brin6"],
                           f"meer dan {months} maanden zonder passend aanbod ({what} sinds "
                           + _fmt(late["episode_start"]) + ")"))
    return pd.concat(parts, ignore_index=True)


def rule_po_geen_vo(facts: AlertFacts) -> RuleHits:
    """PO_GEEN_VO, PO->VO transfer without a VO place (docs/alerts.md "Reason codes"; domain.md §2.3).

    A PO transfer for a school year that started on or before ``E`` (``school_year_start``), and the
    pupil is not active in VO on ``E``. The episode starts on the first day of that school year.
    """
    po = facts.po_transfers
    first_year = pd.to_numeric(po["schooljaar"].str.slice(0, 4), errors="coerce")
    year_known = first_year.notna().to_numpy()
    po, first_year = po.loc[year_known], first_year.loc[year_known].to_numpy(dtype=np.int64)
    starts = _date(first_year, _month_day(facts.calendar.school_year_start))
    fires = (starts <= facts.e) & ~facts.at("active", po["pupil"])
    po = po.assign(start=starts).loc[fires]
    po = po.sort_values("start", kind="stable").drop_duplicates("pupil", keep="last")
    start = po["start"].to_numpy(dtype="datetime64[D]")
    aangemeld = ("aangemeld bij " + _text(po["vo_brin6"])).fillna("niet aangemeld bij een VO-school")
    return _hits(po["pupil"], start, facts.school_weeks.weeks_since(start, facts.evaluation_date), po["vo_brin6"],
                 "overdracht voor schooljaar " + _text(po["schooljaar"]) + " van " + _text(po["po_brin6"]).fillna("?")
                 + ", " + aangemeld + "; geen inschrijving in het VO")


def _leavers(facts: AlertFacts) -> pd.DataFrame:
    """One row per VO leaver in scope of the MBO rules, with the leaving year's deadline and count date.

    In scope: left (``uitstroomdatum``) in the school year before ``E``'s, or in ``E``'s own school year
    (exam pupils: their 1 April falls inside it); no date means expected to leave this school year.
    The leaving year's 1 April and 1 October are those of the calendar year in which the leaving
    school year ends (domain.md §6).
    """
    flow = facts.mbo_outflow
    calendar = facts.calendar
    current = school_year_of(np.array([facts.e]), calendar)[0]
    left = flow["uitstroomdatum"].to_numpy(dtype="datetime64[D]")
    leaving_year = np.where(np.isnat(left), current, school_year_of(left, calendar))
    deadline = _date(leaving_year + 1, _month_day(calendar.mbo_application_deadline))
    applied = flow["aanmelddatum"].to_numpy(dtype="datetime64[D]")
    flow = flow.assign(
        leaving_year=leaving_year,
        deadline=deadline,
        count_date=_date(leaving_year + 1, _month_day(calendar.vsv_count_date)),
        applied_in_time=~np.isnat(applied) & (applied <= deadline),
        ingeschreven=flow["vva_status"].eq("ingeschreven").fillna(False).to_numpy(dtype=bool),
    )
    in_scope = (flow["leaving_year"] >= current - 1) & (flow["leaving_year"] <= current)
    flow = flow.loc[in_scope.to_numpy() & ~facts.at("startkwalificatie", flow["pupil"])]
    # Several applications per leaver: the leaving facts come from the latest, the flags from any.
    flow = flow.sort_values(["uitstroomdatum", "status_datum"], kind="stable", na_position="first")
    per_pupil = flow.groupby("pupil").agg(
        applied_in_time=("applied_in_time", "any"), ingeschreven=("ingeschreven", "any"))
    latest = flow.drop_duplicates("pupil", keep="last").set_index("pupil")
    return latest.drop(columns=["applied_in_time", "ingeschreven"]).join(per_pupil)


def rule_mbo_geen_aanmelding(facts: AlertFacts) -> RuleHits:
    """MBO_GEEN_AANMELDING, no MBO application by 1 April (docs/alerts.md "Reason codes"; domain.md §6).

    A kwalificatieplichtig VO leaver (left in the school year before ``E``) without an MBO application
    on or before 1 April (``mbo_application_deadline``) of the leaving year, once ``E`` is after that
    date. On-time applicants have toelatingsrecht; a late application does not clear the signal. A
    leaver of 18 or older without startkwalificatie is reported as DOORSTROOMPUNT (``age_scope``).
    """
    leavers = _leavers(facts)
    due = leavers["deadline"].to_numpy(dtype="datetime64[D]") < facts.e
    leavers = leavers.loc[due & ~leavers["applied_in_time"].to_numpy()]
    deadline = leavers["deadline"].to_numpy(dtype="datetime64[D]")
    left = ("VO verlaten op " + _fmt(leavers["uitstroomdatum"])).fillna("VO-verlater")
    return _hits(leavers.index, deadline, pd.array([pd.NA] * len(leavers), dtype="Int64"), leavers["vo_brin6"],
                 left + "; geen mbo-aanmelding op of voor " + _fmt(deadline))


def rule_mbo_niet_ingeschreven(facts: AlertFacts) -> RuleHits:
    """MBO_NIET_INGESCHREVEN, applied but not enrolled by 1 October (docs/alerts.md "Reason codes"; domain.md §6).

    A VO leaver without startkwalificatie who applied in time (so not MBO_GEEN_AANMELDING) but has no
    ``vva_status`` ``ingeschreven`` once ``E`` is on or after 1 October (``vsv_count_date``) of the
    leaving year: a potential vsv'er. 18+ is reported as DOORSTROOMPUNT (``age_scope``).
    """
    leavers = _leavers(facts)
    due = leavers["count_date"].to_numpy(dtype="datetime64[D]") <= facts.e
    leavers = leavers.loc[due & leavers["applied_in_time"].to_numpy() & ~leavers["ingeschreven"].to_numpy()]
    count_date = leavers["count_date"].to_numpy(dtype="datetime64[D]")
    status = labelled(_text(leavers["vva_status"]), VVA_LABELS).fillna("onbekend")
    return _hits(leavers.index, count_date, pd.array([pd.NA] * len(leavers), dtype="Int64"), leavers["vo_brin6"],
                 "aangemeld bij het mbo, status '" + status + "'; niet ingeschreven op " + _fmt(count_date))


def rule_jz_wacht_verzuim(facts: AlertFacts) -> RuleHits:
    """JZ_WACHT_VERZUIM, waiting for youth care beyond the norm while absent (docs/alerts.md; domain.md §5.3, §4.3).

    An open waitlist entry (no ``startdatum``, no ``einddatum``) waiting longer than 14 weeks
    (``E - aanmelddatum``; the total norm aanmelding to start), for a pupil active in VO with at least
    8 unexcused hours over the last 4 complete school weeks before ``E``. The episode starts on the
    earliest open ``aanmelddatum``. Neither product nor provider is carried: the signal is the wait.
    """
    th = facts.thresholds
    wait = facts.youth_care_waitlist
    registered = _days(wait["aanmelddatum"])
    open_entry = wait["startdatum"].isna().to_numpy() & wait["einddatum"].isna().to_numpy()
    waited = (facts.e - registered).astype(np.int64)
    wait = wait.assign(registered=registered).loc[
        open_entry & ~np.isnat(registered) & (waited > 7 * th.jz_wait_more_than_weeks)]
    first = wait.groupby("pupil")["registered"].min()
    hours = facts.window_hours()["hours"].reindex(first.index, fill_value=0.0)
    fires = (hours >= th.jz_absence_hours).to_numpy() & facts.at("active", first.index)
    first, hours = first.loc[fires], hours.loc[fires]
    start = first.to_numpy(dtype="datetime64[D]")
    weeks = (facts.e - start).astype(np.int64) // 7
    pupil = first.index.to_numpy()
    return _hits(pupil, start, weeks, facts.at("school", pupil),
                 "wacht " + _text(weeks) + " weken op jeugdhulp (aangemeld " + _fmt(start) + ", norm "
                 + f"{th.jz_wait_more_than_weeks} weken); " + _hours(hours)
                 + f" uur ongeoorloofd verzuim in de laatste {th.window_weeks} schoolweken")


# ---------------------------------------------------------------------------------------------
# All rules on one night


def _route(hits: RuleHits, reason: str, facts: AlertFacts) -> pd.DataFrame:
    """Attach pupil, residence and category; drop pupils outside the age scope."""
    pupil = hits["pupil"].to_numpy()
    category = facts.at("scope", pupil)
    keep = pd.notna(category)
    people = facts.pupils.iloc[pupil[keep]]
    hits = hits.loc[keep]
    return pd.DataFrame({
        "pupil_key": people["pupil_key"].to_numpy(),
        "reason": reason,
        "category": category[keep],
        "woongemeente_code": people["woongemeente_code"].to_numpy(),
        "buiten_regio": people["buiten_regio"].to_numpy(),
        "vo_brin6": hits["vo_brin6"].to_numpy(),
        "episode_start": hits["episode_start"].to_numpy(),
        "weeks": hits["weeks"].array,
        "detail": hits["detail"].to_numpy(),
    })


def empty_alerts() -> pd.DataFrame:
    return pd.DataFrame({
        "pupil_key": pd.Series(dtype="str"), "reason": pd.Series(dtype="str"), "category": pd.Series(dtype="str"),
        "woongemeente_code": pd.Series(dtype="str"), "buiten_regio": pd.Series(dtype="boolean"),
        "vo_brin6": pd.Series(dtype="str"), "episode_start": pd.Series(dtype="datetime64[s]"),
        "weeks": pd.Series(dtype="Int64"), "detail": pd.Series(dtype="str"),
    })


def doorstroompunt(alerts: pd.DataFrame) -> pd.DataFrame:
    """One DOORSTROOMPUNT row per young person routed there (docs/alerts.md "Age scope"; domain.md §4.1).

    18-22 without startkwalificatie are reported as DOORSTROOMPUNT instead of under an SWV reason
    code: the reason becomes DOORSTROOMPUNT and the rules that fired are named in the detail
    ("MBO_GEEN_AANMELDING: ..."), with the earliest episode start.
    """
    routed = alerts["category"].eq(DOORSTROOMPUNT).to_numpy()
    if not routed.any():
        return alerts
    explained = alerts.loc[routed].assign(detail=alerts.loc[routed, "reason"] + ": " + alerts.loc[routed, "detail"])
    per_person = explained.groupby("pupil_key", sort=False).agg(
        woongemeente_code=("woongemeente_code", "first"), buiten_regio=("buiten_regio", "first"),
        vo_brin6=("vo_brin6", "first"), episode_start=("episode_start", "min"), weeks=("weeks", "max"),
        detail=("detail", " | ".join),
    ).reset_index().assign(reason=DOORSTROOMPUNT, category=DOORSTROOMPUNT)
    return pd.concat([alerts.loc[~routed], per_person.loc[:, list(ALERT_COLUMNS)]], ignore_index=True).astype(
        empty_alerts().dtypes.to_dict())


def run_rules(facts: AlertFacts) -> pd.DataFrame:
    """Every rule on ``facts``; one row per (pupil_key, reason), ordered by reason and pupil."""
    abs_hits = rule_abs(facts)
    lrv = rule_lrv(facts)
    hits: dict[str, RuleHits] = {
        "ABS": abs_hits,
        "LRV": lrv,
        "V16": rule_v16(facts, lrv),
        "T3M": rule_t3m(facts, abs_hits, lrv),
        "PO_GEEN_VO": rule_po_geen_vo(facts),
        "MBO_GEEN_AANMELDING": rule_mbo_geen_aanmelding(facts),
        "MBO_NIET_INGESCHREVEN": rule_mbo_niet_ingeschreven(facts),
        "JZ_WACHT_VERZUIM": rule_jz_wacht_verzuim(facts),
    }
    frames = [empty_alerts(), *(_route(h, reason, facts) for reason, h in hits.items())]
    alerts = doorstroompunt(pd.concat(frames, ignore_index=True).astype(empty_alerts().dtypes.to_dict()))
    order = pd.Categorical(alerts["reason"], categories=list(REASONS), ordered=True)
    return (alerts.assign(_order=order).sort_values(["_order", "pupil_key"], kind="stable")
            .drop(columns="_order").reset_index(drop=True))


def evaluate_alerts(*, vo_enrolment: pd.DataFrame, vo_absence: pd.DataFrame, po_transfers: pd.DataFrame,
                    mbo_outflow: pd.DataFrame, youth_care_waitlist: pd.DataFrame, pupils: pd.DataFrame,
                    calendar: Calendar, evaluation_date: dt.date, thresholds: AlertThresholds | None = None,
                    pupil_conflicts: pd.DataFrame | None = None) -> pd.DataFrame:
    """The alerts of one night (docs/alerts.md): one row per (pupil_key, reason).

    Columns ``ALERT_COLUMNS``: ``category`` is ``SWV`` or ``DOORSTROOMPUNT`` (18-22 without
    startkwalificatie, domain.md §4.1), ``woongemeente_code``/``buiten_regio`` the pupil's current
    residence, ``vo_brin6`` the last known school, ``episode_start`` the date the situation began,
    ``weeks`` a count where meaningful, ``detail`` a short Dutch text without diagnoses. Pupils in
    ``pupil_conflicts`` are left out: their identity is not certain enough to act on.
    """
    facts = alert_facts(vo_enrolment=vo_enrolment, vo_absence=vo_absence, po_transfers=po_transfers,
                        mbo_outflow=mbo_outflow, youth_care_waitlist=youth_care_waitlist, pupils=pupils,
                        calendar=calendar, evaluation_date=evaluation_date, thresholds=thresholds,
                        pupil_conflicts=pupil_conflicts)
    return run_rules(facts)

