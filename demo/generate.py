"""The deterministic demo region: every delivery of a region YAML, plus the truth the tests check.

``generate_region`` builds the clean world (``demo.population``), routes each dataset's rows to
the sources that deliver it, renders them as the YAML describes (``demo.render``), spoils about
1.5% of the rows with the defects validation must catch, writes the files and records what the
pipeline must find: the planted alerts, every defect with its rule, the pupils whose parents gave
no consent, the pupils living outside the region and the handovers. The pipeline never reads the
truth file; tests do.

Same seed, same region and same size give byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from demo.population import ADVICE, FORBIDDEN_POSTCODE_LETTERS, RANK, REGION_PUPILS, World, build_world, member
from demo.render import delivered_path, labels, render_column, render_rows, write_delivery
from schemas.datasets import canonical_fields, consent_gated_fields
from settings.region import DATASETS, AlertThresholds, Region, Source

DEFECT_RATE = 0.015  # share of a dataset's rows that is spoiled, spread evenly over the defect kinds
FILE_TOKENS = {  # what replaces '*' in a source's path glob, per dataset
    "po_transfers": "bestuur_{group}",
    "vo_enrolment": "{group}",
    "vo_absence": "{group}",
    "youth_care_waitlist": "wachtlijst_{date}",
    "mbo_outflow": "vva_{date}",
}
UNKNOWN_LABELS = {"definitief_advies": "VMBO XL", "onderwijsniveau": "VMBO XL", "vva_status": "in behandeling"}
HOURS_IN_WORDS = ("twee", "drie uur", "n.v.t.", "?")
TRUTH_DATASETS = ("po_transfers", "mbo_outflow", "vo_enrolment")  # whose clean rows the truth lists


@dataclass
class Delivery:
    """One source's rows: canonical (with bookkeeping columns) and as delivered, on the same index."""

    source_id: str
    source: Source
    canonical: pd.DataFrame
    delivered: pd.DataFrame | None = field(default=None, repr=False)
    duplicated: list[int] = field(default_factory=list)  # index labels delivered twice
    defects: list[tuple] = field(default_factory=list)  # (label, kind, rule, field, is a doubled row)


@dataclass(frozen=True)
class Context:
    """What the defect makers need besides the rows: the random stream, the world, the source."""

    rng: np.random.Generator
    region: Region
    world: World
    source: Source | None = None

    def render(self, field: str, values: pd.Series) -> pd.Series:
        """Canonical values as this source delivers them."""
        return render_column(values, field, self.source, self.region)


# --------------------------------------------------------------------------- defects


