"""The support-plan monitor's indicators: what every figure counts, in one place.

``docs/monitor.md`` is the same list in Dutch for the board (numerator, denominator, source, caveats);
a test keeps the two in step. The goals behind them are in docs/domain.md §10.

Each indicator is one of four kinds:

- ``count``: distinct pupils (or children), with categories that add up to its total;
- ``share``: a percentage of such counts (numerator categories over the total);
- ``statistic``: a median or 90th percentile of waiting time, over a group whose size is the denominator;
- ``rows``: delivered rows per partner (data quality; no pupils, so nothing is suppressed).

Every figure is computed per night from the same validated and linked tables the alerts use, as
they were known on that night (``known_on``), for the region (``REGIO``), each municipality of the
region (its GM code) and ``OVERIG`` (living outside the region or residence unknown): the
municipalities and ``OVERIG`` add up to the region. The result is one tidy row per (night,
indicator, area, category) with numerator, denominator, value and unit; ``category`` is ``""`` for
an indicator's total. Nothing here reads a clock or writes anything: the same facts give the same rows,
whether on the night itself or in a backfill (``assets.monitor.history``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assets.gemeenten.export_settings import ExportSettings
from assets.gemeenten.resident_facts import ResidentKeys, absence_hours
from assets.koppeling.linkage import enrolments_active_on, pupil_key
from assets.overdracht.handover import cluster_number, consent_given
from assets.signalen.alert_rules import SWV, as_dates, has_startkwalificatie, school_year_of
from settings.region import Calendar, Region

REGION = "REGIO"
OTHER = "OVERIG"  # outside the region, or residence unknown
TOTAL = ""  # the category of an indicator's total
UNKNOWN = "onbekend"

COUNT, SHARE, STATISTIC, ROWS = "count", "share", "statistic", "rows"

# Alert reasons that make a pupil a thuiszitter: absoluut verzuim and langdurig relatief verzuim,
# and T3M, which fires on top of either (domain.md §4.2: thuiszitter = LRV + absoluut verzuim).
THUISZITTER_REASONS = ("ABS", "LRV", "T3M")
ACTIVE_STATUSES = ("new", "open", "reopened")

THEMES = {
    "thuiszitters": "Thuiszitters",
    "jeugdhulp": "Jeugdhulp",
    "po_vo": "Overstap PO → VO",
    "vo_mbo": "Overstap VO → MBO",
    "vso": "Speciaal onderwijs en cluster 1 en 2",
    "kwaliteit": "Kwaliteit van de gegevens",
}


@dataclass(frozen=True)
class Indicator:
    """One indicator: its code, what the board reads, and how it relates to the others.

    ``categories``: code -> label of the parts of a count's total (empty: the total only; the product
    categories and the partners are filled in per night). ``total_with``: another count over the same
    group, so the same total (suppressed alike, ``assets.monitor.publish``). ``share_of`` and
    ``numerator``: a share's count and the categories that make its numerator; its denominator is
    that count's total. ``cross``: a count for the region only, by two category dimensions
    (``"<row>|<column>"``; ``"<row>|"`` and ``"|<column>"`` are their totals), whose ``aliases``
    (own category, other count, its category) are the same numbers as another count's region cells.
    ``reconstructable``: a backfill can recompute it for a past night.
    """

    code: str
    label: str
    theme: str
    unit: str
    kind: str
    categories: Mapping[str, str] = field(default_factory=dict)
    total_with: str | None = None
    share_of: str | None = None
    numerator: tuple[str, ...] = ()
    cross: bool = False
    aliases: tuple[tuple[str, str, str], ...] = ()
    reconstructable: bool = True


WAIT_CLASSES = {"tot_4_weken": "tot en met 4 weken", "4_tot_10_weken": "4 tot en met 10 weken",
                "10_tot_14_weken": "10 tot en met 14 weken", "meer_dan_14_weken": "meer dan 14 weken"}
NORM = {"boven_norm": "boven de norm", "binnen_norm": "binnen de norm"}

_INDICATORS = (
    # --- thuiszitters (domain.md §4.2; docs/alerts.md ABS, LRV, T3M) ---
    Indicator("thuiszitters", "Thuiszitters (absoluut verzuim of langdurig relatief verzuim)", "thuiszitters",
              "leerlingen", COUNT, {"korter_dan_4_weken": "korter dan 4 weken thuis",
                                    "4_weken_tot_3_maanden": "4 weken tot 3 maanden thuis",
                                    "langer_dan_3_maanden": "langer dan 3 maanden thuis"}),
    Indicator("thuiszitters_nieuw", "Nieuwe thuiszitters sinds de vorige nacht", "thuiszitters", "leerlingen",
              COUNT),
    Indicator("thuiszitters_beeindigd", "Thuiszitters die sinds de vorige nacht geen thuiszitter meer zijn",
              "thuiszitters", "leerlingen", COUNT),
    # --- youth care (domain.md §5.3, §9 item 11; goal 9) ---
    Indicator("jeugdhulp_wachtend", "Kinderen die wachten op jeugdhulp", "jeugdhulp", "kinderen", COUNT,
              WAIT_CLASSES),
    Indicator("jeugdhulp_wachttijd_mediaan", "Mediane wachttijd van de wachtende kinderen", "jeugdhulp", "weken",
              STATISTIC),
    Indicator("jeugdhulp_wachttijd_p90", "Wachttijd waarbinnen 90% van de wachtende kinderen valt", "jeugdhulp",
              "weken", STATISTIC),
    Indicator("jeugdhulp_boven_norm_14_aandeel", "Wachtend: langer dan 14 weken sinds aanmelding (norm aanmelding "
              "tot start zorg)", "jeugdhulp", "procent", SHARE, share_of="jeugdhulp_wachtend",
              numerator=("meer_dan_14_weken",)),
    Indicator("jeugdhulp_norm_intake", "Wachtend: intake later dan 4 weken na aanmelding, of na 4 weken nog "
              "geen intake", "jeugdhulp", "kinderen", COUNT, NORM, total_with="jeugdhulp_wachtend"),
    Indicator("jeugdhulp_boven_norm_4_aandeel", "Wachtend: boven de norm van 4 weken tot intake", "jeugdhulp",
              "procent", SHARE, share_of="jeugdhulp_norm_intake", numerator=("boven_norm",)),
    Indicator("jeugdhulp_norm_start", "Wachtend na de intake: langer dan 10 weken sinds de intake", "jeugdhulp",
              "kinderen", COUNT, NORM),
    Indicator("jeugdhulp_boven_norm_10_aandeel", "Wachtend na de intake: boven de norm van 10 weken tot start zorg",
              "jeugdhulp", "procent", SHARE, share_of="jeugdhulp_norm_start", numerator=("boven_norm",)),
    Indicator("jeugdhulp_productcategorie", "Wachtende kinderen in de regio per productcategorie (JZ020), binnen en "
              "boven de norm van 14 weken", "jeugdhulp", "kinderen", COUNT,
              {"binnen_14_weken": "wacht 14 weken of korter", "meer_dan_14_weken": "wacht langer dan 14 weken"},
              cross=True, aliases=(("", "jeugdhulp_wachtend", ""),
                                   ("|meer_dan_14_weken", "jeugdhulp_wachtend", "meer_dan_14_weken"))),
    Indicator("jeugdhulp_onderwijs", "Wachtende kinderen naar onderwijs en verzuim", "jeugdhulp", "kinderen", COUNT,
              {"vo_met_verzuim": "VO-leerling met ongeoorloofd verzuim in de laatste 4 schoolweken",
               "vo_zonder_verzuim": "VO-leerling zonder ongeoorloofd verzuim in de laatste 4 schoolweken",
               "geen_vo": "geen VO-leerling in de regio"}, total_with="jeugdhulp_wachtend"),
    # --- PO -> VO (domain.md §2; goal 6) ---
    Indicator("po_vo_dossier", "Overstappers PO → VO van dit schooljaar: overdracht van het dossier", "po_vo",
              "leerlingen", COUNT,
              {"met_toestemming": "overgedragen met ondersteuningsgegevens (ouders gaven toestemming)",
               "zonder_toestemming": "overgedragen zonder ondersteuningsgegevens (geen toestemming)",
               "geen_ondersteuningsbehoefte": "overgedragen, geen extra ondersteuning nodig",
               "niet_aangemeld": "niet overgedragen: geen aanmelding bij een VO-school"}),
    Indicator("po_vo_dossier_aandeel", "Overstappers PO → VO van wie het dossier is overgedragen", "po_vo",
              "procent", SHARE, share_of="po_vo_dossier",
              numerator=("met_toestemming", "zonder_toestemming", "geen_ondersteuningsbehoefte")),
    Indicator("po_vo_plaatsing", "Overstappers PO → VO: ingeschreven op de eerste schooldag", "po_vo",
              "leerlingen", COUNT,
              {"ingeschreven_in_regio": "ingeschreven op een school in de regio",
               "ingeschreven_buiten_regio": "ingeschreven op een school buiten de regio",
               "niet_ingeschreven": "niet ingeschreven in het VO"}, total_with="po_vo_dossier"),
    Indicator("po_vo_geplaatst_aandeel", "Overstappers PO → VO ingeschreven op de eerste schooldag", "po_vo",
              "procent", SHARE, share_of="po_vo_plaatsing",
              numerator=("ingeschreven_in_regio", "ingeschreven_buiten_regio")),
    Indicator("po_vo_in_regio_aandeel", "Overstappers PO → VO geplaatst binnen de regio", "po_vo", "procent", SHARE,
              share_of="po_vo_plaatsing", numerator=("ingeschreven_in_regio",)),
    # Counted on their own, not as parts of all transfers: a handful of cluster pupils in a
    # municipality would otherwise hide its number of transfers (the shared total) as well.
    Indicator("po_vo_cluster", "Overstappers PO → VO met een cluster 1- of 2-indicatie", "po_vo", "leerlingen",
              COUNT, {"cluster_1": "cluster 1 (visueel)", "cluster_2": "cluster 2 (auditief en communicatief)"}),
    Indicator("po_vo_opp", "Overstappers PO → VO met een ontwikkelingsperspectiefplan (OPP)", "po_vo", "leerlingen",
              COUNT),
    Indicator("po_vo_arrangement", "Overstappers PO → VO met een arrangement", "po_vo", "leerlingen", COUNT,
              {"oza": "onderwijs-zorgarrangement (OZA)", "ander_arrangement": "ander arrangement"}),
    # --- VO -> MBO (domain.md §6; goal 6) ---
    Indicator("vo_mbo_aanmelding", "VO-verlaters van vorig schooljaar: aanmelding bij het mbo", "vo_mbo",
              "leerlingen", COUNT, {"aangemeld_voor_1_april": "aangemeld op of vóór 1 april",
                                    "niet_aangemeld_voor_1_april": "niet (op tijd) aangemeld"}),
    Indicator("vo_mbo_aangemeld_aandeel", "VO-verlaters aangemeld bij het mbo op of vóór 1 april", "vo_mbo",
              "procent", SHARE, share_of="vo_mbo_aanmelding", numerator=("aangemeld_voor_1_april",)),
    Indicator("vo_mbo_inschrijving", "VO-verlaters van vorig schooljaar: ingeschreven in het mbo op 1 oktober",
              "vo_mbo", "leerlingen", COUNT,
              {"ingeschreven": "ingeschreven in het mbo",
               "startkwalificatie_zonder_mbo": "met startkwalificatie, niet in het mbo",
               "vsv_risico": "zonder startkwalificatie en zonder mbo-plek (risico voortijdig schoolverlaten)"},
              total_with="vo_mbo_aanmelding"),
    Indicator("vo_mbo_ingeschreven_aandeel", "VO-verlaters ingeschreven in het mbo op 1 oktober", "vo_mbo",
              "procent", SHARE, share_of="vo_mbo_inschrijving", numerator=("ingeschreven",)),
    Indicator("vo_mbo_vsv_risico_aandeel", "VO-verlaters zonder startkwalificatie en zonder mbo-plek", "vo_mbo",
              "procent", SHARE, share_of="vo_mbo_inschrijving", numerator=("vsv_risico",)),
    # --- (V)SO and cluster 1/2 (domain.md §2.4; goal 8) ---
    Indicator("vso_leerlingen", "Leerlingen ingeschreven op een (v)so-locatie", "vso", "leerlingen", COUNT,
              {"cluster_1": "cluster 1 (visueel)", "cluster_2": "cluster 2 (auditief en communicatief)",
               "overig": "ander (voortgezet) speciaal onderwijs (cluster 3 en 4)"}),
    # --- data quality per partner (nightly only: a backfill cannot know what was delivered then) ---
    Indicator("rijen_geleverd", "Geleverde rijen per bron", "kwaliteit", "rijen", ROWS, reconstructable=False),
    Indicator("rijen_in_quarantaine", "Rijen in quarantaine of in een afgewezen levering, per bron", "kwaliteit",
              "rijen", ROWS, reconstructable=False),
    Indicator("quarantaine_aandeel", "Aandeel geleverde rijen in quarantaine, per bron", "kwaliteit", "procent",
              ROWS, reconstructable=False),
    Indicator("bronnen_verouderd", "Bronnen waarvan de laatste levering ouder is dan afgesproken", "kwaliteit",
              "bronnen", ROWS, reconstructable=False),
)
INDICATORS: dict[str, Indicator] = {indicator.code: indicator for indicator in _INDICATORS}
NOT_RECONSTRUCTABLE = tuple(code for code, indicator in INDICATORS.items() if not indicator.reconstructable)

def settings_problems(region: Region) -> list[str]:
    """Problems with ``monitor`` in the region file: goals and jump limits naming an unknown indicator."""
    problems = []
    for i, goal in enumerate(region.monitor.goals):
        if goal.indicator is not None and goal.indicator not in INDICATORS:
            problems.append(f"monitor.goals[{i}].indicator: {goal.indicator!r} is not an indicator of docs/monitor.md")
        elif goal.indicator and goal.category and goal.category not in INDICATORS[goal.indicator].categories:
            problems.append(f"monitor.goals[{i}].category: {goal.category!r} is not a category of {goal.indicator}")
    problems += [f"monitor.jump_check.indicators.{code}: not an indicator of docs/monitor.md"
                 for code in region.monitor.jump_check.indicators if code not in INDICATORS]
    return problems


# A municipality in the report is its name; the two other areas get these.
AREA_LABELS = {REGION: "regio (totaal)", OTHER: "buiten de regio of onbekend"}


def category_label(indicator: str, category: str, region: Region | None = None) -> str:
    """What a reader reads for a category: fixed labels, JZ020 product names, partner names."""
    from schemas.codelists import code_labels

    if category == TOTAL:
        return "totaal"
    fixed = INDICATORS[indicator].categories
    if category in fixed:
        return fixed[category]
    if indicator == "jeugdhulp_productcategorie":
        product, _, column = category.partition("|")
        name = f"{product} {code_labels('productcategorie').get(product, '')}".strip() if product else "alle producten"
        return f"{name}: {fixed[column]}" if column else name
    if region is not None and category in region.sources:
        return f"{region.sources[category].partner} ({category})"
    return category


# ---------------------------------------------------------------------------------------------
# What was known on a night


# Per dataset: the date a row became known (rows after the night are dropped) and the dates that lay
# in the future (blanked, with what depends on them).
_AS_OF = {
    "youth_care_waitlist": ("aanmelddatum", {"besluitdatum": (), "intakedatum": (), "startdatum": (),
                                             "einddatum": ("reden_beeindiging",)}),
    "vo_enrolment": ("inschrijfdatum", {"uitschrijfdatum": ()}),
    "vo_absence": ("week_start", {}),
    "po_transfers": (None, {"aanmelddatum": ("vo_brin6",), "toestemming_datum": ("toestemming_ouders",),
                            "opp_instemming_datum": (), "tlv_datum": ("tlv_soort",)}),
    "mbo_outflow": (None, {"aanmelddatum": ("mbo_brin", "crebo", "mbo_niveau", "vva_status", "status_datum")}),
}


def known_on(datasets: Mapping[str, pd.DataFrame], night: dt.date) -> dict[str, pd.DataFrame]:
    """The validated datasets as they were known on ``night``: rows registered later dropped, later dates blanked.

    A waitlist entry registered after the night is left out; one that started or ended after it is
    still waiting that night. An enrolment that began later is left out; one that ended later was
    running. A VVA status dated after the night was not known yet: the application then counts as
    received (``aanmelding_ontvangen``, dated on the application). On a night's own data (validation
    refuses dates after the evaluation date) this changes nothing, so the nightly run and a backfill
    of the same night count the same rows.
    """
    day = pd.Timestamp(night)
    known = {}
    for name, frame in datasets.items():
        registered, later = _AS_OF.get(name, (None, {}))
        if registered is not None and registered in frame.columns:
            unknown = (as_dates(frame[registered]) > day).to_numpy(dtype=bool)
            if unknown.any():  # a night's own data has none: no copy of millions of absence rows
                frame = frame.loc[~unknown]
        changes = {}
        for column, depending in later.items():
            if column not in frame.columns:
                continue
            future = (as_dates(frame[column]) > day).to_numpy(dtype=bool)
            if not future.any():
                continue
            for target in (column, *depending):
                if target in frame.columns:
                    changes[target] = frame[target].mask(future)
        if name == "mbo_outflow" and "status_datum" in frame.columns:
            current = changes.get("status_datum", frame["status_datum"])
            pending = (as_dates(current) > day).to_numpy(dtype=bool)
            if pending.any():
                changes["vva_status"] = changes.get("vva_status", frame["vva_status"]).mask(pending,
                                                                                          "aanmelding_ontvangen")
                changes["status_datum"] = current.mask(pending, frame["aanmelddatum"])
        known[name] = frame.assign(**changes) if changes else frame
    return known


# ---------------------------------------------------------------------------------------------
# Rules of the monitor, each in one place


def thuiszitter_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """The open ABS, LRV and T3M alerts of leer- and kwalificatieplichtigen: ``pupil_key`` and ``episode_start``.

    domain.md §4.2: a thuiszitter is a pupil in langdurig relatief verzuim or absoluut verzuim (OCW
    since 2016); the alert rules (docs/alerts.md) decide who that is. ``alerts`` is a night's
    ``thuiszitter_alerts`` (with ``status``) or the rules' own output (every row fired).
    """
    keep = alerts["reason"].isin(THUISZITTER_REASONS) & alerts["category"].eq(SWV)
    if "status" in alerts.columns:
        keep &= alerts["status"].isin(ACTIVE_STATUSES)
    rows = alerts.loc[keep.fillna(False).to_numpy(dtype=bool), ["pupil_key", "episode_start"]]
    return rows.assign(episode_start=as_dates(rows["episode_start"])).reset_index(drop=True)


def thuiszitter_duration_class(episode_start: pd.Series, night: dt.date | pd.Series, months: int = 3) -> pd.Series:
    """How long a thuiszitter has been at home on ``night``: less than 4 weeks, 4 weeks to 3 months, or longer.

    domain.md §4.2: LRV is more than 4 weeks of absence; the Thuiszitterspact's limit is 3 months
    without a suitable place, the same cut-off as the T3M alert (``alerts.t3m_more_than_months``):
    an episode that began more than 3 calendar months before the night. ``night`` may differ per
    row (the leerplichttelling measures each episode at its own end).
    """
    day = pd.to_datetime(night) if isinstance(night, pd.Series) else pd.Timestamp(night)
    start = as_dates(episode_start)
    labels = np.where(start < day - pd.DateOffset(months=months), "langer_dan_3_maanden",
                      np.where((day - start).dt.days < 28, "korter_dan_4_weken", "4_weken_tot_3_maanden"))
    return pd.Series(labels, index=episode_start.index, dtype="str")


def waiting_entries(waitlist: pd.DataFrame, night: dt.date) -> pd.DataFrame:
    """One row per child waiting for youth care on ``night``: its longest-waiting open entry.

    domain.md §9 item 11 and §5.3: an entry waits from its aanmelding until care starts; it is open
    while not started and not ended. Of a child's open entries the one registered first counts (the
    longest wait). Columns: ``pupil_key``, ``woongemeente_code`` (the municipality whose list it is),
    ``productcategorie``, ``days`` waiting, ``intake_days`` (since the intake; missing before it) and
    ``until_intake`` (days from aanmelding to the intake, or to the night while there was none).
    """
    day = pd.Timestamp(night)
    registered, intake = as_dates(waitlist["aanmelddatum"]), as_dates(waitlist["intakedatum"])
    start, end = as_dates(waitlist["startdatum"]), as_dates(waitlist["einddatum"])
    waiting = (registered <= day) & ~(start <= day) & ~(end <= day)
    rows = waitlist.loc[waiting.to_numpy(dtype=bool), ["woongemeente_code", "productcategorie"]].assign(
        pupil_key=pupil_key(waitlist.loc[waiting.to_numpy(dtype=bool)]),
        registered=registered[waiting], intake=intake[waiting].where(intake[waiting] <= day))
    rows = rows.loc[rows["pupil_key"].notna()]
    rows = rows.sort_values(["pupil_key", "registered", "productcategorie", "woongemeente_code"], kind="stable",
                            na_position="last").drop_duplicates("pupil_key", keep="first")
    days = (day - rows["registered"]).dt.days
    until_intake = (rows["intake"].fillna(day) - rows["registered"]).dt.days
    return pd.DataFrame({
        "pupil_key": rows["pupil_key"].to_numpy(),
        "woongemeente_code": rows["woongemeente_code"].to_numpy(),
        "productcategorie": rows["productcategorie"].fillna(UNKNOWN).to_numpy(),
        "days": days.to_numpy(dtype=np.int64),
        "intake_days": (day - rows["intake"]).dt.days.astype("Int64").to_numpy(),
        "until_intake": until_intake.to_numpy(dtype=np.int64),
    }).astype({"pupil_key": "str", "woongemeente_code": "str", "productcategorie": "str"})


def wait_class(days: pd.Series, settings: ExportSettings) -> pd.Series:
    """The waiting time against the norms of domain.md §5.3: up to 4 weeks (intake norm), 4 to 10
    (the intake-to-start norm counted from aanmelding), 10 to 14, and more than 14 weeks (the
    aanmelding-to-start norm). A child waiting exactly 14 weeks (98 days) is still within it."""
    bounds = [7 * settings.intake_norm_weeks, 7 * settings.start_norm_weeks, 7 * settings.total_norm_weeks]
    position = np.searchsorted(np.asarray(bounds), days.to_numpy(dtype=np.int64), side="left")
    return pd.Series(np.asarray(list(WAIT_CLASSES), dtype=object)[position], index=days.index, dtype="str")


def school_year_start(night: dt.date, calendar: Calendar) -> dt.date:
    """First day of the school year that contains ``night`` (``calendar.school_year_start``, domain.md §2.3)."""
    year = int(school_year_of(np.array([np.datetime64(night, "D")]), calendar)[0])
    month, day = (int(part) for part in calendar.school_year_start.split("-"))
    return dt.date(year, month, day)


def school_year_label(night: dt.date, calendar: Calendar) -> str:
    """``2026-2027`` for a night in the school year that starts in 2026."""
    start = school_year_start(night, calendar).year
    return f"{start}-{start + 1}"


def first_school_day(year_start: dt.date, calendar: Calendar) -> dt.date:
    """The first weekday on or after the school year's start that is not in a school holiday.

    Pupils start VO after the summer holiday, not on 1 August (domain.md §2.3): the first school day
    of 2026-2027 in region noord is Monday 17 August 2026.
    """
    day = year_start
    while day.weekday() >= 5 or any(h.start <= day <= h.end for h in calendar.holidays):
        day += dt.timedelta(days=1)
    return day


# ---------------------------------------------------------------------------------------------
# The facts of one night, and its rows


@dataclass(frozen=True)
class NightFacts:
    """What one night's indicators are computed from.

    ``datasets``: the validated datasets as known on the night (``known_on``). ``residence``: each
    pupil's woongemeente on the night, indexed by pupil key (the linked pupils, or the pupil history).
    ``thuiszitters``: the night's open ABS, LRV and T3M alerts (``thuiszitter_alerts``).
    ``previous_thuiszitters``: the thuiszitters' pupil keys on the previous night in the history, or
    None for its first night. ``deliveries``: per source id the rows delivered and usable tonight and
    whether it is stale (only on the night itself).
    """

    night: dt.date
    datasets: Mapping[str, pd.DataFrame]
    residence: pd.Series
    thuiszitters: pd.DataFrame
    previous_thuiszitters: frozenset[str] | None = None
    deliveries: pd.DataFrame | None = None


@dataclass(frozen=True)
class Context:
    """The region's settings the computations need, prepared once."""

    region: Region
    settings: ExportSettings
    registry: pd.DataFrame  # vestigingscode, brin, sector, gemeentecode
    clusters: Mapping[str, Sequence[str]]

    @property
    def areas(self) -> list[str]:
        return [*self.region.gemeente_codes, OTHER]

    def area(self, codes: pd.Series | np.ndarray) -> np.ndarray:
        """A municipality of the region keeps its code; anything else (or nothing) is ``OVERIG``."""
        codes = pd.Index(np.asarray(codes, dtype=object))
        inside = pd.Index(self.region.gemeente_codes).get_indexer(codes) >= 0
        return np.where(inside, codes.to_numpy(dtype=object), OTHER).astype(object)


