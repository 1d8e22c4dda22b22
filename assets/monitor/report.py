"""The monitor's report: one self-contained HTML file per night for the board, and the same figures as XLSX.

For a board member who never opens Dagster (docs/monitor.md, "Hoe het rapport is opgebouwd"): the plan's goals
with tonight's figure, the trends over the nights (school holidays shaded) and per school week, bars
per municipality, the waiting time against the norms, the line PO → VO → MBO, and how every figure
is made. Dutch, printable on A4, without scripts, fonts or anything fetched: the charts are inline
SVG (``assets.monitor.charts``), the styles are in the file.

Only published figures go in (``assets.monitor.publish``): counts of 1 to 5 pupils show as ``<5``,
numbers that would reveal one as ``x``; nothing in the report is about a single pupil. The file
depends on the history only, so the same history gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from assets.monitor.charts import Chart, class_bars, flow_chart, stacked_bars, trend_chart
from assets.monitor.indicators import (
    AREA_LABELS,
    INDICATORS,
    OTHER,
    REGION,
    THEMES,
    TOTAL,
    WAIT_CLASSES,
    category_label,
    school_year_label,
)
from assets.monitor.publish import MARKER_MEANING, NOTHING
from connectors.outbox import table_files
from settings.region import Goal, Region

DUTCH_DAYS = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
DUTCH_MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
                "november", "december")
COMPARE_WEEKS = 4
# Short names of the parts in the line chart (the tables use the full labels of INDICATORS).
FLOW_LABELS = {
    "met_toestemming": "met ondersteuningsgegevens", "zonder_toestemming": "zonder (geen toestemming)",
    "geen_ondersteuningsbehoefte": "geen extra ondersteuning", "niet_aangemeld": "niet aangemeld",
    "ingeschreven_in_regio": "in de regio", "ingeschreven_buiten_regio": "buiten de regio",
    "niet_ingeschreven": "niet ingeschreven", "aangemeld_voor_1_april": "vóór 1 april",
    "niet_aangemeld_voor_1_april": "niet (op tijd)", "ingeschreven": "in het mbo",
    "startkwalificatie_zonder_mbo": "startkwalificatie, geen mbo", "vsv_risico": "vsv-risico",
}  # the cards compare tonight with the night nearest to four weeks earlier
SCHOOL_WEEKS_SHOWN = 8


def long_date(day: dt.date) -> str:
    """``maandag 5 oktober 2026``."""
    return f"{DUTCH_DAYS[day.weekday()]} {day.day} {DUTCH_MONTHS[day.month - 1]} {day.year}"


class Figures:
    """The published history of the report's window, looked up by night, indicator, area and category."""

    def __init__(self, published: pd.DataFrame, night: dt.date, region: Region):
        self.region = region
        self.night = pd.Timestamp(night)
        self.rows = published.loc[pd.to_datetime(published["night"]) <= self.night]
        self._index = self.rows.set_index(["night", "indicator", "area", "category"]).sort_index()
        self.nights = sorted(pd.to_datetime(self.rows["night"]).unique())

    def has(self, indicator: str, night: pd.Timestamp | None = None) -> bool:
        return (night or self.night, indicator, REGION, TOTAL) in self._index.index

    def cell(self, indicator: str, area: str = REGION, category: str = TOTAL,
             night: pd.Timestamp | None = None) -> tuple[float | None, str]:
        """(the number if it may be shown, else None; what the report prints)."""
        key = (night or self.night, indicator, area, category)
        if key not in self._index.index:
            return None, NOTHING
        row = self._index.loc[key]
        return (float(row["value"]) if bool(row["shown"]) else None), str(row["display"])

    def value(self, indicator: str, area: str = REGION, category: str = TOTAL) -> float | str:
        """A published number, or its marker: what a chart is given."""
        number, shown = self.cell(indicator, area, category)
        return number if number is not None else shown

    def series(self, indicator: str, area: str = REGION, category: str = TOTAL) -> pd.Series:
        """Per night of the window: the published number, NaN where hidden or not computed."""
        rows = self.rows.loc[(self.rows["indicator"] == indicator).to_numpy() & (self.rows["area"] == area).to_numpy()
                             & (self.rows["category"] == category).to_numpy()]
        values = rows["value"].where(rows["shown"].astype(bool))
        return pd.Series(values.to_numpy(dtype=float), index=pd.to_datetime(rows["night"])).sort_index()

    def earlier(self, weeks: int) -> pd.Timestamp | None:
        """The history's night nearest to ``weeks`` weeks before tonight (at most that long ago)."""
        target = self.night - pd.Timedelta(weeks=weeks)
        before = [n for n in self.nights if n <= target]
        if before:
            return before[-1]
        older = [n for n in self.nights if n < self.night]
        return older[0] if older else None

    def area_name(self, area: str) -> str:
        names = {g.code: g.naam for g in self.region.gemeenten}
        return names.get(area, AREA_LABELS.get(area, area))

    @property
    def areas(self) -> list[str]:
        return [*self.region.gemeente_codes, OTHER, REGION]


