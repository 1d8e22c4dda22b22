"""Exports to the municipalities: their own residents only, pseudonymised or aggregated and suppressed.

What a municipality receives, and why it may (``docs/exports.md``; docs/domain.md §7, §9 items 11,
14 and 15):

- **monitoring**: one row per pupil who lives in the municipality, identified only by a keyed
  pseudonym (HMAC-SHA256 with the municipality's own key), with birth *year*, PC4, school, absence,
  youth-care waiting status and norms, transfer and MBO status and open alert reasons. Record-level
  data go out only under the convenant (grondslag in the manifest), never with BSN, onderwijsnummer,
  name, full postcode or birth date.
- **aggregates**: cross-tables with row and column totals, counts 1-5 shown as ``"<5"`` and
  secondary suppression so no hidden cell can be worked out from the totals (domain.md §7).
- **data dictionary**: every column of every table with its type, meaning and source dataset.
- **legenda.txt**: a short Dutch legend for the reader who opens the folder: the suppression
  symbols, the pseudonym, the decimal comma and what each column holds (``legend_text``).

Codes go out with their Dutch labels beside them (school names, iJw product categories, VVA
statuses), in the one vocabulary of ``schemas.vocabulary``.

Routing follows the woonplaatsbeginsel (domain.md §7 "routing to own residents"): a pupil goes to the
municipality of ``woongemeente_code`` and nowhere else; pupils who live outside the region, or whose
residence is unknown, go to no municipality at all.

Everything here is pure: frames in, frames and bytes out. Writing, logging and uploading happen in
``assets.gemeenten.export_assets``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from assets.signalen.alert_rules import REASONS, SchoolWeeks, age_on, as_dates, monday_of
from assets.koppeling.linkage import KEY_FIELDS, PupilIndex, index_in
from connectors.outbox import neutralise, parquet_bytes, table_files
from schemas.codelists import code_labels
from schemas.frames import select_rows
from schemas.vocabulary import (
    AANGEMELD_VO,
    GEEN_AANMELDING,
    ONDERWIJSSTATUS,
    OVERDRACHT_STATUS,
    VVA_LABELS,
    WACHTLIJST_STATUS,
    labelled,
    named,
    names_of,
)
from settings.region import Calendar

SCHEMA_VERSION = "1.0"

# Legal basis per exported dataset (domain.md §7, §9 item 14). Defaults; a region overrides them in
# ``ExportSettings.grondslag`` once its convenant names the articles.
GRONDSLAG = {
    "monitoring": "Wet passend onderwijs / Jeugdwet art. 7.4.0 convenant",
    "aggregaten": "geanonimiseerd, geen persoonsgegevens",
    "datadictionary": "beschrijving, geen persoonsgegevens",
    "manifest": "verantwoording, geen persoonsgegevens",
}

SMALL_CELL = "<5"  # a count of 1 to 5 (DUO's notation, domain.md §7)
SECONDARY_CELL = "x"  # hidden so that a "<5" elsewhere cannot be worked out (CBS: "x = geheim")
WITHHELD_CELL = "."  # the whole table is withheld: too small to show anything safely
TOTAL = "totaal"
UNKNOWN = "onbekend"

# The absence window of the monitoring column: the 16-uur-in-4-weken melding (domain.md §4.3).
ABSENCE_WINDOW_WEEKS = 4

RESOLVED = "resolved"  # every other alert status is open


class ExportSettings(BaseModel):
    """The numbers and texts of the exports, with the documented defaults (docs/exports.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_small_count: int = Field(default=5, ge=1, description="Counts 1..this are suppressed (domain.md §7).")
    intake_norm_weeks: int = Field(default=4, gt=0, description="Aanmelding to intake (domain.md §5.3).")
    start_norm_weeks: int = Field(default=10, gt=0, description="Intake to start of care (domain.md §5.3).")
    total_norm_weeks: int = Field(default=14, gt=0, description="Aanmelding to start of care (domain.md §5.3).")
    age_bands: tuple[int, ...] = Field(default=(12, 14, 16, 18), description="Lower bounds of the age bands.")
    grondslag: dict[str, str] = Field(default_factory=lambda: dict(GRONDSLAG),
                                      description="Legal basis per dataset: monitoring, aggregaten, ...")

    @field_validator("grondslag")
    @classmethod
    def _every_dataset_has_a_basis(cls, value: dict[str, str]) -> dict[str, str]:
        missing = sorted(set(GRONDSLAG) - {k for k, v in value.items() if v.strip()})
        if missing:
            raise ValueError(f"grondslag: no legal basis for {missing}; every exported dataset needs one")
        return value


# ---------------------------------------------------------------------------------------------
# The pseudonym (domain.md §9 item 14: per-recipient keyed pseudonyms)


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key: the manifest shows it, so a receiver sees when the key
    (and with it every pseudonym) changed, without learning anything about the key itself."""
    return hmac.new(key, b"swv-export-sleutel-id", hashlib.sha256).hexdigest()[:12]


def pseudonymise(keys: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256(key, pupil key) as 64 hex characters: stable for one key, unrelated across keys.

    Without the key the pseudonym cannot be traced back to a BSN, not even by hashing every possible
    BSN (there are only a billion), which is why a plain hash would not do.
    """
    digest = hmac_sha256(key)
    values = keys.to_numpy(dtype=object, na_value=None)
    digests = [None if value is None else digest(value.encode("utf-8")).hex() for value in values]
    return pd.Series(digests, index=keys.index, dtype="str")


def hmac_sha256(key: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 under ``key`` (RFC 2104) as a function of the message, the key's pads hashed once.

    ``hmac.digest(key, message, "sha256")`` hashes the padded key again for every message: two of
    its four SHA-256 blocks. Here the inner and outer hash of the padded key are made once and
    copied per message, as CPython's own ``hmac.HMAC`` does without OpenSSL: the same digests
    (the tests compare them with ``hmac.digest``) at 2.5 times the speed, a second per national night.
    """
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in padded))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in padded))

    def digest(message: bytes, inner_copy=inner.copy, outer_copy=outer.copy) -> bytes:
        inside = inner_copy()
        inside.update(message)
        result = outer_copy()
        result.update(inside.digest())
        return result.digest()

    return digest


# ---------------------------------------------------------------------------------------------
# Facts per resident


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
    cost a quarter of a second per million rows to turn into a text column."""
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
    _ = resident_keys.lookup  # prepared once, before two threads use it
    # The absence hours (millions of weekly rows: Arrow lookups and numpy, which release the GIL)
    # are summed in a helper thread while the other facts are made.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="absence-hours") as helper:
        hours = helper.submit(absence_hours, inputs.vo_absence, resident_keys, evaluation_date, calendar)
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
        facts["uren_ongeoorloofd_4w"] = hours.result()
    facts = pd.concat([facts, waiting], axis=1)
    facts["overdracht_status"] = transfer
    facts["mbo_status"] = mbo
    facts["mbo_status_omschrijving"] = labelled(mbo, VVA_LABELS)
    facts["vo_schoolnaam"] = names_of(facts["vo_brin6"])
    facts["productcategorie_omschrijving"] = named(facts["productcategorie"], code_labels("productcategorie"))
    facts["open_signalen"] = signals
    facts["leeftijdsklasse"] = bands
    return facts


# ---------------------------------------------------------------------------------------------
# The monitoring table


@dataclass(frozen=True)
class ColumnDoc:
    type: str
    betekenis: str
    bron: str


MONITORING_COLUMNS: dict[str, ColumnDoc] = {
    "pseudonym": ColumnDoc("tekst (64 hex)", "HMAC-SHA256 van de leerling met de sleutel van deze gemeente; elke "
                           "nacht gelijk, per gemeente anders, niet terug te rekenen naar het BSN", "pupils"),
    "woongemeente_code": ColumnDoc("tekst", "CBS-code van de woongemeente; altijd deze gemeente", "pupils"),
    "geboortejaar": ColumnDoc("geheel getal", "geboortejaar (geen geboortedatum)", "pupils"),
    "pc4": ColumnDoc("tekst", "de vier cijfers van de postcode (geen volledige postcode)", "pupils"),
    "onderwijsstatus": ColumnDoc("tekst", "; ".join(ONDERWIJSSTATUS) + " (op de peildatum)",
                                 "vo_enrolment, mbo_outflow, po_transfers"),
    "vo_brin6": ColumnDoc("tekst", "VO-vestiging waar de leerling op de peildatum staat ingeschreven", "vo_enrolment"),
    "vo_schoolnaam": ColumnDoc("tekst", "naam van die VO-vestiging (DUO-register); (naam onbekend) als het register "
                               "de code niet kent", "vo_enrolment"),
    "uren_ongeoorloofd_4w": ColumnDoc("decimaal getal", "lesuren ongeoorloofd verzuim in de laatste 4 volledige "
                                      "schoolweken voor de peildatum (vakanties tellen niet)", "vo_absence"),
    "wachtlijst_status": ColumnDoc("tekst", "jeugdhulp: wacht, in zorg of geen", "youth_care_waitlist"),
    "wachttijd_weken": ColumnDoc("geheel getal", "weken van aanmelding tot start zorg, of tot de peildatum "
                                 "zolang de leerling wacht", "youth_care_waitlist"),
    "boven_norm_4": ColumnDoc("ja/nee", "intake later dan 4 weken na aanmelding", "youth_care_waitlist"),
    "boven_norm_10": ColumnDoc("ja/nee", "start zorg later dan 10 weken na intake", "youth_care_waitlist"),
    "boven_norm_14": ColumnDoc("ja/nee", "start zorg later dan 14 weken na aanmelding", "youth_care_waitlist"),
    "productcategorie": ColumnDoc("tekst", "productcategorie jeugdhulp (iJw JZ020), grondslag Jeugdwet",
                                  "youth_care_waitlist"),
    "productcategorie_omschrijving": ColumnDoc("tekst", "omschrijving van die productcategorie (iJw JZ020)",
                                               "youth_care_waitlist"),
    "overdracht_status": ColumnDoc("tekst", "PO-VO overdracht: ingeschreven VO, aangemeld VO of niet aangemeld; "
                                   "leeg zonder overdracht", "po_transfers"),
    "mbo_status": ColumnDoc("tekst", "VVA-statuscode van de mbo-aanmelding, geen_aanmelding zonder aanmelding; leeg "
                            "voor wie het VO niet verliet", "mbo_outflow"),
    "mbo_status_omschrijving": ColumnDoc("tekst", "die status in woorden: " + "; ".join(VVA_LABELS.values()),
                                         "mbo_outflow"),
    "open_signalen": ColumnDoc("tekst", "redencodes van de open thuiszitter- en uitstroomsignalen, met komma's "
                               "(docs/alerts.md)", "thuiszitter_alerts"),
}


def monitoring_table(facts: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """The published monitoring rows: pseudonym instead of the pupil key, ordered by pseudonym."""
    table = facts.assign(pseudonym=pseudonymise(facts.index.to_series(), key).to_numpy())
    table = table.loc[:, list(MONITORING_COLUMNS)].sort_values("pseudonym", kind="stable")
    return neutralise(table.reset_index(drop=True))


# ---------------------------------------------------------------------------------------------
# Small-cell suppression (domain.md §7, §9 item 14)


def count_table(frame: pd.DataFrame, rows: str, columns: str, row_order: Sequence[str],
                column_order: Sequence[str]) -> pd.DataFrame:
    """Counts of ``frame`` by two categorical columns; every listed category is present (zeros
    included) and categories not listed follow in sorted order, so the totals count every row."""
    counts = frame.groupby([rows, columns], sort=False).size()
    table = counts.unstack(columns, fill_value=0) if len(counts) else pd.DataFrame()
    extra_rows = sorted(r for r in table.index if r not in row_order)
    extra_columns = sorted(c for c in table.columns if c not in column_order)
    table = table.reindex(index=[*row_order, *extra_rows], columns=[*column_order, *extra_columns], fill_value=0)
    return table.rename_axis(index=rows, columns=None).astype("int64")


def with_totals(counts: pd.DataFrame) -> pd.DataFrame:
    """The table with a ``totaal`` column and a ``totaal`` row."""
    table = counts.assign(**{TOTAL: counts.sum(axis=1)})
    return pd.concat([table, table.sum().to_frame(TOTAL).T.rename_axis(counts.index.name)]).astype("int64")


def suppress_small_cells(table: pd.DataFrame, max_small: int = 5) -> pd.DataFrame:
    """Primary suppression: every published number from 1 to ``max_small``, totals included.

    domain.md §7: CBS/NCO publish nothing about groups of 5 or fewer; DUO writes ``"<5"``. A zero is
    shown: it describes nobody.
    """
    return (table >= 1) & (table <= max_small)


def _others_sum(matrix: np.ndarray) -> np.ndarray:
    """Per element: the sum of the other elements of its row (infinite where another one is)."""
    infinite = np.isinf(matrix)
    finite = np.where(infinite, 0.0, matrix)
    others_finite = finite.sum(axis=1, keepdims=True) - finite
    others_infinite = infinite.sum(axis=1, keepdims=True) - infinite > 0
    return np.where(others_infinite, np.inf, others_finite)


def _tighten_rows(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pass of ``cells of a row add up to its last element`` over every row at once."""
    cells_low, cells_high = low[:, :-1], high[:, :-1]
    total_low, total_high = low[:, -1:], high[:, -1:]
    new_low = np.hstack([total_low - _others_sum(cells_high), cells_low.sum(axis=1, keepdims=True)])
    new_high = np.hstack([total_high - _others_sum(cells_low), cells_high.sum(axis=1, keepdims=True)])
    return np.maximum(low, new_low), np.minimum(high, new_high)


def reader_bounds(values: np.ndarray, status: np.ndarray, max_small: int,
                  max_passes: int = 1_000) -> tuple[np.ndarray, np.ndarray]:
    """The narrowest range a reader can give every number of a published table with totals.

    The reader knows every shown number, that ``"<5"`` is 1..max_small, that ``"x"`` is more than
    max_small (it would have been ``"<5"`` otherwise), and that in every row and every column the
    cells add up to the total. Ranges are narrowed row by row and column by column until nothing
    changes (interval reasoning over the whole table, stronger than looking at one line).
    """
    shown = status == 0
    low = np.where(shown, values, np.where(status == 1, 1.0, max_small + 1.0)).astype(float)
    high = np.where(shown, values, np.where(status == 1, float(max_small), np.inf)).astype(float)
    for _ in range(max_passes):
        new_low, new_high = _tighten_rows(low, high)
        new_low, new_high = (m.T for m in _tighten_rows(new_low.T, new_high.T))
        if np.array_equal(new_low, low) and np.array_equal(new_high, high):
            break
        low, high = new_low, new_high
    return low, high


def secondary_suppression(table: pd.DataFrame, primary: pd.DataFrame, max_small: int = 5,
                          hidden: pd.DataFrame | None = None, keep_totals: bool = False) -> pd.DataFrame:
    """Secondary suppression: hide more numbers until no hidden number can be worked out.

    domain.md §7 and §9 item 14. ``table`` has totals (``with_totals``). While ``reader_bounds``
    pins some hidden number to one value (a hidden cell alone in its row, ``"<5" + "<5" = 2``, or a
    chain of such steps through rows and columns), one more number is hidden: a shown non-zero
    number in as many of the pinned numbers' rows and columns as possible (so a 2x2 pattern closes
    in one step), the smallest such, a cell before a total; repeat until stable. Returns the
    numbers hidden by this rule (not the primary ones).

    ``hidden``: numbers above ``max_small`` that must be hidden anyway, e.g. a total that another
    published table with the same total hides; they are hidden from the start and returned too.
    ``keep_totals``: among the candidates a cell goes before a total whatever their sizes, for a
    table whose totals are the figures its readers need most (the support-plan monitor's region and
    municipalities).
    """
    values = table.to_numpy(dtype=np.int64)
    status = np.where(primary.to_numpy(dtype=bool), 1, 0)  # 0 shown, 1 "<5", 2 "x"
    if hidden is not None:
        status[hidden.to_numpy(dtype=bool) & (status == 0)] = 2
    n_rows, n_cols = values.shape
    rows, cols = np.indices(values.shape)
    is_total = (rows == n_rows - 1) | (cols == n_cols - 1)
    while True:
        low, high = reader_bounds(values, status, max_small)
        pinned = (status > 0) & (low == high)
        candidates = (status == 0) & (values > 0)
        if not pinned.any() or not candidates.any():
            break
        lines = pinned.any(axis=1)[rows].astype(int) + pinned.any(axis=0)[cols].astype(int)
        keys = (values[candidates], is_total[candidates]) if keep_totals else (is_total[candidates],
                                                                                values[candidates])
        order = np.lexsort((*keys, -lines[candidates]))
        status[tuple(np.argwhere(candidates)[order[0]])] = 2
    return pd.DataFrame(status == 2, index=table.index, columns=table.columns)


def withhold_unprotectable_table(table: pd.DataFrame, primary: pd.DataFrame, secondary: pd.DataFrame,
                                 max_small: int = 5) -> bool:
    """Withhold every number of a table that secondary suppression could not protect.

    domain.md §7. Happens only in tiny tables with nothing left to hide: five rows of 1 with a
    total of 5 shown as ``"<5"`` everywhere still tells the reader every cell is 1. Then no number
    of the table is published (``"."``), not even the zeros.
    """
    status = np.where(primary.to_numpy(dtype=bool), 1, np.where(secondary.to_numpy(dtype=bool), 2, 0))
    low, high = reader_bounds(table.to_numpy(dtype=np.int64), status, max_small)
    return bool(((status > 0) & (low == high)).any())


def published(table: pd.DataFrame, primary: pd.DataFrame, secondary: pd.DataFrame,
              withheld: bool = False) -> pd.DataFrame:
    """Numbers as they are shown: ints, ``"<5"``, ``"x"``, or ``"."`` everywhere (dimension column first)."""
    cells = table.to_numpy(dtype=object)
    if withheld:
        cells[:] = WITHHELD_CELL
    else:
        cells[primary.to_numpy(dtype=bool)] = SMALL_CELL
        cells[secondary.to_numpy(dtype=bool)] = SECONDARY_CELL
    return pd.DataFrame(cells, index=table.index, columns=table.columns).reset_index()


def suppressed_table(counts: pd.DataFrame, max_small: int = 5) -> pd.DataFrame:
    """``counts`` with totals and every suppression rule applied: ready to publish."""
    table = with_totals(counts)
    primary = suppress_small_cells(table, max_small)
    secondary = secondary_suppression(table, primary, max_small)
    withheld = withhold_unprotectable_table(table, primary, secondary, max_small)
    return published(table, primary, secondary, withheld)


def _column_name(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or UNKNOWN


AGGREGATES = {
    "aggregaat_per_school": "inwoners per VO-vestiging en jeugdhulpstatus",
    "aggregaat_per_signaal": "open signalen per redencode en leeftijdsklasse",
    "aggregaat_per_productcategorie": "jeugdhulp per productcategorie: wachtend binnen en boven de norm van "
                                      "14 weken, en in zorg",
    "aggregaat_per_leeftijd": "inwoners per leeftijdsklasse en onderwijsstatus",
}


def aggregate_counts(facts: pd.DataFrame, alerts: pd.DataFrame, settings: ExportSettings) -> dict[str, pd.DataFrame]:
    """The four cross-tables of counts, before suppression (AGGREGATES says what each counts)."""
    bands = age_band_labels(settings.age_bands)
    enrolled = facts.loc[facts["vo_brin6"].notna()]
    care = facts.loc[facts["wachtlijst_status"] != "geen"]
    late = care["boven_norm_14"].fillna(False).to_numpy(dtype=bool)
    care = care.assign(
        productcategorie=care["productcategorie"].fillna(UNKNOWN),
        zorg=np.where(care["wachtlijst_status"] == "in zorg", "in zorg",
                      np.where(late, "wacht boven norm", "wacht binnen norm")))
    signals = alerts.drop_duplicates().assign(leeftijdsklasse=alerts["pupil_key"].map(facts["leeftijdsklasse"]))
    tables = {
        "aggregaat_per_school": count_table(enrolled, "vo_brin6", "wachtlijst_status", [], WACHTLIJST_STATUS),
        "aggregaat_per_signaal": count_table(signals.rename(columns={"reason": "reden"}), "reden",
                                             "leeftijdsklasse", list(REASONS), bands),
        "aggregaat_per_productcategorie": count_table(care, "productcategorie", "zorg", [],
                                                      ["wacht binnen norm", "wacht boven norm", "in zorg"]),
        "aggregaat_per_leeftijd": count_table(facts, "leeftijdsklasse", "onderwijsstatus", bands, ONDERWIJSSTATUS),
    }
    return {name: t.rename(columns=_column_name) for name, t in tables.items()}


# Aggregates whose categories are codes get a label column beside the first: (column, meaning, labels of a code).
LABEL_COLUMNS: dict[str, tuple[str, str, Callable[[pd.Series], pd.Series]]] = {
    "aggregaat_per_school": ("schoolnaam", "naam van de VO-vestiging (DUO-register)", names_of),
    "aggregaat_per_productcategorie": ("omschrijving", "omschrijving van de productcategorie (iJw JZ020)",
                                       lambda codes: named(codes, code_labels("productcategorie"))),
}


def with_labels(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """A published aggregate with its label column beside the category codes (``LABEL_COLUMNS``); the
    ``totaal`` row and the ``onbekend`` category keep their own word."""
    if name not in LABEL_COLUMNS:
        return table
    column, _, labels_of = LABEL_COLUMNS[name]
    codes = table.iloc[:, 0].astype("str")
    own_word = codes.isin([TOTAL, UNKNOWN])
    labels = labels_of(codes.where(~own_word)).where(~own_word, codes)
    return pd.concat([table.iloc[:, :1], labels.rename(column).astype("str"), table.iloc[:, 1:]], axis=1)


def aggregate_tables(facts: pd.DataFrame, alerts: pd.DataFrame, settings: ExportSettings) -> dict[str, pd.DataFrame]:
    """The published aggregates: counts with totals, suppressed (``suppressed_table``), labels beside codes."""
    return {name: neutralise(with_labels(name, suppressed_table(counts, settings.max_small_count)))
            for name, counts in aggregate_counts(facts, alerts, settings).items()}


# ---------------------------------------------------------------------------------------------
# Data dictionary, files and manifest


def data_dictionary(aggregates: Mapping[str, pd.DataFrame], max_small: int) -> pd.DataFrame:
    """Every column of every published table: name, type, meaning, source dataset."""
    rows = [("monitoring", name, doc.type, doc.betekenis, doc.bron) for name, doc in MONITORING_COLUMNS.items()]
    count_type = (f"geheel getal, of \"{SMALL_CELL}\" (1 t/m {max_small}), \"{SECONDARY_CELL}\" (verborgen, meer dan "
                  f"{max_small}) of \"{WITHHELD_CELL}\" (tabel niet gepubliceerd)")
    for name, table in aggregates.items():
        dimension, *counts = table.columns
        rows.append((name, dimension, "tekst", f"categorie; de laatste rij '{TOTAL}' telt alle rijen op",
                     "monitoring"))
        if name in LABEL_COLUMNS:
            label, meaning, _ = LABEL_COLUMNS[name]
            counts.remove(label)
            rows.append((name, label, "tekst", meaning, "monitoring"))
        for column in counts:
            meaning = f"aantal in de categorie '{column}'" if column != TOTAL else "som van de rij"
            rows.append((name, column, count_type, f"{AGGREGATES[name]}: {meaning}", "monitoring"))
    return pd.DataFrame(rows, columns=["bestand", "kolom", "type", "betekenis", "bron"]).astype("str")


LEGEND = "legenda.txt"


def legend_text(*, swv_code: str, gemeente: str, evaluation_date: dt.date, aggregates: Sequence[str],
                key_fingerprint: str, max_small: int) -> str:
    """The folder's Dutch legend: what each file is, the suppression symbols, the pseudonym, the columns.

    For the analyst who opens the folder without docs/exports.md at hand; the data dictionary has the
    same column meanings as a table.
    """
    files = {
        "monitoring.*": "een rij per leerling die in uw gemeente woont, gepseudonimiseerd. Dit zijn persoonsgegevens: "
                        "alleen gebruiken zoals het convenant zegt.",
        **{f"{name}.*": AGGREGATES[name] + "." for name in aggregates},
        "datadictionary.*": "elke kolom van elke tabel: type, betekenis en bron.",
        "manifest.json": "bestanden, rijen en sha256 om de levering te controleren; grondslag per bestand.",
    }
    width = max(map(len, files)) + 2
    lines = [
        f"LEGENDA - export van samenwerkingsverband {swv_code} voor gemeente {gemeente}, "
        f"peildatum {evaluation_date.strftime('%d-%m-%Y')}",
        "",
        "Wat in deze map staat",
        *(f"  {name:<{width}}{meaning}" for name, meaning in files.items()),
        "",
        "Elke tabel staat er drie keer in, met dezelfde rijen:",
        "  .csv      puntkomma als scheidingsteken, decimale komma (12,5), datums dd-mm-jjjj: opent goed in",
        "            Nederlandse Excel.",
        "  .xlsx     Excel, getallen als getallen.",
        "  .parquet  getypeerde kolommen voor analyse-software; decimalen zijn daar echte getallen.",
        "",
        "Tekens in de aggregaten (kleine aantallen worden niet getoond)",
        f"  {SMALL_CELL:<4} een aantal van 1 tot en met {max_small}.",
        f"  {SECONDARY_CELL:<4} verborgen, meer dan {max_small}: anders was een '{SMALL_CELL}' uit de totalen te "
        "herleiden.",
        f"  {WITHHELD_CELL:<4} de hele tabel is niet gepubliceerd: te klein om iets veilig te tonen.",
        f"  {'0':<4} echt nul (beschrijft niemand, dus wel getoond).",
        f"  De laatste rij en kolom '{TOTAL}' tellen de rijen en kolommen op.",
        "",
        "Pseudoniem",
        "  De kolom pseudonym is een sleutel-hash (HMAC-SHA256) van de leerling met de sleutel van uw gemeente.",
        "  Elke nacht gelijk voor dezelfde leerling, per gemeente anders, en zonder de sleutel niet terug te",
        f"  rekenen naar een BSN. Verandert manifest.json 'pseudoniem.sleutel_id' (nu {key_fingerprint}), dan zijn",
        "  alle pseudoniemen nieuw.",
        "",
        "Kolommen van monitoring",
        *(f"  {name:<30}{doc.betekenis}" for name, doc in MONITORING_COLUMNS.items()),
        "",
        "Meer uitleg: docs/exports.md van de SWV-pipeline, of vraag het samenwerkingsverband.",
    ]
    return "\n".join(lines) + "\n"


def aggregate_files(stem: str, table: pd.DataFrame) -> dict[str, tuple[bytes, int]]:
    """CSV and XLSX with numbers as numbers and the markers as text; Parquet with every count as
    text (a Parquet column has one type, and ``"<5"`` is not a number)."""
    files = table_files(stem, table, sheet=stem.removeprefix("aggregaat_"))
    files[f"{stem}.parquet"] = (parquet_bytes(table.astype("str")), len(table))
    return files


@dataclass(frozen=True)
class MunicipalExport:
    """One municipality's published tables for one night; ``files`` renders them on first use."""

    gemeente: str
    evaluation_date: dt.date
    monitoring: pd.DataFrame
    aggregates: dict[str, pd.DataFrame]
    dictionary: pd.DataFrame
    manifest: dict  # the manifest fields besides the file list (write_folder adds files, rows, sha256)
    legend: str = ""  # legenda.txt (``legend_text``)

    @cached_property
    def files(self) -> dict[str, tuple[bytes, int]]:
        """File name -> (bytes, rows): every table as CSV, XLSX and Parquet, and the legend."""
        files = table_files("monitoring", self.monitoring, sheet="monitoring", parquet=True)
        for name, table in self.aggregates.items():
            files |= aggregate_files(name, table)
        files |= table_files("datadictionary", self.dictionary, sheet="datadictionary", parquet=True)
        return files | {LEGEND: (("\ufeff" + self.legend).encode("utf-8"), self.legend.count("\n"))}

    def dataset(self, file: str) -> str:
        """monitoring, aggregaten, datadictionary or manifest: what the file is, for its legal basis. The
        legend describes, like the data dictionary."""
        stem = file.rsplit(".", 1)[0]
        if stem in self.aggregates:
            return "aggregaten"
        if file == LEGEND:
            return "datadictionary"
        return stem if stem in ("monitoring", "datadictionary") else "manifest"

    def grondslag(self, file: str) -> str:
        return self.manifest["grondslag"][self.dataset(file)]


def municipal_export(inputs: ExportInputs, *, gemeente: str, evaluation_date: dt.date, calendar: Calendar,
                     key: bytes, swv_code: str, stale_sources: Sequence[str] = (),
                     settings: ExportSettings | None = None) -> MunicipalExport:
    """Everything one municipality receives for one night (domain.md §9 item 14), from the datasets."""
    settings = settings or ExportSettings()
    facts = resident_facts(inputs, gemeente, evaluation_date, calendar, settings)
    return export_from_facts(facts, inputs.thuiszitter_alerts, gemeente=gemeente, evaluation_date=evaluation_date,
                             key=key, swv_code=swv_code, stale_sources=stale_sources, settings=settings)


def export_from_facts(facts: pd.DataFrame, thuiszitter_alerts: pd.DataFrame, *, gemeente: str,
                      evaluation_date: dt.date, key: bytes, swv_code: str, stale_sources: Sequence[str] = (),
                      settings: ExportSettings | None = None) -> MunicipalExport:
    """Everything one municipality receives for one night, from ``resident_facts`` of its residents
    (or of the whole region: only this municipality's rows are used).

    ``stale_sources`` lists the source ids whose latest delivery was older than its cadence: the
    manifest names them, so the municipality knows which figures rest on old data.
    """
    settings = settings or ExportSettings()
    facts = facts.loc[(facts["woongemeente_code"] == gemeente).fillna(False).to_numpy(dtype=bool)]
    monitoring = monitoring_table(facts, key)
    aggregates = aggregate_tables(facts, open_alerts(thuiszitter_alerts, facts.index), settings)
    dictionary = data_dictionary(aggregates, settings.max_small_count)
    tables = {"monitoring": "monitoring", **dict.fromkeys(aggregates, "aggregaten"), "datadictionary": "datadictionary",
              LEGEND.rsplit(".", 1)[0]: "datadictionary"}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "swv": swv_code,
        "gemeente": gemeente,
        "periode": evaluation_date.isoformat(),
        "grondslag": dict(settings.grondslag),
        "tabellen": tables,
        "formaten": ["csv (UTF-8 met BOM, ';', decimale komma)", "xlsx", "parquet"],
        "verouderde_bronnen": sorted(set(stale_sources)),
        "onderdrukking": {
            "kleine_aantallen": f"1 t/m {settings.max_small_count} als \"{SMALL_CELL}\"",
            "secundair": f"\"{SECONDARY_CELL}\": meer dan {settings.max_small_count}, verborgen zodat geen "
                         f"\"{SMALL_CELL}\" uit de totalen te herleiden is",
            "tabel": f"\"{WITHHELD_CELL}\" overal: tabel te klein om veilig te tonen",
            "nul": "0 wordt getoond",
        },
        "pseudoniem": {"methode": "HMAC-SHA256 van de leerlingsleutel", "sleutel_id": key_id(key)},
    }
    legend = legend_text(swv_code=swv_code, gemeente=gemeente, evaluation_date=evaluation_date,
                         aggregates=list(aggregates), key_fingerprint=key_id(key), max_small=settings.max_small_count)
    return MunicipalExport(gemeente, evaluation_date, monitoring, aggregates, dictionary, manifest, legend)


# The pupils' columns ``leaked_identifiers`` looks for in every published cell.
GUARDED_IDENTIFIERS = ("bsn", "onderwijsnummer", "voornaam", "achternaam", "postcode", "geboortedatum")


def _text_chunks(values: pd.Series) -> list[pa.Array]:
    """A column's values as Arrow string chunks (no copy for an Arrow-backed text column)."""
    array = pa.array(values.astype("str"), from_pandas=True)
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    return [chunk.cast(pa.string()) for chunk in chunks]


def _published_texts(export: MunicipalExport, lengths: pa.Array) -> dict[str, pa.Array]:
    """Every published column's distinct cell texts of these lengths (in bytes), by ``table.column``."""
    texts = {}
    for name, table in {"monitoring": export.monitoring, **export.aggregates}.items():
        for column in table.columns:
            text = _cell_texts(table[column])
            texts[f"{name}.{column}"] = pc.unique(text.filter(pc.is_in(pc.binary_length(text), value_set=lengths)))
    return texts


def _cell_texts(values: pd.Series) -> pa.Array:
    """A column's present values as text. Numbers by Arrow's cast, whole ones without ".0", so an
    identifier that became a number is still found; a column of mixed values as pandas shows them."""
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array(values.dropna().astype("str"), type=pa.string(), from_pandas=True)
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return pc.cast(array, pa.string()).drop_null()


def _published_birth_dates(candidates: pa.Array, pupils: pd.DataFrame) -> pa.Array:
    """The published texts that are a pupil's birth date written as jjjj-mm-dd or dd-mm-jjjj."""
    candidates = candidates.filter(pc.equal(pc.binary_length(candidates), 10))  # both forms are 10 characters
    shaped = []
    for pattern, form in ((r"^\d{4}-\d{2}-\d{2}$", "%Y-%m-%d"), (r"^\d{2}-\d{2}-\d{4}$", "%d-%m-%Y")):
        texts = candidates.filter(pc.match_substring_regex(candidates, pattern))
        shaped.append((texts, pc.cast(pc.strptime(texts, format=form, unit="s", error_is_null=True), pa.date32())))
    if not any(len(texts) for texts, _ in shaped):  # usually nothing published looks like a date
        return pa.array([], pa.string())
    births = pa.array(np.unique(as_dates(pupils["geboortedatum"].dropna()).to_numpy(dtype="datetime64[D]")))
    return pa.concat_arrays([texts.filter(pc.fill_null(pc.is_in(days, value_set=births), False))
                             for texts, days in shaped])


def leaked_identifiers(export: MunicipalExport, pupils: pd.DataFrame) -> list[str]:
    """Published columns that contain a BSN, onderwijsnummer, name, full postcode or birth date of a pupil.

    A last line of defence before anything is written: it must always be empty. It looks up every
    pupil's identifiers (of the whole region, not only this municipality) in the distinct published
    texts, once: a hash table of what is published, probed by the identifiers. Equal texts are of
    equal length, so only published texts as long as some identifier (or as a date) are kept: not
    the 64-character pseudonyms, almost everything published (a table of hundreds instead of 350 k
    entries, probed six million times). Birth dates are found the other way round (published texts
    shaped as a date, parsed, looked up among the birth dates), so no million birth dates are
    formatted as text per export.
    """
    names = [pupils[c] for c in ("voornaam", "achternaam") if c in pupils.columns]
    postcodes = pupils["postcode"].astype("str").str.replace(" ", "", regex=False)
    secrets = pa.chunked_array(
        [chunk for values in (pupils["bsn"], pupils["onderwijsnummer"], *names, postcodes)
         for chunk in _text_chunks(values)], type=pa.string())
    lengths = pc.unique(pa.concat_arrays([pc.unique(pc.binary_length(secrets)), pa.array([10], pa.int32())]))
    texts = _published_texts(export, lengths)  # a date's two forms are 10 characters
    published = pc.unique(pa.chunked_array(list(texts.values()), type=pa.string()))
    leaked = pa.concat_arrays([pc.unique(secrets.filter(pc.is_in(secrets, value_set=published))),
                               _published_birth_dates(published, pupils)])
    tables = {"monitoring": export.monitoring, **export.aggregates}
    problems = [f"{name}.{column} (datum)" for name, table in tables.items()
                for column in table.columns if pd.api.types.is_datetime64_any_dtype(table[column])]
    if len(leaked):
        problems += [column for column, values in texts.items()
                     if pc.any(pc.is_in(values, value_set=leaked)).as_py()]
    return problems
