"""The facts per resident that a municipality's export shows, before any pseudonym or suppression.

Routing follows the woonplaatsbeginsel (domain.md §7 "routing to own residents"): a pupil goes to the
municipality of ``woongemeente_code`` and nowhere else; pupils who live outside the region, or whose
residence is unknown, go to no municipality at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa

from assets.gemeenten.export_settings import ExportSettings
from assets.koppeling.linkage import KEY_FIELDS, PupilIndex, index_in
from assets.signalen.alert_rules import REASONS, SchoolWeeks, age_on, as_dates, monday_of
from schemas.codelists import code_labels
from schemas.frames import select_rows
from schemas.vocabulary import (
    AANGEMELD_VO,
    GEEN_AANMELDING,
    ONDERWIJSSTATUS,
    OVERDRACHT_STATUS,
    VVA_LABELS,
    labelled,
    named,
    names_of,
)
from settings.region import Calendar

UNKNOWN = "onbekend"

# The absence window of the monitoring column: the 16-uur-in-4-weken melding (domain.md §4.3).
ABSENCE_WINDOW_WEEKS = 4

RESOLVED = "resolved"  # every other alert status is open


@dataclass(frozen=True)
class ExportInputs:
    """The validated datasets and the night's alerts (columns of schemas/datasets.py)."""

    pupils: pd.DataFrame
    vo_absence: pd.DataFrame
    youth_care_waitlist: pd.DataFrame
    po_transfers: pd.DataFrame
    mbo_outflow: pd.DataFrame
    thuiszitter_alerts: pd.DataFrame