# ---------------------------------------------------------------------------------------------
# HTML pieces


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cell(display: str, *, count: bool) -> str:
    kind = ' data-soort="aantal"' if count else ""
    marker = " marker" if display in MARKER_MEANING else ""
    return f'<td class="getal{marker}"{kind}>{_e(display)}</td>'


def _table(caption: str, header: Sequence[str], rows: Iterable[tuple[str, Sequence[tuple[str, bool]]]],
           note: str = "") -> str:
    """A table of figures: ``rows`` are (label, [(shown text, is a count of pupils), ...])."""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in header)
    body = "".join(
        ('<tr class="totaal">' if label.startswith("regio") else "<tr>") + f'<th scope="row">{_e(label)}</th>'
        + "".join(_cell(text, count=count) for text, count in cells) + "</tr>"
        for label, cells in rows)
    foot = f'<p class="noot">{_e(note)}</p>' if note else ""
    return (f'<table class="cijfers"><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{foot}")


def _figure(chart: Chart) -> str:
    return (f'<figure class="grafiek">{chart.svg}<figcaption><strong>Zo lees je deze grafiek:</strong> '
            f"{_e(chart.guide)}</figcaption></figure>")


def _municipality_bars(figures: Figures, name: str, indicator: str, categories: Sequence[str], **chart) -> str:
    """Bars per municipality of a count by its categories; a sentence instead when every total is hidden."""
    municipalities = figures.region.gemeente_codes
    totals = pd.Series([figures.value(indicator, a) for a in municipalities],
                       index=[figures.area_name(a) for a in municipalities])
    if not any(isinstance(v, float) for v in totals):
        return (f'<p class="noot">Per gemeente zijn de aantallen te klein om te tonen ({_e(chart["title"].lower())}: '
                "overal minder dan 6 of verborgen).</p>")
    table = pd.DataFrame({category_label(indicator, c): [figures.cell(indicator, a, c)[0] for a in municipalities]
                          for c in categories}, index=totals.index)
    return _figure(stacked_bars(name, table, totals, **chart))


def _holidays(region: Region) -> list[tuple[dt.date, dt.date]]:
    return [(h.start, h.end) for h in region.calendar.holidays]


# ---------------------------------------------------------------------------------------------
# Sections


def _goal_name(goal: Goal) -> str:
    return f"Doel {goal.number} · {goal.title}" if goal.number else goal.title


def _goal_card(goal: Goal, figures: Figures) -> str:
    title = f'<p class="doel-titel">{_e(_goal_name(goal))}</p>'
    definition = INDICATORS[goal.indicator]
    now, shown = figures.cell(goal.indicator, REGION, goal.category)
    unit = "" if definition.unit == "procent" else f" {definition.unit}"  # a share's display has its "%"
    status, verdict = "onbekend", ""
    if now is not None and goal.target is not None:
        met = now <= goal.target if goal.better == "lower" else now >= goal.target
        status = "gehaald" if met else "niet-gehaald"
        verdict = "doel gehaald" if met else "doel nog niet gehaald"
    target = "" if goal.target is None else f"doel: {goal.target:g}{unit or '%'}"
    before_night = figures.earlier(COMPARE_WEEKS)
    trend = ""
    if before_night is not None:
        before, before_shown = figures.cell(goal.indicator, REGION, goal.category, before_night)
        if now is not None and before is not None:
            change = now - before
            arrow = "gelijk" if abs(change) < 1e-9 else ("▲" if change > 0 else "▼")
            amount = "" if arrow == "gelijk" else f" {abs(change):.1f}".replace(".", ",").replace(",0", "")
            trend = f"{before_night:%d-%m}: {before_shown} ({arrow}{amount})"
        else:
            trend = f"{before_night:%d-%m}: {before_shown}"
    label = definition.label if not goal.category else category_label(goal.indicator, goal.category)
    kind = "aantal" if definition.kind == "count" else "waarde"
    note = f'<p class="kaart-toelichting">{_e(goal.note)}</p>' if goal.note else ""
    return (f'<div class="kaart {status}">{title}<p class="kaart-cijfer" data-soort="{kind}">{_e(shown)}'
            f'{_e(unit if now is not None else "")}</p><p class="kaart-maat">{_e(label)}</p>'
            f'<p class="kaart-doel">{_e(target)}{" · " + _e(verdict) if verdict else ""}</p>'
            f'<p class="kaart-trend">{_e("eerder, " + trend) if trend else "nog geen eerdere nacht"}</p>{note}</div>')


def _goals(figures: Figures) -> str:
    goals = figures.region.monitor.goals
    cards = "".join(_goal_card(goal, figures) for goal in goals if goal.indicator)
    others = "".join(f"<li><strong>{_e(_goal_name(goal))}</strong>: "
                     f"{_e(goal.note or 'de pijplijn heeft hier geen gegevens over.')}</li>"
                     for goal in goals if not goal.indicator)
    unmeasured = (f'<div class="niet-meetbaar"><p><strong>Niet te meten met de gegevens van de pijplijn</strong></p>'
                  f"<ul>{others}</ul></div>" if others else "")
    return (f'<section id="doelen"><h2>De doelen van het ondersteuningsplan</h2><p>Elk doel met het cijfer van '
            f"vannacht voor de hele regio, het doel uit het plan en het cijfer van ongeveer {COMPARE_WEEKS} weken "
            f"eerder. Groen: doel gehaald; oranje: nog niet; grijs: zonder doelcijfer of verborgen.</p>"
            f'<div class="kaarten">{cards}</div>{unmeasured}</section>')


def _weekly(figures: Figures, lines: Sequence[tuple[str, str, str]]) -> str:
    """Per school week (holiday weeks skipped): each line's value on the last night of that week."""
    holidays = _holidays(figures.region)
    weeks: dict[pd.Timestamp, pd.Timestamp] = {}
    for night in figures.nights:
        monday = night - pd.Timedelta(days=night.weekday())
        friday = (monday + pd.Timedelta(days=4)).date()
        if any(start <= monday.date() and friday <= end for start, end in holidays):
            continue
        weeks[monday] = night
    shown = list(weeks.items())[-SCHOOL_WEEKS_SHOWN:]
    if not shown:
        return ""
    header = ["", *(f"week {monday.isocalendar().week} ({night:%d-%m})" for monday, night in shown)]
    rows = []
    for indicator, category, label in lines:
        unit = INDICATORS[indicator].unit
        cells = [(figures.cell(indicator, REGION, category, night)[1], unit != "procent") for _, night in shown]
        rows.append((label, cells))
    return _table("Per schoolweek: de stand op de laatste nacht van elke schoolweek (vakantieweken overgeslagen)",
                  header, rows)


def _thuiszitters(figures: Figures) -> str:
    if not figures.has("thuiszitters"):
        return ""
    months = figures.region.alerts.t3m_more_than_months
    trend = trend_chart({"thuiszitters": figures.series("thuiszitters"),
                         f"waarvan langer dan {months} maanden thuis": figures.series("thuiszitters", REGION,
                                                                                       "langer_dan_3_maanden")},
                        title="Thuiszitters in de regio, per nacht", ylabel="aantal leerlingen",
                        guide="Elke lijn telt de leerlingen die die nacht thuiszaten; een lijn die stijgt is slecht "
                              "nieuws, grijze banen zijn schoolvakanties, een gat is een verborgen klein aantal.",
                        holidays=_holidays(figures.region), goal=0)
    categories = list(INDICATORS["thuiszitters"].categories)
    bars = _municipality_bars(figures, "thuiszitters", "thuiszitters", categories,
                              title="Thuiszitters per gemeente, naar duur", xlabel="aantal leerlingen",
                              guide="Een balk per gemeente, opgedeeld naar hoe lang de leerlingen al thuiszitten; "
                                    "het getal is het totaal. Grijs zijn delen die te klein zijn om apart te tonen.")
    rows = [(figures.area_name(a), [(figures.cell("thuiszitters", a, c)[1], True) for c in [TOTAL, *categories]]
             + [(figures.cell(code, a)[1], True) for code in ("thuiszitters_nieuw", "thuiszitters_beeindigd")])
            for a in figures.areas]
    header = ["", "thuiszitters", *(category_label("thuiszitters", c) for c in categories), "nieuw",
              "niet meer thuis"]
    return (f'<section id="thuiszitters"><h2>{THEMES["thuiszitters"]}</h2><p>Leerlingen met een open signaal '
            f"absoluut verzuim (niet ingeschreven) of langdurig relatief verzuim (meer dan 4 schoolweken op rij "
            f"afwezig), naar woongemeente. Doel: geen thuiszitters; het Thuiszitterspact: geen kind langer dan "
            f"{months} maanden thuis. Nieuw en niet meer thuis: vergeleken met de vorige nacht.</p>"
            f"{_figure(trend)}{bars}"
            + _table("Thuiszitters per gemeente", header, rows) + "</section>")


def _youth_care(figures: Figures) -> str:
    if not figures.has("jeugdhulp_wachtend"):
        return ""
    trend = trend_chart({"wachtende kinderen": figures.series("jeugdhulp_wachtend"),
                         "waarvan langer dan 14 weken": figures.series("jeugdhulp_wachtend", REGION,
                                                                       "meer_dan_14_weken")},
                        title="Kinderen die wachten op jeugdhulp, per nacht", ylabel="aantal kinderen",
                        guide="De bovenste lijn telt alle wachtende kinderen, de onderste wie langer wacht dan de "
                              "norm van 14 weken; het doel van het plan is 0 (stippellijn).",
                        holidays=_holidays(figures.region), goal=0)
    distribution = class_bars("wachttijd", {"0 tot 4": figures.value("jeugdhulp_wachtend", REGION, "tot_4_weken"),
                                            "4 tot 10": figures.value("jeugdhulp_wachtend", REGION, "4_tot_10_weken"),
                                            "10 tot 14": figures.value("jeugdhulp_wachtend", REGION,
                                                                       "10_tot_14_weken"),
                                            "meer dan 14": figures.value("jeugdhulp_wachtend", REGION,
                                                                         "meer_dan_14_weken")},
                              title="Hoe lang wachten de kinderen nu, tegen de normen", xlabel="weken sinds aanmelding",
                              ylabel="aantal kinderen", notes=("norm 4 weken", "10 weken", "14 weken"),
                              guide="Elke staaf telt de kinderen die nu zo lang wachten; alles rechts van de "
                                    "14-wekennorm wacht te lang (aanmelding tot start zorg).")
    bars = _municipality_bars(figures, "jeugdhulp", "jeugdhulp_wachtend", list(WAIT_CLASSES),
                              title="Wachtende kinderen per gemeente, naar wachttijd", xlabel="aantal kinderen",
                              colours=("#009E73", "#F0E442", "#E69F00", "#D55E00"),
                              guide="Een balk per gemeente; rood is langer dan 14 weken. Het getal is het aantal "
                                    "wachtende kinderen, de gemeente is die van de wachtlijst.")
    rows = [(figures.area_name(a), [(figures.cell("jeugdhulp_wachtend", a)[1], True),
                                     (figures.cell("jeugdhulp_wachttijd_mediaan", a)[1], False),
                                     (figures.cell("jeugdhulp_wachttijd_p90", a)[1], False),
                                     (figures.cell("jeugdhulp_boven_norm_4_aandeel", a)[1], False),
                                     (figures.cell("jeugdhulp_boven_norm_10_aandeel", a)[1], False),
                                     (figures.cell("jeugdhulp_boven_norm_14_aandeel", a)[1], False)])
            for a in figures.areas]
    header = ["", "wachtend", "mediaan (weken)", "90% wacht korter dan (weken)", "intake na meer dan 4 weken",
              "na intake meer dan 10 weken", "meer dan 14 weken"]
    products = sorted({c.split("|")[0] for c in figures.rows.loc[
        (figures.rows["indicator"] == "jeugdhulp_productcategorie").to_numpy()
        & (pd.to_datetime(figures.rows["night"]) == figures.night).to_numpy(), "category"] if c and c[0] != "|"})
    product_rows = []
    for product in products:
        total, total_shown = figures.cell("jeugdhulp_productcategorie", REGION, f"{product}|")
        late, late_shown = figures.cell("jeugdhulp_productcategorie", REGION, f"{product}|meer_dan_14_weken")
        if total == 0:
            share = NOTHING
        elif total is None or late is None:
            share = "x"  # a share of hidden counts would reveal them
        else:
            share = f"{100 * late / total:.0f}%"
        product_rows.append((category_label("jeugdhulp_productcategorie", f"{product}|"),
                             [(total_shown, True), (late_shown, True), (share, False)]))
    school = [(category_label("jeugdhulp_onderwijs", c), [(figures.cell("jeugdhulp_onderwijs", REGION, c)[1], True)])
              for c in INDICATORS["jeugdhulp_onderwijs"].categories]
    return (f'<section id="jeugdhulp"><h2>{THEMES["jeugdhulp"]}</h2><p>Kinderen op de wachtlijst voor jeugdhulp '
            "van de gemeenten (aangemeld, nog niet gestart, niet beëindigd), naar de gemeente van de wachtlijst. "
            "Normen: intake binnen 4 weken na aanmelding, start binnen 10 weken na de intake, en samen binnen 14 "
            "weken. Doel 9 van het plan: geen kind dat wacht.</p>"
            f"{_figure(trend)}{_figure(distribution)}{bars}"
            + _table("Wachten op jeugdhulp per gemeente", header, rows,
                     "Percentages: aandeel van de wachtende kinderen (na intake: van wie al een intake had).")
            + _table("Wachtende kinderen in de regio per productcategorie", ["", "wachtend", "meer dan 14 weken",
                                                                              "aandeel meer dan 14 weken"],
                     product_rows)
            + _table("Wachtende kinderen en school (regio)", ["", "kinderen"], school) + "</section>")


def _line(figures: Figures) -> str:
    """The continuous line PO -> VO -> MBO (goal 6): this year's transfers and last year's leavers."""
    if not figures.has("po_vo_dossier") and not figures.has("vo_mbo_aanmelding"):
        return ""
    year = school_year_label(figures.night.date(), figures.region.calendar)
    steps = []

    def step(label: str, indicator: str) -> None:
        if figures.has(indicator):
            parts = {FLOW_LABELS[c]: figures.value(indicator, REGION, c) for c in INDICATORS[indicator].categories}
            steps.append((label, parts, figures.value(indicator)))

    step(f"PO → VO {year}, dossier", "po_vo_dossier")
    step(f"PO → VO {year}, eerste schooldag", "po_vo_plaatsing")
    step("VO → MBO, aanmelding vóór 1 april", "vo_mbo_aanmelding")
    step("VO → MBO, op 1 oktober", "vo_mbo_inschrijving")
    flow = flow_chart("doorgaande-lijn", steps, title="De doorgaande lijn PO → VO → MBO in de regio",
                      guide="Elke balk is één groep leerlingen (100%), verdeeld over wat er met ze gebeurde; n is de "
                            "groep. Hoe meer blauw, hoe beter de overstap verloopt.")
    codes = ("po_vo_dossier_aandeel", "po_vo_geplaatst_aandeel", "po_vo_in_regio_aandeel", "vo_mbo_aangemeld_aandeel",
             "vo_mbo_ingeschreven_aandeel", "vo_mbo_vsv_risico_aandeel")
    po_rows = [(figures.area_name(a), [(figures.cell("po_vo_dossier", a)[1], True)]
                + [(figures.cell(code, a)[1], False) for code in codes[:3]]) for a in figures.areas]
    mbo_rows = [(figures.area_name(a), [(figures.cell("vo_mbo_aanmelding", a)[1], True)]
                 + [(figures.cell(code, a)[1], False) for code in codes[3:]]) for a in figures.areas]
    po_header = ["", f"overstappers {year}", "dossier overgedragen", "ingeschreven eerste schooldag",
                 "binnen de regio"]
    mbo_header = ["", "VO-verlaters vorig schooljaar", "aangemeld vóór 1 april", "ingeschreven op 1 oktober",
                  "zonder startkwalificatie en zonder mbo-plek"]
    trend = trend_chart({"PO → VO: ingeschreven op de eerste schooldag": figures.series("po_vo_geplaatst_aandeel"),
                         "PO → VO: dossier overgedragen": figures.series("po_vo_dossier_aandeel"),
                         "VO → MBO: aangemeld vóór 1 april": figures.series("vo_mbo_aangemeld_aandeel")},
                        title="Doorgaande lijn: aandelen per nacht", ylabel="aandeel van de groep (%)",
                        guide="Elke lijn is een aandeel van zijn eigen groep leerlingen; 100% is het doel.",
                        holidays=_holidays(figures.region), percent=True)
    return (f'<section id="doorgaande-lijn"><h2>Doorgaande lijn PO → VO → MBO</h2><p>Doel 6 van het plan. '
            f"Overstappers: de groep-8-leerlingen uit de PO-overdracht voor schooljaar {year}. Dossier overgedragen: "
            "aangemeld bij een VO-school (het dossier gaat mee; zonder toestemming van ouders zonder de "
            "ondersteuningsgegevens). Ingeschreven op de eerste schooldag na de zomervakantie. VO-verlaters: wie vorig "
            "schooljaar het VO verliet (VVA-gegevens).</p>"
            f"{_figure(flow)}{_figure(trend)}"
            + _table("PO → VO per gemeente", po_header, po_rows, "Percentages: aandeel van de overstappers.")
            + _table("VO → MBO per gemeente", mbo_header, mbo_rows, "Percentages: aandeel van de VO-verlaters.")
            + "</section>")


def _special_education(figures: Figures) -> str:
    if not figures.has("vso_leerlingen"):
        return ""
    vso_header = ["", "leerlingen op een (v)so-locatie", *(category_label("vso_leerlingen", c)
                                                          for c in INDICATORS["vso_leerlingen"].categories)]
    vso_rows = [(figures.area_name(a), [(figures.cell("vso_leerlingen", a, c)[1], True)
                                         for c in [TOTAL, *INDICATORS["vso_leerlingen"].categories]])
                for a in figures.areas]
    po_header = ["", "met cluster 1- of 2-indicatie", "waarvan cluster 1", "waarvan cluster 2", "met een OPP",
                 "met een arrangement", "waarvan OZA"]
    po_rows = [(figures.area_name(a), [(figures.cell(code, a, c)[1], True) for code, c in (
        ("po_vo_cluster", TOTAL), ("po_vo_cluster", "cluster_1"), ("po_vo_cluster", "cluster_2"), ("po_vo_opp", TOTAL),
        ("po_vo_arrangement", TOTAL), ("po_vo_arrangement", "oza"))]) for a in figures.areas]
    return (f'<section id="cluster"><h2>{THEMES["vso"]}</h2><p>Doel 8 van het plan (afspraken met cluster 1 en 2), '
            "doel 1 (het aantal leerlingen met een OPP; de tevredenheid van ouders staat niet in de gegevens) en "
            "doel 4 (onderwijs-zorgarrangementen, zoals de PO-overdracht ze noemt). (V)so-locaties volgen uit de "
            "sector in het scholenregister van DUO; cluster 1 en 2 uit de instellingen die ze landelijk "
            "verzorgen.</p>"
            + _table("Leerlingen op een (v)so-locatie per gemeente", vso_header, vso_rows)
            + _table(f"Overstappers PO → VO {school_year_label(figures.night.date(), figures.region.calendar)}: "
                     "cluster 1 en 2, OPP en arrangementen", po_header, po_rows) + "</section>")


def _quality(figures: Figures) -> str:
    if not figures.has("rijen_geleverd"):
        return ('<section id="kwaliteit"><h2>Kwaliteit van de gegevens</h2><p>Voor deze nacht is de levering niet '
                "bekend: de cijfers zijn achteraf herberekend.</p></section>")
    region = figures.region
    rows = []
    for source_id, source in region.sources.items():
        municipality = figures.area_name(source.gemeente) if source.gemeente else "hele regio"
        stale, _ = figures.cell("bronnen_verouderd", REGION, source_id)
        rows.append((f"{source.partner} ({municipality})",
                     [(figures.cell("rijen_geleverd", REGION, source_id)[1], False),
                      (figures.cell("rijen_in_quarantaine", REGION, source_id)[1], False),
                      (figures.cell("quarantaine_aandeel", REGION, source_id)[1], False),
                      ("ja" if stale else "nee", False)]))
    rows.append(("regio (totaal)", [(figures.cell(code, REGION)[1], False) for code in
                                    ("rijen_geleverd", "rijen_in_quarantaine", "quarantaine_aandeel",
                                     "bronnen_verouderd")]))
    return ('<section id="kwaliteit"><h2>Kwaliteit van de gegevens</h2><p>Wat de partners vannacht leverden. Rijen '
            "in quarantaine telden niet mee (een fout in de levering, bijvoorbeeld een ongeldig BSN); een verouderde "
            "bron leverde niet op tijd, zijn laatste goede levering is gebruikt. Een sprong in een cijfer hierboven "
            "komt vaker door een levering dan door een echte verandering.</p>"
            + _table("Leveringen per partner", ["", "rijen geleverd", "in quarantaine", "aandeel in quarantaine",
                                                "verouderd"], rows) + "</section>")


def _accountability(figures: Figures) -> str:
    ran = figures.rows.groupby("night")["source"].agg(lambda s: (s == "night").any())
    backfilled = int((~ran).sum())
    markers = "".join(f"<li><strong>{_e(m)}</strong>: {_e(text)}</li>" for m, text in MARKER_MEANING.items())
    return ('<section id="verantwoording"><h2>Hoe deze cijfers gemaakt zijn</h2>'
            f"<p>Elke nacht telt de pijplijn van het samenwerkingsverband de gevalideerde en gekoppelde leveringen van "
            f"de partners (scholen, gemeenten, de VVA). De grafieken tonen {len(figures.nights)} nachten; "
            f"{backfilled} daarvan zijn achteraf herberekend uit de leerlinghistorie, de signalen en de leveringen "
            "(de kwaliteit van de leveringen is van die nachten niet bekend). Wie niet in de leveringen voorkomt, "
            "kent de pijplijn niet: een kind dat nergens ingeschreven staat en niet bij het SWV bekend is, telt niet "
            "mee. Elk cijfer is omschreven (teller, noemer, bron, kanttekeningen) in docs/monitor.md van de "
            "pijplijn.</p><p>Privacy: het rapport bevat geen gegevens over één leerling. Aantallen van 1 tot en met "
            f"5 leerlingen zijn verborgen, net als in de exports aan de gemeenten:</p><ul>{markers}</ul></section>")


STYLE = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; color: #1a1a1a; margin: 0 auto; max-width: 190mm;
       padding: 8mm 6mm; font-size: 10pt; line-height: 1.4; }
