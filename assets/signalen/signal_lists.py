"""The signal lists a coordinator and a leerplicht officer work from: one row per pupil, and a printable digest.

``thuiszitter_alerts`` (``assets.signalen.alert_assets``) records the night's alerts, one per pupil and
reason; this module turns them into what people read (docs/signalen.md):

- **one row per pupil** with every current reason, since when and how long each has lasted
  (``durations``), what each means, what to do about it (``WHAT_TO_DO``, worded per recipient),
  which reasons are new tonight and which were resolved tonight, the school and municipality by
  name, and three empty follow-up columns (Behandelaar, Actie, Datum) for the recipient;
- the same list as CSV and XLSX, and an **HTML digest** per recipient (``digest_html``): the counts
  on top, what to do per reason, and the list below, self-contained (no scripts, no external fonts
  or images) and laid out for A4 landscape.

Who sees whom (domain.md §7): the coordinator every pupil, a municipality only its own residents
(current ``woongemeente_code``, inside the region). The digest leaves out BSN and onderwijsnummer:
paper travels, and the signal id is the reference to use.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assets.koppeling.linkage import key_positions, pupil_key
from assets.signalen.alert_rules import DOORSTROOMPUNT, REASONS, SchoolWeeks
from connectors.alert_store import ACTIVE_STATUSES
from connectors.outbox import Outbox, WrittenFolder, table_files, write_folder
from connectors.xlsx import Print
from schemas.frames import select_rows
from schemas.vocabulary import ALERT_STATUS_LABELS, names_of
from settings.region import Calendar, Region

COORDINATOR, GEMEENTE = "coordinator", "gemeente"

# Reason -> what the recipient does, in a sentence or two (docs/signalen.md "De redenen, en wat u doet").
WHAT_TO_DO: dict[str, dict[str, str]] = {
    "ABS": {
        COORDINATOR: "Plaatsingsoverleg: welke school of welk arrangement past?",
        GEMEENTE: "Nagaan of de jongere elders (buiten de regio, (v)so, buitenland) staat ingeschreven of verhuisd "
                  "is; contact met ouders; zo nodig proces-verbaal.",
    },
    "LRV": {
        COORDINATOR: "De casus in het thuiszittersoverleg: welk arrangement past?",
        GEMEENTE: "Verzuimgesprek; samen met school en ouders een plan. De school moet dit bij DUO melden.",
    },
    "V16": {
        COORDINATOR: "Met de school nagaan wat er speelt, voordat het langdurig verzuim wordt.",
        GEMEENTE: "Nagaan of de school het verzuim binnen 5 werkdagen bij DUO meldde; vroeg gesprek.",
    },
    "T3M": {
        COORDINATOR: "Escaleren volgens de afspraken van het Thuiszitterspact, zo nodig met doorzettingsmacht.",
        GEMEENTE: "Samen met de thuiszittercoördinator escaleren (Thuiszitterspact).",
    },
    "PO_GEEN_VO": {
        COORDINATOR: "Contact met de PO-school en de VO-school van aanmelding: ging de leerling naar (v)so of "
                     "buiten de regio?",
        GEMEENTE: "Nagaan of de leerling elders staat ingeschreven; bij twijfel huisbezoek.",
    },
    "MBO_GEEN_AANMELDING": {
        COORDINATOR: "Met de VO-school zorgen voor een mbo-aanmelding en een plek.",
        GEMEENTE: "Contact met de jongere en de VO-school over een aanmelding en een plek.",
    },
    "MBO_NIET_INGESCHREVEN": {
        COORDINATOR: "Met de mbo-instelling nagaan wat er met de aanmelding gebeurde.",
        GEMEENTE: "Contact met de jongere en de mbo-instelling: wat is er met de aanmelding gebeurd?",
    },
    "JZ_WACHT_VERZUIM": {
        COORDINATOR: "Een onderwijs-zorgarrangement, zodat het verzuim niet oploopt terwijl de jongere wacht.",
        GEMEENTE: "Met het jeugdteam zoeken naar overbrugging tot de jeugdhulp start.",
    },
    DOORSTROOMPUNT: {
        COORDINATOR: "Geen SWV-actie: het Doorstroompunt van de gemeente pakt dit op; geef door wat u weet.",
        GEMEENTE: "Doorstroompunt: contact met de jongere over opleiding of werk (18 tot 23 zonder "
                  "startkwalificatie).",
    },
}
# Reasons whose duration is counted in school weeks (holidays do not count); the others in calendar
# weeks, and T3M (the Thuiszitterspact's three months) in calendar months.
SCHOOL_WEEK_REASONS = frozenset({"ABS", "LRV", "V16", "PO_GEEN_VO"})
MONTH_REASONS = frozenset({"T3M"})

# Column -> header, in list order. The municipal lists leave out the residence columns; the follow-up
# columns are left empty for the recipient.
LIST_COLUMNS = {
    "status": "Status",
    "redenen": "Redenen",
    "nieuw": "Nieuw vannacht",
    "opgelost": "Opgelost vannacht",
    "categorie": "Categorie",
    "voornaam": "Roepnaam",
    "tussenvoegsel": "Tussenvoegsel",
    "achternaam": "Achternaam",
    "geboortedatum": "Geboortedatum",
    "bsn": "BSN",
    "onderwijsnummer": "Onderwijsnummer",
    "vo_brin6": "School (BRIN)",
    "schoolnaam": "School",
    "woongemeente_code": "Woongemeente (code)",
    "gemeentenaam": "Woongemeente",
    "buiten_regio": "Buiten regio",
    "sinds": "Sinds",
    "duur": "Duur",
    "omschrijving": "Omschrijving",
    "toelichting": "Toelichting",
    "wat_te_doen": "Wat te doen",
    "eerst_gesignaleerd": "Eerst gesignaleerd",
    "signaal_ids": "Signaal-id's",
    "behandelaar": "Behandelaar",
    "actie": "Actie",
    "datum": "Datum",
}
RESIDENCE_COLUMNS = ("Woongemeente (code)", "Woongemeente", "Buiten regio")
NAME_COLUMNS = ("Roepnaam", "Tussenvoegsel", "Achternaam")  # on every printed page across
FOLLOW_UP_COLUMNS = ("Behandelaar", "Actie", "Datum")
# Order of the rows: what changed tonight first, then by the heaviest reason and the longest-lasting.
STATUS_ORDER = tuple(ALERT_STATUS_LABELS[status] for status in ("new", "reopened", "open", "resolved"))


def rows_of_pupils(frame: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    """The rows of ``frame`` whose ``pupil_key`` is one of ``keys``, in their order: the night's few
    thousand alerted pupils among a million, picked before anything is indexed or de-duplicated."""
    wanted = pa.array(keys.dropna().unique(), type=pa.large_string())
    found = pc.is_in(pa.array(frame["pupil_key"], type=pa.large_string(), from_pandas=True), value_set=wanted)
    return select_rows(frame, pc.fill_null(found, False).to_numpy(zero_copy_only=False))


def latest_names(keys: pd.Series, vo_enrolment: pd.DataFrame, po_transfers: pd.DataFrame) -> pd.DataFrame:
    """Name per pupil key from the latest VO enrolment, else the latest PO transfer."""
    name_columns = ["voornaam", "tussenvoegsel", "achternaam"]
    wanted = pa.array(keys.dropna().unique(), type=pa.large_string())
    parts = []
    for rank, (frame, date) in enumerate(((po_transfers, "aanmelddatum"), (vo_enrolment, "inschrijfdatum"))):
        # The alerted pupils' rows are picked first (a few thousand of millions), then keyed.
        linked = select_rows(frame, key_positions(frame, wanted) >= 0)
        linked = linked.assign(pupil_key=pupil_key(linked), _rank=rank)
        parts.append(linked.loc[:, ["pupil_key", "_rank", date, *name_columns]].rename(columns={date: "_date"}))
    names = pd.concat(parts, ignore_index=True).sort_values(["_rank", "_date"], kind="stable", na_position="first")
    return names.drop_duplicates("pupil_key", keep="last").set_index("pupil_key").loc[:, name_columns]


def durations(alerts: pd.DataFrame, night: dt.date, calendar: Calendar) -> pd.Series:
    """How long each alert's situation has lasted on ``night``, in words (``6 schoolweken``, ``17 weken``).

    School weeks for absence and enrolment reasons (``SchoolWeeks``: holidays neither count nor
    interrupt), calendar months for T3M, calendar weeks for the rest (waiting, 1 April, 1 October).
    A count a rule delivered (``weeks``: an LRV run, a youth-care wait) is used as it is.
    """
    starts = pd.to_datetime(alerts["episode_start"]).to_numpy(dtype="datetime64[D]")
    e = np.datetime64(night, "D")
    school = SchoolWeeks.from_calendar(calendar).weeks_since(starts, night)
    calendar_weeks = (e - starts).astype(np.int64) // 7
    start_ts = pd.DatetimeIndex(starts)
    months = (night.year - start_ts.year) * 12 + (night.month - start_ts.month) - (night.day < start_ts.day)
    reason = alerts["reason"].to_numpy(dtype=object)
    by_school = np.isin(reason, list(SCHOOL_WEEK_REASONS))
    by_month = np.isin(reason, list(MONTH_REASONS))
    delivered = alerts["weeks"].astype("Int64")
    count = np.where(by_school, school, calendar_weeks)
    count = np.where(delivered.notna().to_numpy() & ~by_month, delivered.fillna(0).to_numpy(dtype=np.int64), count)
    unit = np.where(by_school, "schoolweken", "weken")
    words = [f"{int(m)} maanden" if monthly else f"{int(n)} {u}"
             for monthly, m, n, u in zip(by_month, np.asarray(months), count, unit, strict=True)]
    return pd.Series(words, index=alerts.index, dtype="str")


def _per_pupil(values: pd.Series, keys: pd.Series, combine) -> pd.Series:
    """``combine`` of each pupil's values in row order, pupils in order of first appearance.

    What ``values.groupby(keys, sort=False).agg(combine)`` gives, with the rows gathered by a dict:
    pandas' Python aggregation builds a Series per pupil, which for thousands of pupils with a
    signal cost more than the list itself.
    """
    groups: dict = {}
    for key, value in zip(keys.tolist(), values.tolist(), strict=True):
        if key is not None and key == key:  # a missing key belongs to no group, as in groupby
            groups.setdefault(key, []).append(value)
    index = pd.Index(list(groups), dtype=keys.dtype, name=keys.name)
    return pd.Series([combine(group) for group in groups.values()], index=index)


def _lines(frame: pd.DataFrame, column: str) -> pd.Series:
    """Per pupil the column's values of its reasons, one ``CODE: value`` line each, in reason order."""
    text = frame["reason"] + ": " + frame[column].fillna("")
    return _per_pupil(text, frame["pupil_key"], "\n".join)


