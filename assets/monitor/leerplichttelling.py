"""The leerplichttelling: per school year and municipality, the counts of the yearly art. 25 report.

Every municipality reports yearly on its leerplicht work (art. 25 Leerplichtwet 1969; docs/domain.md
§10): distinct youths per school year by municipality of residence in absoluut verzuim, langdurig
relatief verzuim (together: thuiszitters, the longer than 3 months apart), relatief verzuim and the
vrijstellingen. This module counts the categories the pipeline's data supports:

- absoluut verzuim and langdurig relatief verzuim from the alert history (``alerts``,
  ``alert_events``): every pupil with an ABS or LRV alert open on some night of the school year,
  once, under the kind of their longest episode, by how long it lasted by its end (or the night);
- relatief verzuim: pupils with a V16 (16 hours in 4 school weeks) or LRV alert in the school year;
- vrijstellingen as the VO schools deliver them on enrolments running in the school year, per article.

What it cannot know (the legend says so): youths never enrolled anywhere and unknown to the SWV,
pupils of PO, MBO or schools outside the region, vrijstellingen only the leerplichtambtenaar
registered, art. 11 (vrijstelling van geregeld schoolbezoek), luxe verzuim, and anything before the
pipeline's first night.

Two tables per municipality: the exact counts, for its own report to OCW, and a public version with
counts of 1 to 5 suppressed as in the exports (``assets.gemeenten.suppression.suppressed_table``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.gemeenten.suppression import SECONDARY_CELL, SMALL_CELL, WITHHELD_CELL, suppressed_table
from assets.koppeling.linkage import pupil_key
from assets.monitor.indicators import school_year_label, school_year_start, thuiszitter_duration_class
from assets.signalen.alert_rules import as_dates
from schemas.codelists import VRIJSTELLING
from settings.region import Region

DURATIONS = {"korter_dan_4_weken": "korter dan 4 weken", "4_weken_tot_3_maanden": "4 weken tot 3 maanden",
             "langer_dan_3_maanden": "langer dan 3 maanden"}
KINDS = {"ABS": "absoluut_verzuim", "LRV": "langdurig_relatief_verzuim"}
# Leerplichtwet articles (domain.md §4.4).
ARTICLES = {
    "5a": ("art. 5 onder a", "lichamelijke of psychische gronden"),
    "5b": ("art. 5 onder b", "bedenkingen tegen de richting van alle scholen binnen redelijke afstand"),
    "5c": ("art. 5 onder c", "ingeschreven bij en bezoekt een school in het buitenland"),
    "15": ("art. 15", "kwalificatieplichtige die ander passend onderwijs volgt"),
    "3a": ("art. 3a", "vervangende leerplicht (vanaf 14 jaar, aangepast programma)"),
    "3b": ("art. 3b", "vervangende leerplicht: mbo in het laatste leerplichtjaar"),
}
COLUMNS = ["onderdeel", "categorie", "omschrijving", "artikel", *DURATIONS, "totaal"]
GRONDSLAG = {
    "leerplichttelling": "art. 25 Leerplichtwet 1969: verantwoording van de gemeente aan OCW; vertrouwelijk, alleen "
                         "voor de eigen leerplichtadministratie",
    "leerplichttelling_openbaar": "geanonimiseerd, aantallen van 1 tot en met 5 onderdrukt",
    "legenda": "beschrijving, geen persoonsgegevens",
    "manifest": "verantwoording, geen persoonsgegevens",
}
NOT_KNOWN = (
    "jongeren die nergens ingeschreven staan en niet bij het samenwerkingsverband bekend zijn (absoluut verzuim "
    "buiten het zicht van de pijplijn)",
    "leerlingen van het primair onderwijs, het mbo en scholen buiten de regio: de pijplijn krijgt alleen de "
    "leveringen van de VO-scholen van het samenwerkingsverband",
    "vrijstellingen die alleen de leerplichtambtenaar registreerde (niet op een inschrijving van een VO-school)",
    "art. 11: vrijstelling van geregeld schoolbezoek, en luxe verzuim",
    "relatief verzuim onder de meldingsgrens van 16 uur in 4 schoolweken",
    "signalen van vóór de eerste nacht van de pijplijn (zie gegevens_vanaf in manifest.json)",
)


def school_year_window(year_start: dt.date, night: dt.date) -> tuple[dt.date, dt.date]:
    """The school year from its first day to its last, or to ``night`` while it runs."""
    end = year_start.replace(year=year_start.year + 1) - dt.timedelta(days=1)
    return year_start, min(end, night)


def alert_episodes(alerts: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Every time an alert was open: from its ``new`` or ``reopened`` night to its ``resolved`` night (NaT while open).

    Columns: ``pupil_key``, ``reason``, ``woongemeente_code``, ``episode_start``, ``opened``, ``closed``.
    """
    events = events.sort_values(["alert_id", "night"], kind="stable")
    starts = events.loc[events["to_status"].isin(["new", "reopened"]).to_numpy()]
    ends = events.loc[events["to_status"].eq("resolved").to_numpy()]
    starts = starts.assign(k=starts.groupby("alert_id").cumcount())
    ends = ends.assign(k=ends.groupby("alert_id").cumcount())
    paired = starts.loc[:, ["alert_id", "k", "night"]].rename(columns={"night": "opened"}).merge(
        ends.loc[:, ["alert_id", "k", "night"]].rename(columns={"night": "closed"}), on=["alert_id", "k"], how="left")
    details = alerts.loc[:, ["alert_id", "pupil_key", "reason", "woongemeente_code", "episode_start"]]
    return paired.merge(details, on="alert_id", how="inner").drop(columns=["k"])