def residents(pupils: pd.DataFrame, gemeenten: str | Sequence[str]) -> pd.DataFrame:
    """Pupils who live in ``gemeenten`` (one code or several) and inside the region (domain.md §7:
    routing to own residents)."""
    codes = [gemeenten] if isinstance(gemeenten, str) else list(gemeenten)
    outside = pupils["buiten_regio"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    own = pupils["woongemeente_code"].isin(codes).fillna(False).to_numpy(dtype=bool)
    return pupils.loc[own & ~outside]


def _member(values: pd.Series | pd.Index, keys: pd.Index) -> np.ndarray:
    """``values.isin(keys)`` for text, through Arrow hash tables (pandas 3's Arrow-string ``isin``
    re-boxed every key on every call, which dominated the exports at scale); ``index_in`` hashes
    the smaller side."""
    return index_in(_key_array(values), _key_array(keys)) >= 0


def _key_array(keys: pd.Series | pd.Index) -> pa.Array:
    return pa.array(pd.Index(keys).astype("str"), type=pa.large_string(), from_pandas=True)


@dataclass(frozen=True)
class ResidentKeys:
    """The pupil keys of the residents whose facts are made: the facts' index, and prepared once
    (``lookup``) for linking each dataset's rows to them."""

    keys: pd.Index

    @cached_property
    def lookup(self) -> PupilIndex:
        return PupilIndex(_key_array(self.keys))

    def __len__(self) -> int:
        return len(self.keys)


def _keyed(frame: pd.DataFrame, resident_keys: ResidentKeys, columns: Sequence[str],
           where: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """``columns`` of the rows of ``frame`` (those in ``where``, if given) that concern one of the
    residents, and per such row the position of its pupil among them.

    Rows are picked by their BSN, else onderwijsnummer (``assets.koppeling.linkage.PupilIndex``), before
    any other column is copied: the weekly absence has millions of rows. The facts are then built
    on these integer positions (``_spread``), not by aligning on a million pupil-key texts.
    """
    identifiers = [c for c in KEY_FIELDS if c in frame.columns]
    positions = resident_keys.lookup.positions(frame.loc[:, identifiers])
    mine = positions >= 0 if where is None else (positions >= 0) & where
    return select_rows(frame.loc[:, list(columns)], mine).reset_index(drop=True), positions[mine]


def _spread(values: pd.Series | np.ndarray, at: np.ndarray, n: int) -> pd.api.extensions.ExtensionArray:
    """One value per pupil at positions ``at`` (each at most once) as an array over all ``n`` pupils,
    missing where a pupil has none: ``reindex`` by position instead of by key text."""
    index = np.full(n, -1, dtype=np.int64)
    index[at] = np.arange(len(at))
    return pd.array(values).take(index, allow_fill=True)


def _labelled(codes: np.ndarray, labels: Sequence[str]) -> pd.api.extensions.ExtensionArray:
    """Text per row from label codes (-1: missing) by Arrow's take: strings chosen by ``np.select``
    would still have to be turned into a text column, row by row."""
    return pd.array(pa.array(list(labels), type=pa.large_string()).take(pa.array(codes, mask=codes < 0)), dtype="str")


def _last_per_pupil(rows: pd.DataFrame, at: np.ndarray, order: list[str]) -> np.ndarray:
    """Row numbers of each pupil's most recent row by ``order`` (missing values count as oldest;
    among equal rows the later one), as ``sort_values(order).drop_duplicates(pupil, keep="last")``."""
    ordered = rows.sort_values(order, na_position="first", kind="stable").index.to_numpy()
    backwards = ordered[::-1]
    _, first_backwards = np.unique(at[backwards], return_index=True)
    return backwards[first_backwards]


def _days(values: pd.Series) -> np.ndarray:
    return as_dates(values).to_numpy(dtype="datetime64[D]")


def absence_hours(vo_absence: pd.DataFrame, resident_keys: ResidentKeys, evaluation_date: dt.date,
                  calendar: Calendar) -> pd.Series:
    """Unexcused hours per pupil over the last 4 complete school weeks before ``E`` (domain.md §4.3).

    The same school weeks as the V16 alert (``assets.signalen.alert_rules.SchoolWeeks``): holidays are skipped.
    """
    weeks = SchoolWeeks.from_calendar(calendar).last_weeks(evaluation_date, ABSENCE_WINDOW_WEEKS)
    in_window = np.isin(monday_of(_days(vo_absence["week_start"])), weeks)
    rows, at = _keyed(vo_absence, resident_keys, ["uren_ongeoorloofd"], where=in_window)
    hours = rows["uren_ongeoorloofd"].to_numpy(dtype="float64", na_value=0.0)
    return pd.Series(np.bincount(at, weights=hours, minlength=len(resident_keys)), index=resident_keys.keys,
                     dtype="float64")


def waitlist_status(waitlist: pd.DataFrame, resident_keys: ResidentKeys, evaluation_date: dt.date,
                    settings: ExportSettings) -> pd.DataFrame:
    """Per pupil: waiting status, waiting time and the three norms of domain.md §5.3 (§9 item 11).

    One entry counts per pupil: the longest-waiting open entry (no start of care yet, not ended),
    else the earliest entry in care on ``E``. Waiting time runs from aanmelding to the start of care,
    or to ``E`` while still waiting. Norms: intake more than 4 weeks after aanmelding, start more
    than 10 weeks after intake, start more than 14 weeks after aanmelding; a norm whose clock has
    not started (no intake yet) is not exceeded, one that cannot be known (in care without an
    intake date) is empty.
    """
    e = np.datetime64(evaluation_date, "D")
    rows, at = _keyed(waitlist, resident_keys,
                      ["aanmelddatum", "intakedatum", "startdatum", "einddatum", "productcategorie"])
    aanmeld, intake = _days(rows["aanmelddatum"]), _days(rows["intakedatum"])
    start, einde = _days(rows["startdatum"]), _days(rows["einddatum"])
    not_ended = np.isnat(einde) | (einde > e)
    started = ~np.isnat(start) & (start <= e)
    waiting = ~started & not_ended & (aanmeld <= e)
    in_care = started & not_ended
    # Per pupil the first entry by (waiting before in care, earliest aanmelding; no date last).
    candidates = np.flatnonzero(waiting | in_care)
    never = np.iinfo(np.int64).max
    aanmeld_order = np.where(np.isnat(aanmeld), never, aanmeld.astype(np.int64))
    ordered = candidates[np.lexsort((aanmeld_order[candidates], np.where(waiting, 0, 1)[candidates],
                                     at[candidates]))]
    _, first = np.unique(at[ordered], return_index=True)
    chosen = ordered[first]

    waiting = waiting[chosen]
    aanmeld, intake = aanmeld[chosen], intake[chosen]
    until = np.where(waiting, e, start[chosen])
    intake_until = np.where(np.isnat(intake) & waiting, e, intake)

    def weeks(start: np.ndarray, end: np.ndarray) -> np.ndarray:
        return (end - start).astype("timedelta64[D]").astype(np.int64) // 7

    def over(start: np.ndarray, end: np.ndarray, norm_weeks: int) -> pd.array:
        days = (end - start).astype("timedelta64[D]")
        known = ~np.isnat(start) & ~np.isnat(end)
        return pd.array(np.where(known, days > np.timedelta64(7 * norm_weeks, "D"), False), dtype="boolean")

    norm_10 = over(intake, until, settings.start_norm_weeks)
    norm_10[np.isnat(intake) & waiting] = False
    norm_10[np.isnat(intake) & ~waiting] = pd.NA
    norm_4 = over(aanmeld, intake_until, settings.intake_norm_weeks)
    norm_4[np.isnat(intake_until)] = pd.NA
    pupils, n, keys = at[chosen], len(resident_keys), resident_keys.keys
    status = pd.Series(_spread(pd.array(np.where(waiting, "wacht", "in zorg"), dtype="str"), pupils, n), index=keys)
    return pd.DataFrame({
        "wachtlijst_status": status.fillna("geen"),
        "wachttijd_weken": _spread(pd.array(weeks(aanmeld, until), dtype="Int64"), pupils, n),
        "boven_norm_4": _spread(norm_4, pupils, n),
        "boven_norm_10": _spread(norm_10, pupils, n),
        "boven_norm_14": _spread(over(aanmeld, until, settings.total_norm_weeks), pupils, n),
        "productcategorie": _spread(rows["productcategorie"].astype("str").array[chosen], pupils, n),
    }, index=keys)


def transfer_status(po_transfers: pd.DataFrame, resident_keys: ResidentKeys, enrolled: pd.Series) -> pd.Series:
    """PO→VO overdracht per pupil: ingeschreven VO, aangemeld VO, niet aangemeld; empty without a transfer."""
    keys = resident_keys.keys
    rows, at = _keyed(po_transfers, resident_keys, ["schooljaar", "aanmelddatum", "vo_brin6"])
    latest = _last_per_pupil(rows, at, ["schooljaar", "aanmelddatum"])
    transferred = np.zeros(len(keys), dtype=bool)
    transferred[at[latest]] = True
    applied = np.zeros(len(keys), dtype=bool)
    applied[at[latest]] = (rows["vo_brin6"].notna() | rows["aanmelddatum"].notna()).to_numpy()[latest]
    status = np.select([transferred & enrolled.to_numpy(dtype=bool), transferred & applied, transferred],
                       [0, 1, 2], default=-1)
    return pd.Series(_labelled(status, OVERDRACHT_STATUS), index=keys)


def mbo_status(mbo_outflow: pd.DataFrame, resident_keys: ResidentKeys) -> pd.Series:
    """VVA status code of each VO leaver's latest record; ``geen_aanmelding`` without one (domain.md §6, §9 item 13)."""
    keys = resident_keys.keys
    rows, at = _keyed(mbo_outflow, resident_keys, ["status_datum", "aanmelddatum", "vva_status"])
    latest = _last_per_pupil(rows, at, ["status_datum", "aanmelddatum"])
    status = rows["vva_status"].astype("str").fillna(GEEN_AANMELDING).array[latest]
    return pd.Series(_spread(status, at[latest], len(keys)), index=keys, dtype="str")


def open_alerts(thuiszitter_alerts: pd.DataFrame, keys: pd.Index) -> pd.DataFrame:
    """The night's open alerts (every status except ``resolved``) of these pupils."""
    alerts = thuiszitter_alerts.loc[_member(thuiszitter_alerts["pupil_key"], keys)]
    return alerts.loc[(alerts["status"] != RESOLVED).fillna(True).to_numpy(), ["pupil_key", "reason"]]


def open_reasons(alerts: pd.DataFrame, keys: pd.Index) -> pd.Series:
    """Open alert reason codes per pupil, in the order of docs/alerts.md, joined by commas."""
    order = {reason: i for i, reason in enumerate(REASONS)}
    ranked = alerts.drop_duplicates().assign(rank=alerts["reason"].map(order).fillna(len(order)))
    joined = ranked.sort_values(["pupil_key", "rank", "reason"]).groupby("pupil_key")["reason"].agg(",".join)
    at = index_in(_key_array(joined.index), _key_array(keys))
    found = at >= 0
    return pd.Series(_spread(joined.astype("str").array[found], at[found], len(keys)), index=keys, dtype="str")


def age_band(geboortedatum: pd.Series, evaluation_date: dt.date, bands: Sequence[int]) -> pd.Series:
    """Age band on ``E`` (``age_band_labels``); ``onbekend`` without a birth date."""
    labels = age_band_labels(bands)
    age = age_on(geboortedatum, evaluation_date)
    position = np.searchsorted(np.asarray(bands), age.fillna(-1).to_numpy(dtype=np.int64), side="right")
    position[age.isna().to_numpy()] = len(labels) - 1  # onbekend
    return pd.Series(_labelled(position, labels), index=geboortedatum.index)


def age_band_labels(bands: Sequence[int]) -> list[str]:
    """``jonger dan 12``, ``12-13``, ``14-15``, ``16-17``, ``18 en ouder``, ``onbekend`` for (12, 14, 16, 18)."""
    inner = [f"{low}-{high - 1}" if high - low > 1 else str(low) for low, high in zip(bands, bands[1:])]
    return [f"jonger dan {bands[0]}", *inner, f"{bands[-1]} en ouder", UNKNOWN]


# What the facts read of a pupil besides the datasets: its key, residence, school, birth date and postcode.
RESIDENT_FIELDS = ("pupil_key", "woongemeente_code", "buiten_regio", "vo_brin6", "geboortedatum", "postcode")


def resident_facts(inputs: ExportInputs, gemeenten: str | Sequence[str], evaluation_date: dt.date,
                   calendar: Calendar, settings: ExportSettings) -> pd.DataFrame:
    """One row per resident of ``gemeenten`` (one or all of them) with everything the exports show,
    still keyed by ``pupil_key``.

    Internal: it holds the birth date's age band and the pupil key, so it never leaves the pipeline
    as it is; ``monitoring_table`` and ``aggregate_tables`` make the published tables from it. Every
    fact is per pupil, so the facts of all municipalities at once (the ``export_facts`` asset, once a
    night) are the union of each municipality's own.
    """
    people = residents(inputs.pupils, gemeenten).drop_duplicates("pupil_key")
    keys = pd.Index(people["pupil_key"].astype("str"), name="pupil_key")
    people = people.set_index(keys)
    enrolled = people["vo_brin6"].notna()
    resident_keys = ResidentKeys(keys)
    mbo = mbo_status(inputs.mbo_outflow, resident_keys)
    transfer = transfer_status(inputs.po_transfers, resident_keys, enrolled)
    onderwijsstatus = _labelled(np.select(
        [enrolled.to_numpy(), (mbo == "ingeschreven").fillna(False).to_numpy(), mbo.notna().to_numpy(),
         (transfer == AANGEMELD_VO).fillna(False).to_numpy()],
        [0, 1, 2, 3], default=4), ONDERWIJSSTATUS)
    facts = pd.DataFrame({
        "woongemeente_code": people["woongemeente_code"].astype("str"),
        "geboortejaar": as_dates(people["geboortedatum"]).dt.year.astype("Int64"),
        "pc4": people["postcode"].astype("str").str.replace(" ", "", regex=False).str[:4],
        "onderwijsstatus": pd.Series(onderwijsstatus, index=keys),
        "vo_brin6": people["vo_brin6"].astype("str"),
    }, index=keys)
    waiting = waitlist_status(inputs.youth_care_waitlist, resident_keys, evaluation_date, settings)
    signals = open_reasons(open_alerts(inputs.thuiszitter_alerts, keys), keys)
    bands = age_band(people["geboortedatum"], evaluation_date, settings.age_bands)
    facts["uren_ongeoorloofd_4w"] = absence_hours(inputs.vo_absence, resident_keys, evaluation_date, calendar)
    facts = pd.concat([facts, waiting], axis=1)
    facts["overdracht_status"] = transfer
    facts["mbo_status"] = mbo
    facts["mbo_status_omschrijving"] = labelled(mbo, VVA_LABELS)
    facts["vo_schoolnaam"] = names_of(facts["vo_brin6"])
    facts["productcategorie_omschrijving"] = named(facts["productcategorie"], code_labels("productcategorie"))
    facts["open_signalen"] = signals
    facts["leeftijdsklasse"] = bands
    return facts