def _codes(frame: pd.DataFrame, where: pd.Series) -> pd.Series:
    return _per_pupil(frame.loc[where.to_numpy(), "reason"], frame.loc[where.to_numpy(), "pupil_key"], ", ".join)


def pupil_rows(alerts: pd.DataFrame, pupils: pd.DataFrame, vo_enrolment: pd.DataFrame, po_transfers: pd.DataFrame,
               region: Region, night: dt.date) -> pd.DataFrame:
    """One row per pupil with a signal tonight (active, or resolved tonight), in ``LIST_COLUMNS``'
    fields plus ``wat_te_doen_coordinator`` and ``wat_te_doen_gemeente``, sorted for reading."""
    order = {reason: rank for rank, reason in enumerate(REASONS)}
    frame = alerts.assign(
        rank=alerts["reason"].map(order).fillna(len(order)).astype("int64"),
        active=alerts["status"].isin(ACTIVE_STATUSES),
        omschrijving=alerts["reason"].map(REASONS).astype("str"),
        duur=durations(alerts, night, region.calendar),
        **{f"todo_{who}": alerts["reason"].map({r: texts[who] for r, texts in WHAT_TO_DO.items()}).astype("str")
           for who in (COORDINATOR, GEMEENTE)},
    ).sort_values(["pupil_key", "rank"], kind="stable")
    has_active = frame.groupby("pupil_key")["active"].transform("any")
    # The reasons a row describes: the current ones; a pupil whose every signal ended tonight, those.
    shown = frame.loc[(frame["active"] | ~has_active).to_numpy()]
    shown = shown.assign(duur=shown["duur"] + " (sinds " + pd.to_datetime(shown["episode_start"])
                         .dt.strftime("%d-%m-%Y").astype("str") + ")")
    first = shown.drop_duplicates("pupil_key").set_index("pupil_key")

    statuses = _per_pupil(frame["status"], frame["pupil_key"], set)
    status = statuses.map(lambda s: "resolved" if not s & set(ACTIVE_STATUSES) else "open" if "open" in s
                          else "reopened" if "reopened" in s else "new").map(ALERT_STATUS_LABELS)
    rows = pd.DataFrame({
        "status": status.reindex(first.index).astype("str"),
        "redenen": _per_pupil(shown["reason"], shown["pupil_key"], ", ".join).reindex(first.index),
        "nieuw": _codes(frame, frame["status"].isin(["new", "reopened"])).reindex(first.index),
        "opgelost": _codes(frame, frame["status"].eq("resolved")).reindex(first.index),
        "categorie": _per_pupil(shown["category"], shown["pupil_key"],
                                lambda c: ", ".join(dict.fromkeys(c))).reindex(first.index),
        "vo_brin6": first["vo_brin6"],
        "woongemeente_code": first["woongemeente_code"],
        "buiten_regio": first["buiten_regio"].astype("boolean"),
        "sinds": pd.to_datetime(shown.groupby("pupil_key", sort=False)["episode_start"].min()).reindex(first.index),
        "duur": _lines(shown, "duur").reindex(first.index),
        "omschrijving": _lines(shown, "omschrijving").reindex(first.index),
        "toelichting": _lines(shown, "detail").reindex(first.index),
        "wat_te_doen_coordinator": _lines(shown, f"todo_{COORDINATOR}").reindex(first.index),
        "wat_te_doen_gemeente": _lines(shown, f"todo_{GEMEENTE}").reindex(first.index),
        "eerst_gesignaleerd": pd.to_datetime(frame.groupby("pupil_key")["first_night"].min()).reindex(first.index),
        "signaal_ids": _per_pupil(frame["reason"] + " " + frame["alert_id"], frame["pupil_key"],
                                  "\n".join).reindex(first.index),
    }, index=first.index).astype({name: "str" for name in ("redenen", "nieuw", "opgelost", "categorie", "duur",
                                                           "omschrijving", "toelichting", "signaal_ids")})

    people = rows_of_pupils(pupils, rows.index.to_series()).drop_duplicates("pupil_key", keep="last")
    identity = people.set_index("pupil_key").reindex(rows.index)
    names = latest_names(rows.index.to_series(), vo_enrolment, po_transfers).reindex(rows.index)
    rows = rows.assign(
        bsn=identity["bsn"], onderwijsnummer=identity["onderwijsnummer"], geboortedatum=identity["geboortedatum"],
        voornaam=names["voornaam"], tussenvoegsel=names["tussenvoegsel"], achternaam=names["achternaam"],
        schoolnaam=names_of(rows["vo_brin6"]),
        gemeentenaam=rows["woongemeente_code"].map({g.code: g.naam for g in region.gemeenten}).astype("str"),
        behandelaar=pd.Series(pd.NA, index=rows.index, dtype="str"),
        actie=pd.Series(pd.NA, index=rows.index, dtype="str"),
        datum=pd.Series(pd.NA, index=rows.index, dtype="str"),
        _status=rows["status"].map({s: i for i, s in enumerate(STATUS_ORDER)}),
        _rank=first["rank"],
    )
    rows = rows.sort_values(["_status", "_rank", "sinds", "achternaam", "voornaam"], kind="stable",
                            na_position="last").rename_axis("pupil_key").reset_index()
    return rows.drop(columns=["_status", "_rank"])