h1 { font-size: 18pt; margin: 0 0 2mm; color: #003b5c; }
h2 { font-size: 13pt; color: #003b5c; border-bottom: 1.5pt solid #0072B2; padding-bottom: 1mm; margin-top: 8mm; }
.ondertitel { color: #444; margin: 0 0 4mm; }
.lead { background: #f3f7fa; border-left: 3pt solid #0072B2; padding: 2mm 4mm; }
.kaarten { display: grid; grid-template-columns: repeat(2, 1fr); gap: 3mm; }
.kaart { border: 1pt solid #ccc; border-left: 5pt solid #999; border-radius: 2mm; padding: 2mm 3mm;
         break-inside: avoid; }
.kaart.gehaald { border-left-color: #009E73; }
.kaart.niet-gehaald { border-left-color: #E69F00; }
div.niet-meetbaar { background: #f6f6f6; color: #444; font-size: 8.5pt; padding: 1mm 4mm; margin-top: 3mm;
                    border-radius: 2mm; break-inside: avoid; }
div.niet-meetbaar ul { margin: 0 0 1mm; padding-left: 5mm; }
.doel-titel { font-weight: bold; margin: 0; }
.kaart-cijfer { font-size: 20pt; font-weight: bold; margin: 1mm 0 0; color: #003b5c; }
.kaart-maat, .kaart-doel, .kaart-trend, .kaart-toelichting { margin: 0; font-size: 8.5pt; color: #444; }
figure.grafiek { margin: 4mm 0; break-inside: avoid; }
svg.grafiek { width: 100%; height: auto; display: block; }
figcaption { font-size: 8.5pt; color: #333; margin-top: 1mm; }
table.cijfers { border-collapse: collapse; width: 100%; margin: 3mm 0; font-size: 8.5pt; break-inside: avoid; }
table.cijfers caption { text-align: left; font-weight: bold; margin-bottom: 1mm; }
table.cijfers th, table.cijfers td { border-bottom: 0.5pt solid #ccc; padding: 1mm 1.5mm; }
table.cijfers thead th { background: #eef3f7; text-align: right; vertical-align: bottom; font-weight: 600; }
table.cijfers thead th:first-child, table.cijfers tbody th { text-align: left; font-weight: normal; }
table.cijfers td.getal { text-align: right; font-variant-numeric: tabular-nums; }
table.cijfers td.marker { color: #777; }
table.cijfers tr.totaal th, table.cijfers tr.totaal td { font-weight: bold; border-top: 1pt solid #888; }
.noot { font-size: 8pt; color: #555; margin-top: 0; }
footer { margin-top: 8mm; font-size: 8pt; color: #666; border-top: 0.5pt solid #ccc; padding-top: 2mm; }
@media print { body { padding: 0; max-width: none; } section { break-before: auto; } h2 { break-after: avoid; } }
"""


def render_report(published: pd.DataFrame, night: dt.date, region: Region) -> str:
    """The HTML report of ``night`` from the published history (``assets.monitor.publish.publish``)."""
    figures = Figures(published, night, region)
    weekly = _weekly(figures, [("thuiszitters", TOTAL, "thuiszitters"),
                               ("thuiszitters", "langer_dan_3_maanden", "thuiszitters langer dan 3 maanden"),
                               ("jeugdhulp_wachtend", TOTAL, "kinderen die wachten op jeugdhulp"),
                               ("jeugdhulp_boven_norm_14_aandeel", TOTAL, "waarvan langer dan 14 weken (%)")])
    sections = [_goals(figures), _thuiszitters(figures), _youth_care(figures), _line(figures),
                _special_education(figures), _quality(figures), _accountability(figures)]
    weekly_section = (f'<section id="per-week"><h2>Per schoolweek</h2>{weekly}</section>' if weekly else "")
    title = f"Monitor ondersteuningsplan – {region.swv.naam}"
    return (
        f'<!doctype html>\n<html lang="nl"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} – {night.isoformat()}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>Monitor ondersteuningsplan</h1><p class=\"ondertitel\">{_e(region.swv.naam)} "
        f"({_e(region.swv.code)}) · stand van de nacht van {_e(long_date(night))}</p></header>"
        f'<p class="lead">Hoe staat het samenwerkingsverband ervoor op de doelen van het ondersteuningsplan? Deze '
        f"monitor telt het elke nacht, voor de regio en per gemeente, en houdt de cijfers bij zodat de ontwikkeling "
        f"zichtbaar is. Kleine aantallen (1 tot en met 5 leerlingen) zijn verborgen (&lt;5 of x).</p>"
        + sections[0] + "".join(sections[1:3]) + weekly_section + "".join(sections[3:])
        + f"<footer>{_e(title)} · nacht {night.isoformat()} · {len(figures.nights)} nachten in de grafieken · "
        f"gemaakt door de SWV-pijplijn (monitor)</footer></body></html>\n"
    )


# ---------------------------------------------------------------------------------------------
# The same figures as a table


TABLE_COLUMNS = {"nacht": "date", "thema": "str", "indicator": "str", "omschrijving": "str", "gebied": "str",
                 "gebiedsnaam": "str", "categorie": "str", "categorie_omschrijving": "str", "waarde": "object",
                 "eenheid": "str", "teller": "object", "noemer": "object", "herkomst": "str"}


def figures_table(published: pd.DataFrame, region: Region) -> pd.DataFrame:
    """The published history as one filterable table (Dutch column names): a number where it may be
    shown, else its marker; ``teller`` and ``noemer`` only for a share that is shown."""
    names = {g.code: g.naam for g in region.gemeenten} | AREA_LABELS
    definitions = published["indicator"].map(INDICATORS)
    is_share = definitions.map(lambda d: d.kind == "share").to_numpy(dtype=bool)
    shown = published["shown"].to_numpy(dtype=bool)

    def number_or_marker(values: pd.Series, keep: np.ndarray) -> list:
        return [float(v) if ok else (display if display in MARKER_MEANING else None)
                for v, ok, display in zip(values, keep, published["display"], strict=True)]

    table = pd.DataFrame({
        "nacht": pd.to_datetime(published["night"]).to_numpy(),
        "thema": definitions.map(lambda d: THEMES[d.theme]).astype("str").to_numpy(),
        "indicator": published["indicator"].to_numpy(),
        "omschrijving": definitions.map(lambda d: d.label).astype("str").to_numpy(),
        "gebied": published["area"].to_numpy(),
        "gebiedsnaam": published["area"].map(names).astype("str").to_numpy(),
        "categorie": published["category"].to_numpy(),
        "categorie_omschrijving": [category_label(i, c, region) for i, c in zip(published["indicator"],
                                                                               published["category"], strict=True)],
        "waarde": number_or_marker(published["value"].round(1), shown),
        "eenheid": published["unit"].to_numpy(),
        "teller": [v if share else None for v, share in zip(number_or_marker(published["numerator"], shown),
                                                            is_share, strict=True)],
        "noemer": [v if share else None for v, share in zip(number_or_marker(published["denominator"], shown),
                                                            is_share, strict=True)],
        "herkomst": published["source"].map({"night": "nacht", "backfill": "herberekend"}).astype("str").to_numpy(),
    })
    rank = {code: i for i, code in enumerate(INDICATORS)}
    areas = {code: i for i, code in enumerate([REGION, *region.gemeente_codes, OTHER])}
    order = np.lexsort((published["category"].ne(TOTAL).to_numpy(), published["area"].map(areas).to_numpy(),
                        published["indicator"].map(rank).to_numpy(), pd.to_datetime(published["night"]).to_numpy()))
    return table.iloc[order].reset_index(drop=True).astype({c: t for c, t in TABLE_COLUMNS.items() if t == "str"})


def report_files(published: pd.DataFrame, night: dt.date, region: Region) -> dict[str, tuple[bytes, int]]:
    """``monitor.html`` and the figures as ``monitor.csv`` and ``monitor.xlsx``: file name -> (bytes, rows)."""
    page = render_report(published, night, region).encode("utf-8")
    files = {"monitor.html": (page, 1)}
    return files | table_files("monitor", figures_table(published, region), sheet="monitor")
