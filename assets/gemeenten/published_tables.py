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

This module makes the published tables, the legend and the manifest from the facts per resident
(``resident_facts``), with the pseudonym (``pseudonyms``) and the suppression (``suppression``) of
their own modules; ``identifier_leaks`` checks the result before it is written. Everything here is
pure: frames in, frames and bytes out. Writing, logging and uploading happen in
``assets.gemeenten.export_assets``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from assets.gemeenten.export_settings import ExportSettings
from assets.gemeenten.pseudonyms import key_id, pseudonymise
from assets.gemeenten.resident_facts import UNKNOWN, ExportInputs, age_band_labels, open_alerts, resident_facts
from assets.gemeenten.suppression import SECONDARY_CELL, SMALL_CELL, TOTAL, WITHHELD_CELL, count_table, suppressed_table
from assets.signalen.alert_rules import REASONS
from connectors.outbox import neutralise, parquet_bytes, table_files
from schemas.codelists import code_labels
from schemas.vocabulary import ONDERWIJSSTATUS, VVA_LABELS, WACHTLIJST_STATUS, named, names_of
from settings.region import Calendar

SCHEMA_VERSION = "1.0"


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