@dataclass(frozen=True)
class Telling:
    """One municipality's counts for one school year: exact and public, in the file layout (``COLUMNS``)."""

    gemeente: str
    schooljaar: str
    period: tuple[dt.date, dt.date]
    exact: pd.DataFrame
    public: pd.DataFrame


def _residence(keys: pd.Series, residence: pd.Series, fallback: pd.Series) -> pd.Series:
    found = residence.reindex(keys.to_numpy())
    return pd.Series(np.where(found.isna().to_numpy(), fallback.to_numpy(dtype=object), found.to_numpy(dtype=object)),
                     index=keys.index, dtype="str")


def count_school_year(episodes: pd.DataFrame, enrolment: pd.DataFrame, residence: pd.Series, region: Region,
                      year_start: dt.date, night: dt.date) -> dict[str, dict[str, pd.DataFrame]]:
    """Per municipality the three counts of one school year: ``thuiszitters`` (kind by duration),
    ``relatief`` (one number) and ``vrijstellingen`` (per article), before suppression."""
    first, last = (pd.Timestamp(day) for day in school_year_window(year_start, night))
    opened, closed = pd.to_datetime(episodes["opened"]), pd.to_datetime(episodes["closed"])
    in_year = episodes.loc[((opened <= last) & (closed.isna() | (closed > first))).to_numpy()]
    in_year = in_year.assign(gemeente=_residence(in_year["pupil_key"], residence, in_year["woongemeente_code"]))
    ended = pd.to_datetime(in_year["closed"]).where(pd.to_datetime(in_year["closed"]) <= last, last).fillna(last)

    absent = in_year.loc[in_year["reason"].isin(list(KINDS)).to_numpy()]
    absent = absent.assign(ended=ended[absent.index],
                           days=(ended[absent.index] - as_dates(absent["episode_start"])).dt.days)
    # A youth counts once: under the kind of their longest episode of the year, measured at its end.
    longest = absent.sort_values(["pupil_key", "days", "reason"], kind="stable").drop_duplicates("pupil_key",
                                                                                                 keep="last")
    longest = longest.assign(kind=longest["reason"].map(KINDS),
                             duration=thuiszitter_duration_class(longest["episode_start"], longest["ended"],
                                                                 region.alerts.t3m_more_than_months))
    relative = in_year.loc[in_year["reason"].isin(["V16", "LRV"]).to_numpy()].drop_duplicates("pupil_key")

    running = enrolment.loc[(as_dates(enrolment["inschrijfdatum"]) <= last).to_numpy()
                            & ~(as_dates(enrolment["uitschrijfdatum"]) < first).to_numpy()
                            & enrolment["vrijstelling"].fillna("").str.strip().ne("").to_numpy()]
    running = running.assign(pupil_key=pupil_key(running)).sort_values("inschrijfdatum", kind="stable")
    exempt = running.drop_duplicates("pupil_key", keep="last")
    exempt = exempt.assign(gemeente=_residence(exempt["pupil_key"], residence, exempt["woongemeente_code"]))

    counts = {}
    for code in region.gemeente_codes:
        mine = longest.loc[longest["gemeente"].eq(code).to_numpy()]
        thuis = (mine.groupby(["kind", "duration"]).size().unstack(fill_value=0)
                 .reindex(index=list(KINDS.values()), columns=list(DURATIONS), fill_value=0))
        exempted = (exempt.loc[exempt["gemeente"].eq(code).to_numpy()].groupby("vrijstelling").size()
                    .reindex(list(VRIJSTELLING), fill_value=0))
        counts[code] = {
            "thuiszitters": thuis.astype("int64"),
            "relatief": pd.DataFrame({"aantal": [int(relative["gemeente"].eq(code).sum())]},
                                     index=["relatief_verzuim"]),
            "vrijstellingen": exempted.to_frame("aantal").astype("int64"),
        }
    return counts