def _frame(night: dt.date, indicator: str, areas: Sequence[str], categories: Sequence[str], numerator: np.ndarray,
           denominator: np.ndarray, value: np.ndarray, unit: str) -> pd.DataFrame:
    """Tidy rows from flat arrays over ``areas`` x ``categories`` (area-major); text columns stay objects
    until ``night_indicators`` types all rows at once."""
    n = len(numerator)
    return pd.DataFrame({
        "night": np.full(n, np.datetime64(night, "s")),
        "indicator": np.full(n, indicator, dtype=object),
        "area": np.repeat(np.asarray(areas, dtype=object), len(categories)),
        "category": np.tile(np.asarray(categories, dtype=object), len(areas)),
        "numerator": numerator.astype(float), "denominator": denominator.astype(float), "value": value.astype(float),
        "unit": np.full(n, unit, dtype=object),
    })


def count_rows(night: dt.date, indicator: str, area: np.ndarray, category: np.ndarray | None, ctx: Context,
               categories: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts of one item per pupil, by area and category: every area and category (zeros included),
    each area's total (category ``""``), and the region's."""
    definition = INDICATORS[indicator]
    categories = list(definition.categories) if categories is None else list(categories)
    at_area = pd.Index(ctx.areas).get_indexer(pd.Index(np.asarray(area, dtype=object)))
    at_category = (pd.Index(categories).get_indexer(pd.Index(np.asarray(category, dtype=object)))
                   if categories else np.zeros(len(at_area), dtype=np.int64))
    if (at_area < 0).any() or (at_category < 0).any():
        raise ValueError(f"{indicator}: an area or category outside {ctx.areas} x {categories}")
    width = max(len(categories), 1)
    counts = np.bincount(at_area * width + at_category, minlength=len(ctx.areas) * width).reshape(-1, width)
    if categories:  # the total first, then the categories in their order
        counts = np.hstack([counts.sum(axis=1, keepdims=True), counts])
    counts = np.vstack([counts.sum(axis=0, keepdims=True), counts]).astype(float)
    nothing = np.full(counts.size, np.nan)
    return _frame(night, indicator, [REGION, *ctx.areas], [TOTAL, *categories], counts.ravel(), nothing,
                  counts.ravel(), definition.unit)


def cross_rows(night: dt.date, indicator: str, rows: np.ndarray, columns: np.ndarray,
               row_categories: Sequence[str]) -> pd.DataFrame:
    """Counts for the region by two dimensions (``Indicator.cross``): every cell, each row's and each
    column's total, and the grand total."""
    definition = INDICATORS[indicator]
    column_categories = list(definition.categories)
    at_row = pd.Index(row_categories).get_indexer(pd.Index(np.asarray(rows, dtype=object)))
    at_column = pd.Index(column_categories).get_indexer(pd.Index(np.asarray(columns, dtype=object)))
    width = len(column_categories)
    counts = np.bincount(at_row * width + at_column, minlength=len(row_categories) * width).reshape(-1, width)
    counts = np.hstack([counts.sum(axis=1, keepdims=True), counts])
    counts = np.vstack([counts.sum(axis=0, keepdims=True), counts]).astype(float).ravel()
    categories = [f"{r}|{c}" for r in ["", *row_categories] for c in ["", *column_categories]]
    categories[0] = TOTAL
    return _frame(night, indicator, [REGION], categories, counts, np.full(len(counts), np.nan), counts,
                  definition.unit)


def share_rows(night: dt.date, indicator: str, of: pd.DataFrame) -> pd.DataFrame:
    """A share per area: the numerator categories of its count (``of``, that count's rows) over the
    count's total, in percent."""
    definition = INDICATORS[indicator]
    category = of["category"].to_numpy(dtype=object)
    area = of["area"].to_numpy(dtype=object)
    total = category == TOTAL
    areas = area[total]
    whole = of["numerator"].to_numpy(dtype=float)[total]
    parts = pd.Series(of["numerator"].to_numpy(dtype=float)[np.isin(category, definition.numerator)],
                      index=area[np.isin(category, definition.numerator)]).groupby(level=0).sum()
    part = parts.reindex(areas, fill_value=0.0).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(whole > 0, 100.0 * part / whole, np.nan)
    return _frame(night, indicator, list(areas), [TOTAL], part, whole, value, definition.unit)


def statistic_rows(night: dt.date, indicator: str, area: np.ndarray, values: np.ndarray, quantile: float,
                   ctx: Context) -> pd.DataFrame:
    """A quantile of ``values`` per area and for the region; the group size is the denominator.

    numpy's default (linear interpolation between the two nearest values, as in docs/monitor.md).
    """
    areas = [REGION, *ctx.areas]
    groups = [values if code == REGION else values[area == code] for code in areas]
    value = np.array([np.quantile(group, quantile) if len(group) else np.nan for group in groups], dtype=float)
    size = np.array([len(group) for group in groups], dtype=float)
    return _frame(night, indicator, areas, [TOTAL], np.full(len(areas), np.nan), size, value,
                  INDICATORS[indicator].unit)


def _residence_of(keys: pd.Series, fallback: pd.Series, facts: NightFacts) -> np.ndarray:
    """Each pupil's woongemeente on the night (linked pupils or history), else the row's own."""
    found = facts.residence.reindex(keys.to_numpy()).to_numpy(dtype=object)
    missing = pd.isna(found)
    found[missing] = fallback.to_numpy(dtype=object)[missing]
    return found


def thuiszitter_rows(facts: NightFacts, ctx: Context) -> list[pd.DataFrame]:
    """thuiszitters (by time at home), thuiszitters_nieuw, thuiszitters_beeindigd."""
    night = facts.night
    per_pupil = facts.thuiszitters.groupby("pupil_key", sort=True)["episode_start"].min()
    keys = pd.Series(per_pupil.index, dtype="str")
    no_code = pd.Series(pd.NA, index=keys.index, dtype="str")
    area = ctx.area(_residence_of(keys, no_code, facts))
    duration = thuiszitter_duration_class(pd.Series(per_pupil.to_numpy()), night,
                                          ctx.region.alerts.t3m_more_than_months)
    frames = [count_rows(night, "thuiszitters", area, duration.to_numpy(), ctx)]
    if facts.previous_thuiszitters is not None:
        now, before = set(keys), facts.previous_thuiszitters
        for code, changed in (("thuiszitters_nieuw", sorted(now - before)), ("thuiszitters_beeindigd",
                                                                              sorted(before - now))):
            changed = pd.Series(changed, dtype="str")
            where = ctx.area(_residence_of(changed, pd.Series(pd.NA, index=changed.index, dtype="str"), facts))
            frames.append(count_rows(night, code, where, None, ctx))
    return frames


def youth_care_rows(facts: NightFacts, ctx: Context) -> list[pd.DataFrame]:
    """Children waiting for youth care, their waiting time against the norms, by product and by school."""
    night, settings = facts.night, ctx.settings
    waiting = waiting_entries(facts.datasets["youth_care_waitlist"], night)
    area = ctx.area(waiting["woongemeente_code"])
    frames = [count_rows(night, "jeugdhulp_wachtend", area, wait_class(waiting["days"], settings).to_numpy(), ctx)]
    weeks = waiting["days"].to_numpy(dtype=float) / 7
    frames += [statistic_rows(night, "jeugdhulp_wachttijd_mediaan", area, weeks, 0.5, ctx),
               statistic_rows(night, "jeugdhulp_wachttijd_p90", area, weeks, 0.9, ctx)]
    # The intake norm (domain.md §5.3): intake more than 4 weeks after aanmelding, or none yet after 4 weeks.
    late = np.where(waiting["until_intake"].to_numpy() > 7 * settings.intake_norm_weeks, "boven_norm", "binnen_norm")
    frames.append(count_rows(night, "jeugdhulp_norm_intake", area, late, ctx))
    seen = waiting["intake_days"].notna().to_numpy()
    past_start = np.where(waiting["intake_days"].fillna(0).to_numpy(dtype=np.int64) > 7 * settings.start_norm_weeks,
                          "boven_norm", "binnen_norm")
    frames.append(count_rows(night, "jeugdhulp_norm_start", area[seen], past_start[seen], ctx))
    past_total_norm = waiting["days"].to_numpy() > 7 * settings.total_norm_weeks
    frames.append(cross_rows(night, "jeugdhulp_productcategorie", waiting["productcategorie"].to_numpy(),
                             np.where(past_total_norm, "meer_dan_14_weken", "binnen_14_weken"),
                             sorted(set(waiting["productcategorie"]))))
    enrolment = facts.datasets["vo_enrolment"]
    in_vo = pa.array(_latest_active(enrolment, night)["pupil_key"])
    keys = pd.Index(waiting["pupil_key"], name="pupil_key")
    hours = absence_hours(facts.datasets["vo_absence"], ResidentKeys(keys), night, ctx.region.calendar)
    # Arrow's hash lookup: pandas' ``isin`` on Arrow text walks a million VO pupils in Python first.
    pupil = pc.is_in(pa.array(waiting["pupil_key"]), value_set=in_vo).to_numpy(zero_copy_only=False)
    absent = hours.to_numpy() > 0
    school = np.where(pupil & absent, "vo_met_verzuim", np.where(pupil, "vo_zonder_verzuim", "geen_vo"))
    frames.append(count_rows(night, "jeugdhulp_onderwijs", area, school, ctx))
    return frames


def _cohort_of_transfers(po_transfers: pd.DataFrame, night: dt.date, calendar: Calendar) -> pd.DataFrame:
    """This school year's PO -> VO transfers, one row per pupil: the latest aanmelding, else the latest row."""
    label = school_year_label(night, calendar)
    columns = ["bsn", "onderwijsnummer", "woongemeente_code", "schooljaar", "vo_brin6", "aanmelddatum",
               "ondersteuningsbehoefte", "toestemming_ouders", "toestemming_datum", "cluster", "opp", "arrangement",
               "delivery", "delivery_row"]
    rows = po_transfers.loc[po_transfers["schooljaar"].eq(label).fillna(False).to_numpy(dtype=bool),
                            [c for c in columns if c in po_transfers.columns]]
    rows = rows.assign(pupil_key=pupil_key(rows),
                       _registered=(rows["vo_brin6"].notna() & rows["aanmelddatum"].notna()).to_numpy())
    rows = rows.loc[rows["pupil_key"].notna()]
    rows = rows.sort_values(["pupil_key", "_registered", "aanmelddatum", "delivery", "delivery_row"], kind="stable",
                            na_position="first")
    return rows.drop_duplicates("pupil_key", keep="last").reset_index(drop=True)


def _latest_active(enrolment: pd.DataFrame, on: dt.date) -> pd.DataFrame:
    """Per pupil the enrolment running on ``on`` that began last: ``pupil_key``, ``vo_brin6``."""
    columns = [c for c in ("bsn", "onderwijsnummer", "vo_brin6", "inschrijfdatum", "uitschrijfdatum")
               if c in enrolment.columns]
    active = enrolments_active_on(enrolment.loc[:, columns], pd.Timestamp(on))
    active = active.loc[active["pupil_key"].notna()]
    # Ordered by (pupil, inschrijfdatum, vo_brin6) as integer codes: a million text keys sort slowly, and
    # the callers count pupils, so the pupils need no order of their own (numbered as they come).
    pupil, _ = pd.factorize(active["pupil_key"])
    school, schools = pd.factorize(active["vo_brin6"], sort=True)
    school = np.where(school < 0, len(schools), school)  # a missing school sorts last
    order = np.lexsort((school, active["inschrijfdatum"].to_numpy(dtype="datetime64[ns]"), pupil))
    last = order[np.r_[pupil[order][1:] != pupil[order][:-1], True]] if len(order) else order
    return active.iloc[last].loc[:, ["pupil_key", "vo_brin6"]]


def po_vo_rows(facts: NightFacts, ctx: Context) -> list[pd.DataFrame]:
    """This school year's PO -> VO transfers: dossier, placement on the first school day, cluster, OPP, arrangement."""
    night, calendar = facts.night, ctx.region.calendar
    cohort = _cohort_of_transfers(facts.datasets["po_transfers"], night, calendar)
    area = ctx.area(_residence_of(cohort["pupil_key"], cohort["woongemeente_code"], facts))
    registered = cohort["_registered"].to_numpy(dtype=bool)
    support = cohort["ondersteuningsbehoefte"].fillna(False).to_numpy(dtype=bool)
    consent = consent_given(cohort).to_numpy(dtype=bool)
    dossier = np.select([registered & support & consent, registered & support, registered],
                        ["met_toestemming", "zonder_toestemming", "geen_ondersteuningsbehoefte"], "niet_aangemeld")
    frames = [count_rows(night, "po_vo_dossier", area, dossier, ctx)]
    first_day = first_school_day(school_year_start(night, calendar), calendar)
    if night >= first_day:
        placed = _latest_active(facts.datasets["vo_enrolment"], first_day).set_index("pupil_key")["vo_brin6"]
        school = placed.reindex(cohort["pupil_key"].to_numpy())
        gemeente = ctx.registry.set_index("vestigingscode")["gemeentecode"].reindex(school.to_numpy())
        inside = gemeente.isin(ctx.region.gemeente_codes).to_numpy()
        placement = np.where(school.isna().to_numpy(), "niet_ingeschreven",
                             np.where(inside, "ingeschreven_in_regio", "ingeschreven_buiten_regio"))
        frames.append(count_rows(night, "po_vo_plaatsing", area, placement, ctx))
    number = cluster_number(cohort["cluster"].astype("str")).fillna("").to_numpy(dtype=object)
    national = np.isin(number, ["1", "2"])
    frames.append(count_rows(night, "po_vo_cluster", area[national],
                             np.where(number[national] == "1", "cluster_1", "cluster_2"), ctx))
    opp = cohort["opp"].fillna(False).to_numpy(dtype=bool)
    frames.append(count_rows(night, "po_vo_opp", area[opp], None, ctx))
    arrangement = cohort["arrangement"].astype("str").str.strip().str.upper().fillna("").to_numpy(dtype=object)
    some = arrangement != ""
    frames.append(count_rows(night, "po_vo_arrangement", area[some],
                             np.where(arrangement[some] == "OZA", "oza", "ander_arrangement"), ctx))
    return frames


def vo_mbo_rows(facts: NightFacts, ctx: Context) -> list[pd.DataFrame]:
    """Last school year's VO leavers: application by 1 April, enrolment on 1 October, VSV risk (domain.md §6)."""
    night, calendar = facts.night, ctx.region.calendar
    flow = facts.datasets["mbo_outflow"]
    left = as_dates(flow["uitstroomdatum"]).to_numpy(dtype="datetime64[D]")
    leaving_year = school_year_of(left, calendar)
    cohort_year = school_year_start(night, calendar).year - 1
    rows = flow.loc[~np.isnat(left) & (leaving_year == cohort_year)]
    month, day = (int(p) for p in calendar.mbo_application_deadline.split("-"))
    deadline = pd.Timestamp(dt.date(cohort_year + 1, month, day))
    month, day = (int(p) for p in calendar.vsv_count_date.split("-"))
    count_date = pd.Timestamp(dt.date(cohort_year + 1, month, day))
    status_date = as_dates(rows["status_datum"])
    per_row = pd.DataFrame({
        "pupil_key": pupil_key(rows),
        "woongemeente_code": rows["woongemeente_code"],
        "applied": (as_dates(rows["aanmelddatum"]) <= deadline).to_numpy(dtype=bool),
        "enrolled": (rows["vva_status"].eq("ingeschreven").fillna(False)
                     & ~(status_date > count_date).fillna(False)).to_numpy(dtype=bool),
        "startkwalificatie": has_startkwalificatie(rows).to_numpy(dtype=bool),
    })
    per_row = per_row.loc[per_row["pupil_key"].notna()]
    leavers = per_row.groupby("pupil_key", sort=True).agg(
        woongemeente_code=("woongemeente_code", "last"), applied=("applied", "any"), enrolled=("enrolled", "any"),
        startkwalificatie=("startkwalificatie", "any")).reset_index()
    area = ctx.area(_residence_of(leavers["pupil_key"].astype("str"), leavers["woongemeente_code"], facts))
    applied, enrolled = leavers["applied"].to_numpy(dtype=bool), leavers["enrolled"].to_numpy(dtype=bool)
    qualified = leavers["startkwalificatie"].to_numpy(dtype=bool)
    return [
        count_rows(night, "vo_mbo_aanmelding", area,
                   np.where(applied, "aangemeld_voor_1_april", "niet_aangemeld_voor_1_april"), ctx),
        count_rows(night, "vo_mbo_inschrijving", area, np.select(
            [enrolled, qualified], ["ingeschreven", "startkwalificatie_zonder_mbo"], "vsv_risico"), ctx),
    ]


def vo_pupil_rows(facts: NightFacts, ctx: Context) -> list[pd.DataFrame]:
    """Pupils enrolled at a (v)so location (registry sector) or at a cluster 1 or 2 institution (by BRIN)."""
    active = _latest_active(facts.datasets["vo_enrolment"], facts.night)
    schools = ctx.registry.set_index("vestigingscode").reindex(active["vo_brin6"].to_numpy())
    brin = active["vo_brin6"].str[:4].to_numpy(dtype=object)
    cluster_1 = np.isin(brin, list(ctx.clusters.get("1", ())))
    cluster_2 = np.isin(brin, list(ctx.clusters.get("2", ())))
    vso = schools["sector"].eq("(V)SO").fillna(False).to_numpy(dtype=bool) | cluster_1 | cluster_2
    kind = np.select([cluster_1, cluster_2], ["cluster_1", "cluster_2"], "overig")
    area = ctx.area(_residence_of(active["pupil_key"].astype("str"),
                                  pd.Series(pd.NA, index=active.index, dtype="str"), facts))
    return [count_rows(facts.night, "vso_leerlingen", area[vso], kind[vso], ctx)]


def delivery_rows(facts: NightFacts, ctx: Context) -> list[pd.DataFrame]:
    """Per source of the region: rows delivered tonight, rows kept out (quarantine or a rejected delivery),
    their share, and whether the source is stale (region level; rows, not pupils)."""
    night, sources = facts.night, list(ctx.region.sources)
    deliveries = facts.deliveries.set_index("source_id").reindex(sources)
    delivered = deliveries["delivered"].fillna(0).to_numpy(dtype=float)
    kept_out = np.clip(delivered - deliveries["usable"].fillna(0).to_numpy(dtype=float), 0, None)
    stale = deliveries["stale"].fillna(False).to_numpy(dtype=bool).astype(float)
    categories = [TOTAL, *sources]

    def with_total(values: np.ndarray) -> np.ndarray:
        return np.concatenate([[values.sum()], values])

    frames = [_frame(night, code, [REGION], categories, with_total(values), np.full(len(categories), np.nan),
                     with_total(values), INDICATORS[code].unit)
              for code, values in (("rijen_geleverd", delivered), ("rijen_in_quarantaine", kept_out),
                                   ("bronnen_verouderd", stale))]
    part, whole = with_total(kept_out), with_total(delivered)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(whole > 0, 100.0 * part / whole, np.nan)
    frames.append(_frame(night, "quarantaine_aandeel", [REGION], categories, part, whole, share, "procent"))
    return frames


def night_indicators(facts: NightFacts, ctx: Context) -> pd.DataFrame:
    """Every indicator of one night: tidy rows (night, indicator, area, category, numerator, denominator,
    value, unit), in the order of ``INDICATORS``; per indicator the region first, the total first."""
    counts = [*thuiszitter_rows(facts, ctx), *youth_care_rows(facts, ctx), *po_vo_rows(facts, ctx),
              *vo_mbo_rows(facts, ctx), *vo_pupil_rows(facts, ctx)]
    of = {frame["indicator"].iat[0]: frame for frame in counts}
    shares = [share_rows(facts.night, code, of[definition.share_of]) for code, definition in INDICATORS.items()
              if definition.kind == SHARE and definition.share_of in of]
    frames = [*counts, *shares, *(delivery_rows(facts, ctx) if facts.deliveries is not None else [])]
    rank = {code: i for i, code in enumerate(INDICATORS)}
    rows = pd.concat(sorted(frames, key=lambda frame: rank[frame["indicator"].iat[0]]), ignore_index=True)
    return rows.astype({"night": "datetime64[s]", "indicator": "str", "area": "str", "category": "str",
                        "unit": "str"})