def signal_lists(alerts: pd.DataFrame, pupils: pd.DataFrame, vo_enrolment: pd.DataFrame,
                 po_transfers: pd.DataFrame, region: Region, *,
                 night: dt.date) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The coordinator's list (every pupil with a signal) and one list per municipality of the region.

    One row per pupil (``pupil_rows``), Dutch headers (``LIST_COLUMNS``). A municipality's list holds
    only its own residents (current ``woongemeente_code``), without the residence columns, with what
    leerplicht and the Doorstroompunt do; pupils living outside the region appear on the
    coordinator's list only. No list carries youth-care products, providers or diagnoses: the alerts
    never hold them.
    """
    rows = pupil_rows(alerts, pupils, vo_enrolment, po_transfers, region, night)

    def as_list(frame: pd.DataFrame, who: str) -> pd.DataFrame:
        table = frame.assign(wat_te_doen=frame[f"wat_te_doen_{who}"]).loc[:, list(LIST_COLUMNS)]
        return table.rename(columns=LIST_COLUMNS).reset_index(drop=True)

    coordinator = as_list(rows, COORDINATOR)
    own = ~rows["buiten_regio"].fillna(False).to_numpy(dtype=bool)
    municipal = {
        code: as_list(rows.loc[own & rows["woongemeente_code"].eq(code).fillna(False).to_numpy()], GEMEENTE)
        .drop(columns=list(RESIDENCE_COLUMNS))
        for code in region.gemeente_codes
    }
    return coordinator, municipal


# ---------------------------------------------------------------------------------------------
# The printable digest

_CSS = """
@page { size: A4 landscape; margin: 12mm 10mm 14mm 10mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif; font-size: 9pt; color: #111;
       margin: 0 1mm; }