_LABELS = {
    "absoluut_verzuim": "Absoluut verzuim: leer- of kwalificatieplichtig, nergens ingeschreven, geen vrijstelling",
    "langdurig_relatief_verzuim": "Langdurig relatief verzuim: ingeschreven, meer dan 4 schoolweken op rij "
                                  "ongeoorloofd afwezig",
    "thuiszitters": "Thuiszitters: absoluut verzuim en langdurig relatief verzuim samen (unieke jongeren)",
    "relatief_verzuim": "Relatief verzuim: 16 uur ongeoorloofd in 4 schoolweken of langdurig relatief verzuim",
    "vrijstellingen": "Vrijstellingen samen (unieke jongeren)",
}


def _layout(counts: Mapping[str, pd.DataFrame], publish: bool, max_small: int) -> pd.DataFrame:
    """The three counts as one table in ``COLUMNS``: exact, or with small counts suppressed."""
    def shown(table: pd.DataFrame) -> pd.DataFrame:
        if publish:
            return suppressed_table(table, max_small).set_index(table.index.name or "index")
        full = table.assign(totaal=table.sum(axis=1))
        return pd.concat([full, full.sum().to_frame("totaal").T]).astype("int64")

    rows = []
    thuis = shown(counts["thuiszitters"].rename_axis("kind"))
    for kind in [*KINDS.values(), "totaal"]:
        label = "thuiszitters" if kind == "totaal" else kind
        rows.append({"onderdeel": "thuiszitters", "categorie": label, "omschrijving": _LABELS[label], "artikel": "",
                     **{d: thuis.at[kind, d] for d in DURATIONS}, "totaal": thuis.at[kind, "totaal"]})
    relative = shown(counts["relatief"].rename_axis("soort"))
    rows.append({"onderdeel": "relatief_verzuim", "categorie": "relatief_verzuim",
                 "omschrijving": _LABELS["relatief_verzuim"], "artikel": "",
                 **dict.fromkeys(DURATIONS, ""), "totaal": relative.at["relatief_verzuim", "totaal"]})
    exempt = shown(counts["vrijstellingen"].rename_axis("vrijstelling"))
    for code in [*VRIJSTELLING, "totaal"]:
        article, meaning = ARTICLES.get(code, ("", _LABELS["vrijstellingen"]))
        rows.append({"onderdeel": "vrijstellingen", "categorie": code if code != "totaal" else "vrijstellingen",
                     "omschrijving": f"Vrijstelling {article}: {meaning}" if article else meaning, "artikel": article,
                     **dict.fromkeys(DURATIONS, ""), "totaal": exempt.at[code, "totaal"]})
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in (*DURATIONS, "totaal"):
        table[column] = table[column].map(lambda v: None if v == "" else int(v) if isinstance(v, (int, np.integer))
                                          else v).astype(object)
    return table