def _wrong_check_digit(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    """Change the last digit: any single-digit change breaks the elfproef."""
    values = rows[field]
    shift = pd.Series(ctx.rng.integers(1, 10, len(rows)), index=rows.index)
    last = (values.str[8].astype(int) + shift) % 10
    return {field: values.str[:8] + last.astype(str)}


def _no_identifier(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    return {name: None for name in ("bsn", "onderwijsnummer") if name in ctx.source.columns.values()}


def _unknown_school(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    """Well-formed BRIN6 codes that are not in the DUO school file."""
    known, codes = ctx.world.schools.known_brin6, []
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    while len(codes) < len(rows):
        code = f"{ctx.rng.integers(0, 100):02d}{''.join(ctx.rng.choice(letters, 2))}{ctx.rng.integers(0, 100):02d}"
        if code not in known:
            codes.append(code)
    return {field: codes}


def _cut_short(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    return {field: rows[field].str[:5]}


def _impossible_date(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    """31 February, written in the source's own date format."""
    fmt = ctx.source.date_format
    return {field: [fmt.replace("%d", "31").replace("%m", "02").replace("%Y", str(y)).replace("%y", f"{y % 100:02d}")
                    for y in rows[field].dt.year]}


def _future_date(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    """A Monday 1-26 weeks after the evaluation date."""
    evaluation = pd.Timestamp(ctx.world.year.evaluation)
    monday = evaluation + pd.Timedelta(days=(7 - evaluation.weekday()) % 7)
    weeks = ctx.rng.integers(1, 27, len(rows))
    return {field: ctx.render(field, pd.Series(monday + pd.to_timedelta(7 * weeks, unit="D"), index=rows.index))}


EARLIER_FIELD = {"startdatum": "aanmelddatum", "uitschrijfdatum": "inschrijfdatum"}


def _end_before_start(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    earlier = rows[EARLIER_FIELD[field]] - pd.to_timedelta(ctx.rng.integers(7, 120, len(rows)), unit="D")
    return {field: ctx.render(field, earlier)}


def _missing(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    return {field: None}


def _unknown_label(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    label = UNKNOWN_LABELS[field]
    assert label not in labels(field, ctx.source, ctx.region).values() and label not in ADVICE
    return {field: label}


def _mojibake(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    """A first name with diacritics whose UTF-8 bytes were read as Windows-1252 ('Zoë' -> 'ZoÃ«')."""
    return {field: list(ctx.rng.choice(ctx.world.names.garbled_first_names(), len(rows)))}


def _bad_postcode(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    """Alternately a forbidden letter pair (SA, SD, SS) and a leading zero (domain.md §3)."""
    values = rows[field]
    forbidden = pd.Series(ctx.rng.choice(FORBIDDEN_POSTCODE_LETTERS, len(rows)), index=rows.index)
    leading_zero = "0" + values.str[1:]
    return {field: np.where(np.arange(len(rows)) % 2 == 0, values.str[:4] + forbidden, leading_zero)}


def _lowered_advice(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    lower = [ADVICE[RANK[code] - 1] for code in rows["voorlopig_advies"]]
    return {field: ctx.render(field, pd.Series(lower, index=rows.index, dtype="str"))}


def _seven_digits(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    return {field: rows[field].str[1:]}


def _short_gemeentecode(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    return {field: rows[field].str[:2] + rows[field].str[3:]}  # GM0118 -> GM118


def _implausible_birthdate(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    """Born 1995-2001: a groep-8 or VO pupil of 25 or more."""
    days = ctx.rng.integers(0, (dt.date(2001, 12, 31) - dt.date(1995, 1, 1)).days, len(rows))
    born = pd.Timestamp("1995-01-01") + pd.to_timedelta(days, unit="D")
    return {field: ctx.render(field, pd.Series(born, index=rows.index))}


def _hours_in_words(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    return {field: list(ctx.rng.choice(HOURS_IN_WORDS, len(rows)))}


def _short_timetable(rows: pd.DataFrame, field: str, ctx: Context) -> dict:
    """Scheduled hours one below the week's absence (a timetable of another week, say)."""
    absent = rows["uren_ongeoorloofd"].fillna(0) + rows["uren_geoorloofd"].fillna(0)
    return {field: ctx.render(field, absent - 1)}


def _absent_and_scheduled(rows: pd.DataFrame, field: str) -> pd.Series:
    return rows[field].notna() & (rows["uren_ongeoorloofd"].fillna(0) + rows["uren_geoorloofd"].fillna(0) >= 1)


def _has_value(rows: pd.DataFrame, field: str) -> pd.Series:
    return rows[field].notna()


def _any_row(rows: pd.DataFrame, field: str) -> pd.Series:
    return pd.Series(True, index=rows.index)


def _may_be_doubled(rows: pd.DataFrame, field: str) -> pd.Series:
    """A doubled row still reaches the pipeline once, so it must not be one the truth follows."""
    return rows.dup_ok


def _not_yet_in_care(rows: pd.DataFrame, field: str) -> pd.Series:
    """A future registration date is only spoiled on rows without later dates, so no other rule trips."""
    later = [f for f in ("besluitdatum", "intakedatum", "startdatum", "einddatum") if f in rows]
    return rows[field].notna() & rows[later].isna().all(axis=1)


def _can_end_early(rows: pd.DataFrame, field: str) -> pd.Series:
    start = rows[EARLIER_FIELD[field]].notna()
    return start & (rows[field].notna() if field == "startdatum" else rows[field].isna())


def _lowerable(rows: pd.DataFrame, field: str) -> pd.Series:
    return rows[field].notna() & rows["voorlopig_advies"].map(RANK).fillna(0).gt(0)


@dataclass(frozen=True)
class Defect:
    """One kind of defective row: the validation rule it breaks and the field it spoils per dataset."""

    kind: str
    rule: str
    fields: dict[str, str | None]
    spoil: Callable[[pd.DataFrame, str, Context], dict] | None
    qualifies: Callable[[pd.DataFrame, str], pd.Series] = _has_value
    needs: tuple[str, ...] = ()

    def field_for(self, source: Source) -> str | None:
        """The field this defect spoils in a source, or '' when the source cannot carry it."""
        target = self.fields.get(source.dataset, "")
        mapped = set(source.columns.values())
        if target == "" or (target is not None and target not in mapped) or not set(self.needs) <= mapped:
            return ""
        return target


EVERY_DATASET = dict.fromkeys(DATASETS, "bsn")
PUPILS_WITH_ONDERWIJSNUMMER = ("po_transfers", "vo_enrolment", "vo_absence", "mbo_outflow")
DEFECTS = (
    Defect("invalid_bsn", "bsn_elfproef", EVERY_DATASET, _wrong_check_digit),
    Defect("invalid_onderwijsnummer", "onderwijsnummer_valid", dict.fromkeys(PUPILS_WITH_ONDERWIJSNUMMER, "onderwijsnummer"),
           _wrong_check_digit),
    Defect("no_identifier", "one_identifier", EVERY_DATASET, _no_identifier, qualifies=_any_row),
    Defect("unknown_school", "known_school", {"po_transfers": "po_brin6", "vo_enrolment": "vo_brin6",
                                              "vo_absence": "vo_brin6", "mbo_outflow": "vo_brin6"}, _unknown_school),
    Defect("malformed_brin6", "brin6_format", dict.fromkeys(PUPILS_WITH_ONDERWIJSNUMMER, "vo_brin6"), _cut_short),
    Defect("impossible_date", "date_parse", {"po_transfers": "geboortedatum", "youth_care_waitlist": "geboortedatum",
                                             "vo_enrolment": "geboortedatum", "vo_absence": "week_start",
                                             "mbo_outflow": "geboortedatum"}, _impossible_date),
    Defect("future_date", "not_in_future", {"po_transfers": "aanmelddatum", "youth_care_waitlist": "aanmelddatum",
                                            "vo_absence": "week_start", "mbo_outflow": "status_datum"},
           _future_date, qualifies=_not_yet_in_care),
    Defect("end_before_start", "date_order", {"youth_care_waitlist": "startdatum", "vo_enrolment": "uitschrijfdatum"},
           _end_before_start, qualifies=_can_end_early, needs=("aanmelddatum",)),
    Defect("duplicate_row", "duplicate_row", dict.fromkeys(DATASETS), None, qualifies=_may_be_doubled),
    Defect("missing_required", "required", {"po_transfers": "schooljaar", "youth_care_waitlist": "aanmelddatum",
                                            "vo_enrolment": "inschrijfdatum", "vo_absence": "uren_ongeoorloofd",
                                            "mbo_outflow": "vo_brin6"}, _missing),
    Defect("unknown_code", "unknown_code", {"po_transfers": "definitief_advies", "vo_enrolment": "onderwijsniveau",
                                            "mbo_outflow": "vva_status"}, _unknown_label),
    Defect("mojibake", "mojibake", {"po_transfers": "voornaam", "vo_enrolment": "voornaam"}, _mojibake),
    Defect("invalid_postcode", "postcode_format", {"po_transfers": "postcode", "vo_enrolment": "postcode"}, _bad_postcode),
    Defect("advice_lowered", "advice_not_lowered", {"po_transfers": "definitief_advies"}, _lowered_advice,
           qualifies=_lowerable, needs=("voorlopig_advies",)),
    Defect("invalid_agb", "agb_format", {"youth_care_waitlist": "zorgaanbieder_agb"}, _seven_digits),
    Defect("malformed_gemeentecode", "gemeentecode_format",
           {d: "woongemeente_code" for d in ("po_transfers", "youth_care_waitlist", "vo_enrolment", "mbo_outflow")},
           _short_gemeentecode),
    Defect("implausible_birthdate", "birthdate_plausible", {"po_transfers": "geboortedatum", "vo_enrolment": "geboortedatum"},
           _implausible_birthdate),
    Defect("non_numeric_hours", "number_parse", {"vo_absence": "uren_ongeoorloofd"}, _hours_in_words),
    Defect("absence_above_schedule", "absence_within_schedule", {"vo_absence": "uren_rooster"}, _short_timetable,
           qualifies=_absent_and_scheduled),
)


def defect_counts(rows: int, kinds: int) -> list[int]:
    """Rows to spoil per applicable kind: DEFECT_RATE of the rows, at least one of each kind."""
    total = max(kinds, round(DEFECT_RATE * rows))
    return [total // kinds + (i < total % kinds) for i in range(kinds)]


def applicable_defects(sources: list[Source]) -> list[Defect]:
    """The defect kinds at least one of a dataset's sources can carry, in DEFECTS order."""
    return [d for d in DEFECTS if any(d.field_for(source) != "" for source in sources)]


def _spoil(deliveries: list[Delivery], ctx: Context) -> None:
    """Spoil rows of one dataset's deliveries: one defect per row, only rows marked ``defect_ok``."""
    kinds = applicable_defects([d.source for d in deliveries])
    used = [np.zeros(len(d.canonical), dtype=bool) for d in deliveries]
    for defect, count in zip(kinds, defect_counts(sum(len(d.canonical) for d in deliveries), len(kinds))):
        targets = [defect.field_for(d.source) for d in deliveries]
        candidates = [
            np.flatnonzero(d.canonical.defect_ok.to_numpy() & ~used[i]
                           & defect.qualifies(d.canonical, target).to_numpy(dtype=bool, na_value=False))
            if target != "" else np.empty(0, dtype=np.int64)
            for i, (d, target) in enumerate(zip(deliveries, targets))
        ]
        owner = np.repeat(np.arange(len(deliveries)), [len(c) for c in candidates])
        flat = np.concatenate(candidates)
        chosen = np.sort(ctx.rng.choice(len(flat), size=min(count, len(flat)), replace=False))
        for i, delivery in enumerate(deliveries):
            positions = flat[chosen[owner[chosen] == i]]
            if not len(positions):
                continue
            used[i][positions] = True
            rows = delivery.canonical.iloc[positions]
            if defect.spoil is None:
                delivery.duplicated.extend(rows.index)
            else:
                inverse = {f: column for column, f in delivery.source.columns.items()}
                for spoiled_field, values in defect.spoil(rows, targets[i], replace(ctx, source=delivery.source)).items():
                    values = pd.Series(values, index=rows.index, dtype=object)
                    delivery.delivered.loc[rows.index, inverse[spoiled_field]] = values.where(values.notna(), None)
            delivery.defects += [(label, defect.kind, defect.rule, targets[i], defect.spoil is None) for label in rows.index]


# --------------------------------------------------------------------------- routing and writing


def _canonical(world: World, dataset: str) -> pd.DataFrame:
    """Every canonical field of a dataset: its own rows plus the persons' identity fields."""
    rows = world.rows[dataset]
    fields = canonical_fields(dataset)
    identity = [f for f in fields if f not in rows and f in world.persons]
    who = world.persons[identity].iloc[rows.pid.to_numpy()].set_axis(rows.index)
    frame = pd.concat([rows, who], axis=1)
    for missing in (f for f in fields if f not in frame):
        frame[missing] = pd.Series(pd.NA, index=frame.index, dtype="str")
    return frame


def _route(world: World, region: Region, dataset: str) -> list[Delivery]:
    """Split a dataset over its sources: by gemeente where sources name one, else by group."""
    sources = region.sources_for(dataset)
    if not sources:  # the world only holds datasets the region delivers
        return []
    frame = _canonical(world, dataset)
    ids = list(sources)
    if any(s.gemeente for s in sources.values()):
        owner = frame.woongemeente_code.map({s.gemeente: sid for sid, s in sources.items()})
    else:
        groups = sorted(frame.group.unique())
        owner = frame.group.map({g: ids[i % len(ids)] for i, g in enumerate(groups)})
    date = f"{world.year.evaluation:%Y%m%d}"
    deliveries = []
    for sid in ids:
        part = frame[(owner == sid).to_numpy(dtype=bool, na_value=False)].reset_index(drop=True)
        if dataset == "mbo_outflow":
            part = _with_status_history(part, sources[sid])
        paths = {g: delivered_path(sid, sources[sid], FILE_TOKENS[dataset].format(group=g, date=date))
                 for g in part.group.unique()}
        deliveries.append(Delivery(sid, sources[sid], part.assign(file=part.group.map(paths))))
    return deliveries


def _with_status_history(rows: pd.DataFrame, source: Source) -> pd.DataFrame:
    """VVA rows as a feed without application dates delivers them (``derive``, docs/configuration.md): each
    application's first status, 'aanmelding ontvangen' on the application date, as a row of its own.

    The history rows (``history``) are left out of the truth, which counts applications. An application
    with a history is never spoiled: its quarantined status row would leave the first status alone.
    """
    if "aanmelddatum" not in source.derive or "aanmelddatum" in source.columns.values():
        return rows
    applied = rows.aanmelddatum.notna().to_numpy()
    received = rows.vva_status.eq("aanmelding_ontvangen").fillna(False).to_numpy(dtype=bool)
    current = rows.assign(status_datum=rows.status_datum.where(~received, rows.aanmelddatum),
                          defect_ok=rows.defect_ok & ~applied, history=False)
    first = rows.loc[applied & ~received]
    first = first.assign(vva_status=pd.Series("aanmelding_ontvangen", index=first.index, dtype="str"),
                         status_datum=first.aanmelddatum, defect_ok=False, dup_ok=False, history=True)
    return pd.concat([current, first], ignore_index=True)


def _written_order(delivery: Delivery) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The order rows are written in: by file, each duplicate right after its original.

    Returns the canonical label of each written row, whether it is a second copy, and the
    position where each file starts.
    """
    file_code = pd.factorize(delivery.canonical.file, sort=True)[0]
    copies = np.sort(np.asarray(delivery.duplicated, dtype=np.int64))
    labels = np.concatenate([np.arange(len(file_code)), copies])
    second = np.concatenate([np.zeros(len(file_code), dtype=bool), np.ones(len(copies), dtype=bool)])
    order = np.lexsort((second, labels, file_code[labels]))
    labels, second = labels[order], second[order]
    return labels, second, np.flatnonzero(np.diff(file_code[labels], prepend=-1))


def _write(delivery: Delivery, sources_dir: Path, peildatum: dt.date, mtime: float) -> tuple[list[dict], dict]:
    """Write a source's files; return its defects located by file and row, and its counts."""
    labels, second, starts = _written_order(delivery)
    rows = delivery.delivered.iloc[labels]
    files = delivery.canonical.file.to_numpy(dtype=object)[labels[starts]]
    for file, start, end in zip(files, starts, np.append(starts[1:], len(rows))):
        write_delivery(rows.iloc[start:end].reset_index(drop=True), sources_dir / file, delivery.source,
                       peildatum=peildatum, mtime=mtime)
    position = np.empty(len(delivery.canonical), dtype=np.int64)
    position[labels[~second]] = np.flatnonzero(~second)
    copy_position = dict(zip(labels[second].tolist(), np.flatnonzero(second).tolist()))
    http = delivery.source.location.kind == "http"
    defects = []
    for label, kind, rule, spoiled_field, doubled in delivery.defects:
        at = copy_position[label] if doubled else int(position[label])
        file = int(np.searchsorted(starts, at, side="right")) - 1
        defects.append({"source_id": delivery.source_id, "delivery": "" if http else files[file],
                        "row": at - int(starts[file]) + 1, "kind": kind, "rule": rule, "field": spoiled_field})
    counts = {"dataset": delivery.source.dataset, "files": len(starts), "rows": len(rows), "defects": len(defects)}
    return defects, counts


def _clear_stale(sources_dir: Path, region: Region) -> None:
    """Remove old deliveries a source's glob would pick up (a smaller run leaves fewer files)."""
    for source_id, source in region.sources.items():
        pattern = source.location.path if source.location.kind == "file" else f"api/{source_id}.json"
        for stale in sources_dir.glob(pattern):
            stale.unlink()


def _delivery_time(evaluation: dt.date) -> float:
    """Deliveries arrive the evening before the evaluation date (a fixed, reproducible mtime)."""
    evening = dt.datetime.combine(evaluation - dt.timedelta(days=1), dt.time(22, 0), ZoneInfo("Europe/Amsterdam"))
    return evening.timestamp()


# --------------------------------------------------------------------------- truth


def _ids(world: World, pids) -> list[dict]:
    who = world.persons.iloc[np.asarray(pids, dtype=np.int64)]
    return [{"bsn": b} if isinstance(b, str) else {"onderwijsnummer": o}
            for b, o in zip(who.bsn.to_numpy(dtype=object), who.onderwijsnummer.to_numpy(dtype=object))]


def _by_id(entries, id_of=lambda entry: entry["id"]) -> list:
    """Entries sorted by identifier, so the truth file does not depend on generation order."""
    return sorted(entries, key=lambda entry: next(iter(id_of(entry).items())))


def _json_value(value):
    return None if pd.isna(value) else bool(value) if isinstance(value, (bool, np.bool_)) else str(value)


def _truth(world: World, clean: dict[str, pd.DataFrame], delivered: np.ndarray) -> dict:
    """Alerts, consent, residence and handovers as the pipeline must find them in the clean rows."""
    transfers, outflow, enrolments = (clean.get(dataset, pd.DataFrame(columns=["pid", *canonical_fields(dataset)]))
                                      for dataset in TRUTH_DATASETS)
    alerts = world.alerts
    no_consent = transfers[transfers.ondersteuningsbehoefte.fillna(False) & transfers.toestemming_ouders.eq(False).fillna(False)]
    gated = sorted(consent_gated_fields("po_transfers"))
    # Routing follows the pupil: to the school of a running enrolment, else to the school of the aanmelding;
    # only this school year's and the coming one's transfers.
    first = world.year.start.year
    transfers_now = transfers[transfers.schooljaar.isin([f"{first}-{first + 1}", f"{first + 1}-{first + 2}"])]
    evaluation = np.datetime64(world.year.evaluation, "D")
    ends = enrolments.uitschrijfdatum.to_numpy(dtype="datetime64[D]")
    running = enrolments[np.isnat(ends) | (ends > evaluation)].sort_values("inschrijfdatum", kind="stable")
    enrolled_at = running.drop_duplicates("pid", keep="last").set_index("pid").vo_brin6
    registered = transfers_now.vo_brin6.where(transfers_now.aanmelddatum.notna())
    handed_over = transfers_now.assign(vo_brin6=transfers_now.pid.map(enrolled_at).fillna(registered))
    handed_over = handed_over[handed_over.vo_brin6.notna()]
    applied = outflow[outflow.mbo_brin.notna()]
    persons = world.persons
    outside = persons.pid[persons.out_of_region.to_numpy() & member(persons.pid, delivered)]
    return {
        "alerts": _by_id({"id": i, "woongemeente_code": g, "reasons": list(r)} for i, g, r in zip(
            _ids(world, alerts.pid), persons.woongemeente_code.iloc[alerts.pid].to_numpy(dtype=object), alerts.reasons)),
        "no_consent": _by_id({"id": i, "values": {f: _json_value(v) for f, v in zip(gated, values)}}
                             for i, values in zip(_ids(world, no_consent.pid), no_consent[gated].itertuples(index=False))),
        "out_of_region": _by_id(_ids(world, outside), id_of=lambda entry: entry),
        "handovers_po_vo": _by_id({"id": i, "vo_brin6": v}
                                  for i, v in zip(_ids(world, handed_over.pid), handed_over.vo_brin6.to_numpy(dtype=object))),
        "handovers_vo_mbo": _by_id({"id": i, "mbo_brin": v}
                                   for i, v in zip(_ids(world, applied.pid), applied.mbo_brin.to_numpy(dtype=object))),
    }


def _dump(truth: dict) -> str:
    """Sorted keys, one list entry per line: readable, diffable, and fast (C JSON encoder)."""
    parts = []
    for key in sorted(truth):
        value = truth[key]
        if isinstance(value, list) and value:
            body = ",\n".join("  " + json.dumps(item, sort_keys=True, ensure_ascii=False) for item in value)
            parts.append(f' "{key}": [\n{body}\n ]')
        else:
            parts.append(f' "{key}": ' + json.dumps(value, sort_keys=True, ensure_ascii=False))
    return "{\n" + ",\n".join(parts) + "\n}\n"


# --------------------------------------------------------------------------- entry point


def generate_region(region: Region, sources_dir: Path, truth_path: Path, *, seed: int = 2203, pupils: int | None = None,
                    progress: Callable[[str], None] | None = None,
                    school_gemeenten: Sequence[str] | None = None) -> dict:
    """Write every delivery of ``region`` under ``sources_dir`` and the truth file; return the counts.

    ``pupils`` is the number of VO pupils (default: the real region's size); all other volumes
    scale with it. The evaluation date is the region's ``reference_date`` (today when unset, which
    makes the output depend on the day). ``school_gemeenten``: the municipalities whose schools
    the pupils attend (default: the region's own; ``demo.population.build_world``).
    """
    if region.alerts != AlertThresholds():
        # The planted situations keep margins to the documented default thresholds; with other
        # thresholds the truth file would be wrong, so say so instead of writing it.
        raise ValueError("the demo generator plants alert situations for the default thresholds of "
                         "docs/alerts.md; remove the 'alerts:' overrides from the region YAML to generate a demo")
    say = progress or (lambda message: None)
    pupils = REGION_PUPILS if pupils is None else pupils
    sources_dir, truth_path = Path(sources_dir), Path(truth_path)
    world = build_world(region, seed=seed, pupils=pupils, progress=say, school_gemeenten=school_gemeenten)
    ctx = Context(np.random.default_rng([seed, 1]), region, world)
    mtime, peildatum = _delivery_time(world.year.evaluation), world.year.evaluation
    _clear_stale(sources_dir, region)
    defects, sources, clean, delivered = [], {}, {}, []
    for dataset in DATASETS:  # one dataset at a time keeps memory to the largest one
        deliveries = _route(world, region, dataset)
        for delivery in deliveries:
            delivery.delivered = render_rows(delivery.canonical, delivery.source, region)
        _spoil(deliveries, ctx)
        for delivery in deliveries:
            found, sources[delivery.source_id] = _write(delivery, sources_dir, peildatum, mtime)
            defects += found
            say(f"wrote {delivery.source_id}: {sources[delivery.source_id]['rows']:,} rows in "
                f"{sources[delivery.source_id]['files']} file(s), {len(found):,} defective")
        if deliveries:
            delivered.append(np.unique(np.concatenate([d.canonical.pid.to_numpy() for d in deliveries])))
        if dataset in TRUTH_DATASETS and deliveries:
            rows = pd.concat([d.canonical for d in deliveries], ignore_index=True)
            if "history" in rows:  # a status history's first statuses are no applications of their own
                rows = rows[~rows.history.to_numpy(dtype=bool)]
            spoiled = np.concatenate([d.canonical.pid.to_numpy()[[label for label, *_ in d.defects]] for d in deliveries])
            clean[dataset] = rows[~member(rows.pid, spoiled)]
    truth = _truth(world, clean, np.concatenate(delivered) if delivered else np.empty(0, np.int64))
    truth["defects"] = sorted(defects, key=lambda d: (d["source_id"], d["delivery"], d["row"]))
    truth["counts"] = {
        "sources": sources,
        "defects": dict(sorted(Counter(d["rule"] for d in defects).items())),
        "alerts": dict(sorted(Counter(c for a in truth["alerts"] for c in a["reasons"]).items())),
        **{key: len(truth[key]) for key in ("no_consent", "out_of_region", "handovers_po_vo", "handovers_vo_mbo")},
    }
    truth.update(seed=seed, reference_date=world.year.evaluation.isoformat(), pupils=pupils)
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    truth_path.write_text(_dump(truth), encoding="utf-8")
    say(f"truth: {len(truth['alerts']):,} planted alert pupils, {len(defects):,} defective rows -> {truth_path}")
    return truth["counts"]