h1 { font-size: 15pt; margin: 0 0 2mm 0; }
h2 { font-size: 11.5pt; margin: 5mm 0 2mm 0; }
p { margin: 0 0 2mm 0; }
.meta { color: #444; }
.privacy { border: 1px solid #999; padding: 1.5mm 2.5mm; margin: 2mm 0 3mm 0; }
.counts { display: flex; gap: 3mm; margin: 2mm 0 1mm 0; }
.count { border: 1px solid #777; padding: 2mm 3mm; min-width: 34mm; }
.count b { display: block; font-size: 16pt; }
table { border-collapse: collapse; width: 100%; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; break-inside: avoid; }
th, td { border: 1px solid #999; padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #e8e8e8; }
td.num { text-align: right; }
td.notes { width: 32mm; }
.id { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 7.5pt; }
.status-nieuw, .status-heropend { font-weight: bold; }
.empty { font-style: italic; }
"""


def _cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value) or value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp | dt.date):
        return value.strftime("%d-%m-%Y")
    return html.escape(str(value)).replace("\n", "<br>")


def _row(cells: list[str], classes: Mapping[int, str] | None = None) -> str:
    classes = classes or {}
    return "<tr>" + "".join(f'<td class="{classes[i]}">{c}</td>' if i in classes else f"<td>{c}</td>"
                            for i, c in enumerate(cells)) + "</tr>"


def digest_html(table: pd.DataFrame, *, recipient: str, night: dt.date, swv: str, who: str) -> str:
    """The list of one recipient as a printable page: counts on top, what to do per reason, then the pupils.

    ``table`` is that recipient's list (``signal_lists``); ``who`` is ``coordinator`` or ``gemeente``
    (the wording of what to do). BSN and onderwijsnummer are left out (docs/signalen.md "Het overzicht").
    """
    active = table.loc[table["Status"].ne(ALERT_STATUS_LABELS["resolved"]).to_numpy()]
    reasons = active["Redenen"].str.split(", ").explode().dropna()
    per_reason = reasons.value_counts()
    new = int(table["Nieuw vannacht"].notna().sum())
    resolved = int(table["Opgelost vannacht"].notna().sum())
    day = night.strftime("%d-%m-%Y")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="nl"><head><meta charset="utf-8">',
        f"<title>Signalen {html.escape(recipient)} {day}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Signalen thuiszitters en uitstroom: {html.escape(recipient)}</h1>",
        f'<p class="meta">Nacht van {day} · samenwerkingsverband {html.escape(swv)} · '
        f"{len(table)} leerlingen op deze lijst</p>",
        '<p class="privacy">Vertrouwelijk: persoonsgegevens van leerlingen. Niet doorsturen buiten uw organisatie; '
        "vernietig de afdruk na gebruik. Gebruik in overleg het signaal-id in plaats van naam of BSN.</p>",
        '<div class="counts">',
        f'<div class="count"><b>{len(active)}</b>leerlingen met een open signaal</div>',
        f'<div class="count"><b>{new}</b>met een nieuw signaal vannacht</div>',
        f'<div class="count"><b>{resolved}</b>met een signaal opgelost vannacht</div>',
        "</div>",
    ]
    if len(per_reason):
        parts += ["<h2>Per reden: wat te doen</h2>", "<table><thead><tr><th>Reden</th><th>Leerlingen</th>"
                  "<th>Betekenis</th><th>Wat te doen</th></tr></thead><tbody>"]
        for reason in [r for r in REASONS if r in per_reason.index]:
            parts.append(_row([html.escape(reason), str(int(per_reason[reason])), _cell(REASONS[reason]),
                               _cell(WHAT_TO_DO[reason][who])], {1: "num"}))
        parts.append("</tbody></table>")
    parts.append("<h2>Leerlingen</h2>")
    if not len(table):
        parts.append('<p class="empty">Geen signalen vannacht.</p>')
    else:
        residence = "Woongemeente" in table.columns
        headers = ["Status", "Naam en geboortedatum", "School", *(["Woongemeente"] if residence else []),
                   "Reden en duur", "Toelichting", "Vannacht", "Signaal-id's", "Behandelaar, actie, datum"]
        parts.append("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr></thead><tbody>")
        for row in table.to_dict("records"):
            name = " ".join(str(row[c]) for c in ("Roepnaam", "Tussenvoegsel", "Achternaam")
                            if isinstance(row[c], str) and row[c])
            school = " ".join(str(row[c]) for c in ("School", "School (BRIN)") if isinstance(row[c], str))
            tonight = "; ".join(f"{label}: {row[column]}" for label, column in
                                ((ALERT_STATUS_LABELS["new"], "Nieuw vannacht"),
                                 (ALERT_STATUS_LABELS["resolved"], "Opgelost vannacht"))
                                if isinstance(row[column], str))
            lives = "buiten de regio" if row.get("Buiten regio") is True else row.get("Woongemeente")
            gemeente = [_cell(lives)] if residence else []
            cells = [_cell(row["Status"]), _cell(name) + "<br>" + _cell(row["Geboortedatum"]), _cell(school), *gemeente,
                     _cell(row["Duur"]), _cell(row["Toelichting"]), _cell(tonight),
                     '<span class="id">' + _cell(row["Signaal-id's"]) + "</span>", ""]
            parts.append(_row(cells, {0: f"status-{row['Status']}", len(cells) - 1: "notes"}))
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def deliver_signal_lists(outbox: Outbox, night: dt.date, coordinator: pd.DataFrame,
                         municipal: dict[str, pd.DataFrame], region: Region) -> dict[str, WrittenFolder]:
    """Write the lists (CSV, XLSX and the HTML digest, atomically, with a manifest) under ``signalen/<night>/``."""
    day = night.isoformat()
    recipients = [("coordinator", outbox.folder("signalen", day), "signalen_thuiszittercoordinator", coordinator,
                   f"thuiszittercoördinator {region.swv.naam}", COORDINATOR)]
    names = {g.code: g.naam for g in region.gemeenten}
    recipients += [(code, outbox.folder("signalen", day, "gemeenten", code), f"signalen_{code}", frame,
                    f"gemeente {names[code]} ({code}), leerplicht en Doorstroompunt", GEMEENTE)
                   for code, frame in municipal.items()]
    written = {}
    for key, folder, stem, table, recipient, who in recipients:
        title = f"Signalen {night.strftime('%d-%m-%Y')}: {recipient}"
        files = table_files(stem, table, sheet="Signalen", printing=Print(title, NAME_COLUMNS))
        page = digest_html(table, recipient=recipient, night=night, swv=region.swv.code, who=who)
        files[f"{stem}.html"] = (page.encode("utf-8"), len(table))
        written[key] = write_folder(folder, files, {"evaluatiedatum": day, "ontvanger": recipient,
                                                    "swv": region.swv.code})
    return written