def legend(region: Region, gemeente: str, year: str, period: tuple[dt.date, dt.date],
           since: dt.date | None) -> pd.DataFrame:
    """What every row counts, where from, and what the pipeline cannot know: the file's own legend."""
    rows = [
        ("absoluut_verzuim", _LABELS["absoluut_verzuim"], "jongeren met een signaal ABS (docs/alerts.md) dat in het "
         "schooljaar open stond; de duur: van het begin van de periode tot het einde ervan of de peildatum",
         "signalen van de pijplijn (VO-inschrijvingen, VVA)"),
        ("langdurig_relatief_verzuim", _LABELS["langdurig_relatief_verzuim"], "jongeren met een signaal LRV in het "
         "schooljaar; wie beide had, telt één keer, bij de soort van de langste periode", "signalen (VO-verzuim)"),
        ("thuiszitters", _LABELS["thuiszitters"], "som van de twee rijen hierboven; de kolom 'langer dan 3 maanden' "
         "is wat OCW apart vraagt", "signalen"),
        ("relatief_verzuim", _LABELS["relatief_verzuim"], "jongeren met een signaal V16 of LRV in het schooljaar",
         "signalen (VO-verzuim)"),
        ("vrijstellingen", "Vrijstellingen per artikel", "jongeren met een vrijstelling op een VO-inschrijving die in "
         "het schooljaar liep (de laatste inschrijving telt)", "VO-inschrijvingen"),
    ]
    rows += [("niet bekend", text, "telt niet mee", "") for text in NOT_KNOWN]
    rows += [("teken", f"{marker}", meaning, "") for marker, meaning in (
        (SMALL_CELL, "alleen in de openbare versie: 1 tot en met 5"),
        (SECONDARY_CELL, "alleen in de openbare versie: verborgen zodat een klein aantal niet te herleiden is"),
        (WITHHELD_CELL, "alleen in de openbare versie: tabel te klein om te tonen"))]
    name = {g.code: g.naam for g in region.gemeenten}[gemeente]
    rows.append(("periode", f"schooljaar {year}, {period[0]:%d-%m-%Y} tot en met {period[1]:%d-%m-%Y}, gemeente {name} "
                 f"({gemeente}), woongemeente volgens de laatst bekende gegevens",
                 f"signalen vanaf {since:%d-%m-%Y}" if since else "nog geen signalen", ""))
    return pd.DataFrame(rows, columns=["categorie", "omschrijving", "hoe_geteld", "bron"]).astype("str")


def leerplichttellingen(episodes: pd.DataFrame, enrolment: pd.DataFrame, residence: pd.Series, region: Region,
                        night: dt.date, since: dt.date | None, max_small: int = 5) -> list[Telling]:
    """The counts of the school year of ``night`` (so far) and of the year before, per municipality.

    A school year that ended before the alert history began (``since``) has nothing to count and is
    left out: its folder would only hold zeros that are not true.
    """
    current = school_year_start(night, region.calendar)
    years = [current.replace(year=current.year - 1), current]
    out = []
    for year_start in years:
        period = school_year_window(year_start, night)
        if since is None or since > period[1]:
            continue
        label = school_year_label(year_start, region.calendar)
        counts = count_school_year(episodes, enrolment, residence, region, year_start, night)
        for code, tables in counts.items():
            out.append(Telling(code, label, period, _layout(tables, False, max_small),
                               _layout(tables, True, max_small)))
    return out
