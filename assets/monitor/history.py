"""The monitor's history: a night's facts, the thuiszitters of an earlier night, the backfill, the report.

A night's indicators come from its facts (``assets.monitor.indicators.NightFacts``). On the night
itself they are the night's validated datasets, linked pupils and alerts. For a past night the
backfill rebuilds them from what is kept:

- the pupils' residence on that night from the pupil history (``pupil_history``), and its
  thuiszitters from the alert history (``alerts``, ``alert_events``) for every night the pipeline
  ran;
- for a night before the pipeline's first, from the deliveries as they were known then (the latest
  validated datasets, ``known_on``): the pupils linked and the alert rules evaluated on that date.
  So a new installation shows a year of trend from its first deliveries.

The partners' deliveries of a past night (rows delivered, quarantined, stale sources) cannot be
rebuilt: a backfill keeps those rows of a night that ran and has none for a night that did not.
Recomputing a night that ran from the same data gives the same rows, so the stored night is left
as it was (``MonitorStore.replace_night``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from assets.gemeenten.export_settings import ExportSettings
from assets.koppeling.linkage import link_pupils
from assets.monitor.indicators import (
    NOT_RECONSTRUCTABLE,
    Context,
    NightFacts,
    known_on,
    night_indicators,
    thuiszitter_alerts,
)
from assets.monitor.publish import markers, publish, visible_small_counts
from assets.monitor.report import report_files
from assets.signalen.alert_rules import evaluate_alerts
from connectors.alert_store import AlertStore
from connectors.monitor_store import MonitorStore
from connectors.outbox import Outbox, WrittenFolder, write_folder
from connectors.pupil_store import pupils_as_of
from schemas.codelists import cluster_institutions, school_registry
from settings.datasets import DATASETS as REGISTERED_DATASETS
from settings.region import Region

LINKED = ("po_transfers", "vo_enrolment", "mbo_outflow", "youth_care_waitlist")  # what link_pupils reads
_IDENTITY = ["source_id", "bsn", "onderwijsnummer", "geboortedatum", "woongemeente_code", "buiten_regio"]
# What the monitor reads of each dataset (the linkage and the alert rules included, and the source for
# the delivery figures): its steps and the backfill ask the lake for these columns only.
FIELDS = {
    "po_transfers": [*_IDENTITY, "schooljaar", "po_brin6", "vo_brin6", "aanmelddatum", "ondersteuningsbehoefte",
                     "toestemming_ouders", "toestemming_datum", "opp", "opp_instemming_datum", "arrangement",
                     "tlv_soort", "tlv_datum", "cluster", "delivery", "delivery_row"],
    "vo_enrolment": [*_IDENTITY, "vo_brin6", "leerjaar", "onderwijsniveau", "inschrijfdatum", "uitschrijfdatum",
                     "vrijstelling"],
    "vo_absence": ["source_id", "bsn", "onderwijsnummer", "week_start", "uren_ongeoorloofd"],
    "mbo_outflow": [*_IDENTITY, "vo_brin6", "vo_niveau", "vo_diploma", "uitstroomdatum", "mbo_brin", "crebo",
                    "mbo_niveau", "aanmelddatum", "vva_status", "status_datum"],
    "youth_care_waitlist": [*_IDENTITY, "productcategorie", "aanmelddatum", "besluitdatum", "intakedatum",
                            "startdatum", "einddatum", "reden_beeindiging"],
}
DATASETS = tuple(FIELDS)  # every dataset of settings.datasets, in the order the monitor reads them
assert set(DATASETS) == set(REGISTERED_DATASETS)
REPORT_FOLDER = "monitor"


def monitor_context(region: Region, settings: ExportSettings | None = None) -> Context:
    """The region's settings for the indicators: norms and small numbers as in the exports, the school
    registry, and the cluster 1 and 2 institutions (the region file's, else reference/cluster_instellingen.csv)."""
    clusters = region.monitor.cluster_institutions or cluster_institutions()
    return Context(region, settings or ExportSettings(), school_registry(region.school_registry), clusters)


def residence_of(pupils: pd.DataFrame) -> pd.Series:
    """Woongemeente per pupil key."""
    unique = pupils.loc[pupils["pupil_key"].notna()].drop_duplicates("pupil_key", keep="last")
    return pd.Series(unique["woongemeente_code"].to_numpy(), index=unique["pupil_key"].to_numpy(), dtype="str")


def rules_on(known: Mapping[str, pd.DataFrame], night: dt.date, region: Region) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The linked pupils and the alerts of ``night``, as the pipeline would have made them from ``known``."""
    pupils, conflicts = link_pupils({name: known[name] for name in LINKED}, pd.Timestamp(night))
    alerts = evaluate_alerts(vo_enrolment=known["vo_enrolment"], vo_absence=known["vo_absence"],
                             po_transfers=known["po_transfers"], mbo_outflow=known["mbo_outflow"],
                             youth_care_waitlist=known["youth_care_waitlist"], pupils=pupils,
                             calendar=region.calendar, evaluation_date=night, thresholds=region.alerts,
                             pupil_conflicts=conflicts)
    return pupils, alerts


@dataclass(frozen=True)
class PastNight:
    """What the history tells about a past night: residence and thuiszitters, and where they came from."""

    residence: pd.Series
    thuiszitters: pd.DataFrame
    from_history: bool


def past_night(night: dt.date, known: Mapping[str, pd.DataFrame], region: Region, engine: sa.Engine) -> PastNight:
    """Residence and thuiszitters of a past night: from the pupil and alert history when the pipeline ran
    that night, else from the deliveries as they were known then (``known``: ``known_on`` that night)."""
    alerts = AlertStore(engine)
    ran = sa.inspect(engine).has_table("alert_nights") and alerts.night_recorded(night)
    history = pupils_as_of(engine, night) if ran else None
    if ran and len(history):
        return PastNight(residence_of(history), thuiszitter_alerts(alerts.as_of(night)), True)
    if ran:  # the alerts were recorded, the pupil history not (a replayed earlier night): link the pupils again
        pupils, _ = link_pupils({name: known[name] for name in LINKED}, pd.Timestamp(night))
        return PastNight(residence_of(pupils), thuiszitter_alerts(alerts.as_of(night)), True)
    pupils, tonight = rules_on(known, night, region)
    return PastNight(residence_of(pupils), thuiszitter_alerts(tonight), False)


def thuiszitter_keys(thuiszitters: pd.DataFrame) -> frozenset[str]:
    return frozenset(thuiszitters["pupil_key"].dropna())


def previous_thuiszitters(store: MonitorStore, night: dt.date, datasets: Mapping[str, pd.DataFrame], region: Region,
                          engine: sa.Engine) -> frozenset[str] | None:
    """The thuiszitters of the history's night before ``night`` (None when ``night`` is its first)."""
    before = store.night_before(night)
    if before is None:
        return None
    return thuiszitter_keys(past_night(before, known_on(datasets, before), region, engine).thuiszitters)


@dataclass(frozen=True)
class BackfilledNight:
    night: dt.date
    changed: bool
    from_history: bool  # residence and thuiszitters from the pupil and alert history (else re-evaluated)


def backfill(nights: Sequence[dt.date], *, datasets: Mapping[str, pd.DataFrame], region: Region, engine: sa.Engine,
             missing_only: bool = False, settings: ExportSettings | None = None,
             progress: Callable[[str], None] = lambda message: None) -> list[BackfilledNight]:
    """Recompute the indicators of ``nights`` (oldest first) into the history; returns what each night did.

    ``datasets``: the latest validated datasets (the lake). A night that ran keeps its delivery
    figures; with ``missing_only`` nights already in the history are skipped. The previous night of
    each is the history's night before it, so new and resolved thuiszitters chain through the
    backfilled nights as they would have on the nights themselves.
    """
    store = MonitorStore(engine)
    store.create()
    ctx = monitor_context(region, settings)
    existing = set(store.nights())
    done: list[BackfilledNight] = []
    last: tuple[dt.date, frozenset[str]] | None = None
    for number, night in enumerate(sorted(set(nights)), start=1):
        if missing_only and night in existing:
            progress(f"[{number}/{len(nights)}] {night}: in the history already, skipped")
            continue
        if last is not None and last[0] == store.night_before(night):
            previous = last[1]  # the night just recomputed: its thuiszitters are known already
        else:
            previous = previous_thuiszitters(store, night, datasets, region, engine)
        known = known_on(datasets, night)
        state = past_night(night, known, region, engine)
        facts = NightFacts(night, known, state.residence, state.thuiszitters, previous)
        rows = night_indicators(facts, ctx)
        rows = rows.assign(published=markers(rows, ctx.settings.max_small_count))
        changed = store.replace_night(night, rows, source="backfill", keep=NOT_RECONSTRUCTABLE)
        last = (night, thuiszitter_keys(state.thuiszitters))
        done.append(BackfilledNight(night, changed, state.from_history))
        progress(f"[{number}/{len(nights)}] {night}: {'recomputed' if changed else 'unchanged'} "
                 f"({'pupil and alert history' if state.from_history else 'deliveries as known then'})")
    return done


class SmallCountsVisible(RuntimeError):
    """The report would show a count of 1 to 5 pupils: nothing is written."""


def write_report(store: MonitorStore, outbox: Outbox, night: dt.date, region: Region,
                 settings: ExportSettings | None = None) -> WrittenFolder:
    """Render the report of ``night`` from the history of its trend window into ``<outbox>/monitor/<night>/``.

    Refused (``SmallCountsVisible``) when a count of 1 to 5 pupils would be shown; written atomically
    with a manifest, and not rewritten when nothing changed (``connectors.outbox.write_folder``).
    """
    settings = settings or ExportSettings()
    since = night - dt.timedelta(weeks=region.monitor.trend_weeks)
    published = publish(store.history(since=since, until=night), settings.max_small_count)
    leaks = visible_small_counts(published, settings.max_small_count)
    if len(leaks):
        raise SmallCountsVisible(f"report of {night}: {len(leaks)} count(s) of 1 to {settings.max_small_count} would "
                                 f"be shown, e.g. {leaks.head(3).to_dict('records')}; nothing written")
    nights = sorted(pd.to_datetime(published["night"]).dt.date.unique())
    ran = published.groupby("night")["source"].agg(lambda s: (s == "night").any())
    manifest = {
        "swv": region.swv.code,
        "nacht": night.isoformat(),
        "nachten": {"van": nights[0].isoformat() if nights else None, "tot": night.isoformat(), "aantal": len(nights),
                    "herberekend": int((~ran).sum())},
        "onderdrukking": f"aantallen van 1 tot en met {settings.max_small_count} als \"<5\"; \"x\" verborgen zodat "
                         "een klein aantal niet te herleiden is",
        "grondslag": "geanonimiseerd, geen persoonsgegevens",
        "definities": "docs/monitor.md",
    }
    return write_folder(outbox.folder(REPORT_FOLDER, night.isoformat()), report_files(published, night, region),
                        manifest)
