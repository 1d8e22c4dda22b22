"""A hand-written reference night: the pipeline's work in plain pandas and pyarrow, no Dagster, no Pandera.

What a competent programmer would write in one script to do what the nightly job does, and the
yardstick the benchmark holds the pipeline against. A floor, not a strawman: it uses every
technique that makes the pipeline fast (work once per distinct value, factorised integer keys,
Arrow kernels, the elfproef on the digit bytes, row hashes from dictionary codes, the second core
where the pipeline uses it) and nothing the pipeline does not need. It shares no code with the
pipeline (no import of ``assets``, ``schemas``, ``connectors``, ``settings`` or ``pipelines``), so a
bug or a shortcut in one is not silently copied into the other; ``bench.crosscheck`` compares
their outputs by content.

- **ingest**: every delivery of the region YAML read as text (CSV with pyarrow, Excel with the
  calamine engine, JSON API pages over HTTP with keep-alive), renamed onto canonical fields, with a
  sha256 per delivery and an immutable Parquet snapshot per delivery;
- **validate**: the same parsing (per-source date formats, code-list labels, numbers, booleans,
  identifier normalisation) and the same rules as ``docs/validation.md`` as vectorised masks;
  valid rows and a quarantine table (row, column, rule) to Parquet;
- **link**: one identity per pupil by BSN, else onderwijsnummer (``pd.factorize`` to integer ids),
  conflicts (two birth dates, two schools on one day), current facts; pupils to Parquet;
- **outputs**: PO→VO and VO→MBO handover CSVs per receiving school (consent gating, signals), the
  eight alert reasons of ``docs/alerts.md`` plus the Doorstroompunt routing, per-municipality alert
  lists, and per-municipality exports (keyed pseudonyms, suppressed counts) as Parquet and CSV.

Left out against the pipeline, on purpose: per-row sha256 fingerprints and masked values in the
quarantine, the SQL warehouse (quarantine, pupil history and alert lifecycle stay in Parquet or are
left out), XLSX copies of the outputs, manifests, the alert lifecycle across nights, secondary
suppression, the privacy guard, Pandera's re-validation. The validation is not simplified: it keeps
and rejects the same rows for the same reasons.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import io
import itertools
import json
import operator
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq


# --------------------------------------------------------------------------- the contract, by hand

# Field kinds: how the delivered text is parsed or normalised.
TEXT, BSN, IDENT, POSTCODE, GEMEENTE, SCHOOLJAAR, DATE, INT, DEC, BOOL, CODE = (
    "text", "bsn", "ident", "postcode", "gemeente", "schooljaar", "date", "int", "dec", "bool", "code")
_PERSON = {"bsn": BSN, "onderwijsnummer": IDENT, "geboortedatum": DATE}
_NAW = {"voornaam": TEXT, "tussenvoegsel": TEXT, "achternaam": TEXT, "postcode": POSTCODE, "woongemeente_code": GEMEENTE}
FIELDS: dict[str, dict[str, str]] = {
    "po_transfers": {
        **_PERSON, **_NAW, "ouder_email": TEXT, "ouder_telefoon": TEXT, "po_brin6": IDENT, "vo_brin6": IDENT,
        "aanmelddatum": DATE, "schooljaar": SCHOOLJAAR, "voorlopig_advies": CODE, "toets_advies": CODE,
        "definitief_advies": CODE, "ondersteuningsbehoefte": BOOL, "opp": BOOL, "opp_instemming_datum": DATE,
        "arrangement": TEXT, "tlv_soort": CODE, "tlv_datum": DATE, "cluster": TEXT, "toestemming_ouders": BOOL,
        "toestemming_datum": DATE, "ondersteuning_details": TEXT, "jeugdhulp_betrokken": BOOL,
    },
    "youth_care_waitlist": {
        "bsn": BSN, "geboortedatum": DATE, "woongemeente_code": GEMEENTE, "verwijzer": CODE, "productcategorie": CODE,
        "zorgaanbieder_agb": IDENT, "aanmelddatum": DATE, "besluitdatum": DATE, "intakedatum": DATE,
        "startdatum": DATE, "einddatum": DATE, "reden_beeindiging": CODE,
    },
    "vo_enrolment": {
        **_PERSON, **_NAW, "vo_brin6": IDENT, "leerjaar": INT, "onderwijsniveau": CODE, "inschrijfdatum": DATE,
        "uitschrijfdatum": DATE, "vrijstelling": CODE, "ondersteuningsbehoefte": BOOL, "opp": BOOL,
        "toestemming_ouders": BOOL, "toestemming_datum": DATE, "ondersteuning_details": TEXT,
    },
    "vo_absence": {
        "bsn": BSN, "onderwijsnummer": IDENT, "vo_brin6": IDENT, "week_start": DATE, "uren_ongeoorloofd": DEC,
        "uren_geoorloofd": DEC,
    },
    "mbo_outflow": {
        **_PERSON, "woongemeente_code": GEMEENTE, "vo_brin6": IDENT, "vo_niveau": CODE,
        "vo_diploma": BOOL, "uitstroomdatum": DATE, "mbo_brin": IDENT, "crebo": IDENT, "mbo_niveau": INT,
        "aanmelddatum": DATE, "vva_status": CODE, "status_datum": DATE,
    },
}
DATASETS = tuple(FIELDS)
REQUIRED = {
    "po_transfers": ("schooljaar",), "youth_care_waitlist": ("aanmelddatum",),
    "vo_enrolment": ("vo_brin6", "inschrijfdatum"), "vo_absence": ("vo_brin6", "week_start", "uren_ongeoorloofd"),
    "mbo_outflow": ("vo_brin6",),
}
IDENTIFIERS = {"youth_care_waitlist": ("bsn",)}  # everyone else: exactly one of bsn, onderwijsnummer
PATTERNS = {"postcode": r"[1-9]\d{3}[A-Z]{2}", "po_brin6": r"\d{2}[A-Z]{2}\d{2}", "vo_brin6": r"\d{2}[A-Z]{2}\d{2}"}
BRIN6 = r"\d{2}[A-Z]{2}\d{2}"
CODE_FORMATS = {  # field -> (rule, full-match pattern), judged once per distinct code
    "woongemeente_code": ("gemeentecode_format", r"GM\d{4}"), "zorgaanbieder_agb": ("agb_format", r"\d{8}"),
    "crebo": ("crebo_format", r"\d{5}"), "mbo_brin": ("brin4_format", r"\d{2}[A-Z]{2}"),
    "po_brin6": ("brin6_format", BRIN6), "vo_brin6": ("brin6_format", BRIN6),
}
REQUIRED_WHEN_MAPPED = {"youth_care_waitlist": ("woongemeente_code",)}  # required on rows of sources that map it
PARSE_RULE = {DATE: "date_parse", INT: "number_parse", DEC: "number_parse", BOOL: "unknown_code", CODE: "unknown_code"}
# C0 controls other than tab, line feed and carriage return, DEL and the C1 controls: never text.
CONTROL_CHARACTERS = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
SCHOOLS = ("po_brin6", "vo_brin6")
MOJIBAKE_FIELDS = ("voornaam", "tussenvoegsel", "achternaam", "ondersteuning_details")
HOURS = ("uren_ongeoorloofd", "uren_geoorloofd")
DATE_ORDER = {  # (date, not before, years before); "schooljaar" means its first day
    "po_transfers": [("aanmelddatum", "schooljaar", 2), ("tlv_datum", "schooljaar", 2)],
    "youth_care_waitlist": [("besluitdatum", "aanmelddatum", 0), ("intakedatum", "aanmelddatum", 0),
                            ("startdatum", "aanmelddatum", 0), ("einddatum", "startdatum", 0)],
    "vo_enrolment": [("uitschrijfdatum", "inschrijfdatum", 0)],
    "mbo_outflow": [("status_datum", "aanmelddatum", 0)],
}
AGE_RANGE = {"po_transfers": ("schooljaar", 10, 14), "youth_care_waitlist": ("aanmelddatum", 0, 23),
             "vo_enrolment": ("inschrijfdatum", 10, 21), "mbo_outflow": ("uitstroomdatum", 14, 23)}
PROVENANCE = ("source_id", "delivery", "delivery_sha256", "delivery_row")

_SEPARATORS = "[ \t\r\n\u00a0.\\-]"
_SPACES = "[ \t\r\n\u00a0]+"
_MIDNIGHT = r"[T ]00:00(:00(\.0+)?)?$"
TRUE_FALSE = {**dict.fromkeys(("ja", "j", "yes", "true", "1", "x"), True), **dict.fromkeys(("nee", "n", "no", "false", "0"), False)}
ELFPROEF_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


# --------------------------------------------------------------------------- code lists and schools, read by hand

PROJECT = Path(__file__).resolve().parent.parent
SCHOOLADVIES = ("pro", "vso", "vmbo_b", "vmbo_b_k", "vmbo_k", "vmbo_k_gt", "vmbo_gt", "vmbo_gt_havo", "havo",
                "havo_vwo", "vwo")
ADVICE_RANK = {"pro": 0, "vso": 0} | {code: rank for rank, code in enumerate(SCHOOLADVIES[2:], start=1)}
FIXED_CODES = {
    "schooladvies": SCHOOLADVIES,
    "vva_status": ("aanmelding_ontvangen", "onderwijsovereenkomst_aangeboden", "niet_tot_inschrijving", "ingetrokken",
                   "ingeschreven"),
    "tlv_soort": ("pro", "vso"),
    "vrijstelling": ("5a", "5b", "5c", "15", "3a", "3b"),
}
IJW_LISTS = {"productcategorie": "JZ020", "verwijzer": "COD327", "reden_beeindiging": "JZ588"}
CODELIST_OF_FIELD = {
    **dict.fromkeys(("voorlopig_advies", "toets_advies", "definitief_advies", "onderwijsniveau", "vo_niveau"),
                    "schooladvies"),
    **{name: name for name in ("vva_status", "tlv_soort", "vrijstelling", *IJW_LISTS)},
}


@cache
def canonical_codes(codelist: str) -> frozenset[str]:
    if codelist in FIXED_CODES:
        return frozenset(FIXED_CODES[codelist])
    table = pd.read_csv(PROJECT / "reference" / "ijw_codelijsten_release_3_2.csv", dtype="str",
                        usecols=["lijstcode", "code"])
    return frozenset(table.loc[table["lijstcode"] == IJW_LISTS[codelist], "code"])


@cache
def _registry(files: tuple[str, ...]) -> pa.Array:
    """Every school location code (BRIN6) of the region's DUO files, or of the national file."""
    codes = []
    for path in files or (str(PROJECT / "reference" / "duo_schoolvestigingen_nl_2024.csv"),):
        data = Path(path).read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
        header = text.split("\n", 1)[0]
        table = pd.read_csv(io.StringIO(text), sep=";" if header.count(";") > header.count(",") else ",",
                            dtype="str", keep_default_na=False)
        columns = {"".join(str(name).split()).replace("_", "").lower(): name for name in table.columns}
        if "vestigingscode" in columns:
            code = table[columns["vestigingscode"]]
        else:  # older DUO files: BRIN and a two-digit vestigingsnummer
            brin = next(columns[name] for name in ("brinnummer", "brin", "instellingscode") if name in columns)
            number = table[columns["vestigingsnummer"]].str.strip()
            code = number.where(number.str.len() != 2, table[brin].str.strip() + number)
        codes.append(code.str.replace(r"[\s.\-]", "", regex=True).str.upper())
    return pa.array(sorted(set(pd.concat(codes)) - {""}), type=pa.large_string())


@dataclass
class Report:
    """Stage windows (epoch seconds), validated rows per dataset and output counts."""

    stages: dict[str, list[list[float]]] = field(default_factory=dict)
    validated_rows: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)


def run_reference(sources_dir: Path, out_dir: Path, region, *, evaluation_date: dt.date | None = None,
                  progress=lambda message: None) -> Report:
    """The whole night on ``sources_dir`` (HTTP sources from their URLs); everything written under ``out_dir``."""
    # The same Arrow memory pool as the pipeline (connectors/arrow_memory.py), so the allocator is not
    # part of the comparison; written out here because the reference uses none of the pipeline's code.
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())
    e = pd.Timestamp(evaluation_date or region.evaluation_date())
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report()

    def stage(name: str, start: float) -> None:
        report.stages[name] = [[start, time.time()]]
        progress(f"{name} done in {time.time() - start:.2f} s")

    start = time.time()
    raw = {dataset: ingest(dataset, region, Path(sources_dir), out_dir / "raw") for dataset in DATASETS}
    stage("ingest", start)

    start = time.time()
    valid = {}
    for dataset in DATASETS:
        valid[dataset], rejects = validate(dataset, raw[dataset], region, e)
        write_parquet(valid[dataset], out_dir / "validated" / f"{dataset}.parquet")
        write_parquet(rejects, out_dir / "quarantine" / f"{dataset}.parquet")
        report.validated_rows[dataset] = len(valid[dataset])
    del raw
    stage("validate", start)

    start = time.time()
    linked = link(valid, e)
    write_parquet(linked.pupils, out_dir / "pupils.parquet")
    write_parquet(linked.conflicts, out_dir / "pupil_conflicts.parquet")
    report.outputs["pupils"] = len(linked.pupils)
    stage("link", start)

    start = time.time()
    report.outputs["po_vo_handover_rows"] = po_vo_handover(linked, e, region, out_dir / "overdracht" / "po-vo")
    report.outputs["vo_mbo_handover_rows"] = vo_mbo_handover(linked, e, region, out_dir / "overdracht" / "vo-mbo")
    alerts = alert_rules(linked, region, e)
    report.outputs["alerts"] = len(alerts)
    write_alert_lists(alerts, linked, region, out_dir / "signalen")
    report.outputs["export_rows"] = municipal_exports(linked, alerts, region, e, out_dir / "gemeenten")
    stage("outputs", start)
    return report


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """zstd, without column statistics: the pipeline's lake writes none (nothing reads them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd",
                   write_statistics=False)


# --------------------------------------------------------------------------- ingest


def ingest(dataset: str, region, sources_dir: Path, raw_dir: Path) -> pd.DataFrame:
    """Every delivery of a dataset as text, canonical names and provenance; a snapshot per delivery."""
    frames = []
    for source_id, source in region.sources_for(dataset).items():
        location = source.location
        if location.kind == "http":
            deliveries = [fetch_api(source)]
        else:
            paths = sorted(p for p in sources_dir.glob(location.path) if p.is_file() and not p.name.startswith((".", "~$")))
            deliveries = [read_file(path, source, path.relative_to(sources_dir).as_posix()) for path in paths]
        for name, sha256, frame in deliveries:
            frame = frame.rename(columns=source.columns).assign(source_id=source_id, delivery=name,
                                                               delivery_sha256=sha256)
            write_parquet(frame, raw_dir / source_id / f"{sha256}.parquet")
            frames.append(frame)
    raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*FIELDS[dataset], *PROVENANCE])
    for name in FIELDS[dataset]:
        if name not in raw.columns:
            raw[name] = pd.Series(pd.NA, index=raw.index, dtype="str")
    return raw.loc[:, [*FIELDS[dataset], *PROVENANCE]]


def _numbered(frame: pd.DataFrame, *, drop_blank: bool = True) -> pd.DataFrame:
    """Rows numbered as delivered (1 = first data row); in files, rows blank in every column dropped."""
    frame = frame.assign(delivery_row=np.arange(1, len(frame) + 1, dtype=np.int64))
    if not drop_blank:
        return frame
    return frame.loc[frame.drop(columns="delivery_row").notna().any(axis=1)].reset_index(drop=True)


def read_file(path: Path, source, name: str) -> tuple[str, str, pd.DataFrame]:
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    fmt = source.location.format
    columns = list(source.columns)
    if fmt.type == "xlsx":
        return name, sha256, _numbered(_xlsx_text(data, fmt, columns))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif fmt.encoding not in ("utf-8", "utf-8-sig", "auto"):
        data = data.decode(fmt.encoding).encode("utf-8")
    table = pa_csv.read_csv(
        io.BytesIO(data),
        parse_options=pa_csv.ParseOptions(delimiter=fmt.delimiter or ";", quote_char=fmt.quotechar,
                                          newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string()),
                                              include_columns=columns, strings_can_be_null=False),
    )
    text = [pc.utf8_trim_whitespace(column) for column in table.columns]
    text = [pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column) for column in text]
    return name, sha256, _numbered(pa.table(text, names=table.column_names).to_pandas())


def _cell_text(value: object) -> str | None:
    """An Excel cell as the text the partner meant (integral numbers without '.0', dates as ISO)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _xlsx_text(data: bytes, fmt, columns: list[str]) -> pd.DataFrame:
    cells = pd.read_excel(io.BytesIO(data), sheet_name=fmt.sheet or 0, header=None, dtype=object, engine="calamine")
    if fmt.skip_rows is not None:
        header = fmt.skip_rows
    else:  # the first row that holds every mapped column name (a title block sits above it)
        names = cells.head(100).map(_cell_text)
        header = next(i for i in range(min(len(cells), 100)) if set(columns) <= set(names.iloc[i].dropna()))
    names = [_cell_text(v) for v in cells.iloc[header]]
    body = cells.iloc[header + 1:].set_axis(names, axis=1).loc[:, columns]
    return pd.DataFrame({c: pd.array([_cell_text(v) for v in body[c]], dtype="str") for c in columns})


def fetch_api(source) -> tuple[str, str, pd.DataFrame]:
    """Every page of a partner API over one kept-alive connection; sha256 over the page bodies."""
    location = source.location
    url = urlsplit(location.url)
    headers = {"Accept": "application/json"}
    if location.auth is not None:
        token = os.environ[location.auth.token_env]
        headers |= {"Authorization": f"Bearer {token}"} if location.auth.type == "bearer" else {location.auth.header: token}
    pagination = location.pagination
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=location.read_timeout_s)
    digest, records, page, cursor = hashlib.sha256(), [], 0, None
    try:
        while True:
            params = {pagination.size_param: pagination.page_size}
            if pagination.type == "page":
                params[pagination.page_param] = pagination.first_page + page
            elif cursor is not None:
                params[pagination.cursor_param] = cursor
            connection.request("GET", f"{url.path}?{urlencode(params)}", headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{location.url}: HTTP {response.status} on page {page + 1}")
            digest.update(body)
            document = json.loads(body)
            batch = document[pagination.records_key]
            records.extend(batch)
            page += 1
            if pagination.type == "page":
                if len(batch) < pagination.page_size:
                    break
            else:
                cursor = document.get(pagination.next_cursor_key)
                if not cursor:
                    break
    finally:
        connection.close()
    columns = list(source.columns)
    fields = dict.fromkeys(itertools.chain.from_iterable(records))  # a record iterates over its fields
    if set(columns) <= fields.keys() and all(len(record) == len(fields) for record in records):
        values = (list(map(operator.itemgetter(c), records)) for c in columns)  # a C-level pass per field
    else:
        values = ([record.get(c) for record in records] for c in columns)
    text = {column: _json_text(column_values) for column, column_values in zip(columns, values)}
    return location.url, digest.hexdigest(), _numbered(pd.DataFrame(text, index=range(len(records))),
                                                       drop_blank=False)


def _json_text(values: list) -> pd.api.extensions.ExtensionArray:
    """A JSON field as text: strings stripped and blanked by Arrow kernels in one pass, whole numbers and
    flags by one Arrow cast, anything else value by value."""
    try:
        text = pa.array(values, type=pa.string())  # only str and None
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        try:
            typed = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            typed = None
        if typed is not None and (pa.types.is_integer(typed.type) or pa.types.is_boolean(typed.type)):
            return pd.array(typed.cast(pa.string()), dtype="str")
        return pd.array([_cell_text(value) for value in values], dtype="str")
    stripped = pc.utf8_trim_whitespace(text)
    return pd.array(pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped), dtype="str")


# --------------------------------------------------------------------------- validate

def _blank_to_na(text: pd.Series) -> pd.Series:
    text = text.astype("str").str.strip()
    return text.where(text != "")


def _per_distinct(values: pd.Series, compute) -> pd.Series:
    """``compute`` of each distinct value, spread back over the rows (missing stays missing): a
    column of millions of rows holds a few hundred schools or a few thousand dates."""
    codes, distinct = pd.factorize(values)
    result = compute(pd.Series(distinct, dtype=values.dtype)).array
    return pd.Series(result.take(codes, allow_fill=True), index=values.index)


def _identifier(text: pd.Series) -> pd.Series:
    return _blank_to_na(text.str.replace(_SEPARATORS, "", regex=True).str.upper())


def _bsn(text: pd.Series) -> pd.Series:
    value = _identifier(text)
    return value.where(~_matches(value, r"\d{8}"), value.str.zfill(9))


def _postcode(text: pd.Series) -> pd.Series:
    return _identifier(text).str.replace(r"^NL", "", regex=True)


def _gemeente(text: pd.Series) -> pd.Series:
    value = _identifier(text)
    return value.where(~_matches(value, r"\d{4}"), "GM" + value)


def _schooljaar(text: pd.Series) -> pd.Series:
    return _blank_to_na(text.str.replace(r" *[/\-] *", "-", regex=True))


NORMALISE = {BSN: _bsn, IDENT: _identifier, POSTCODE: _postcode, GEMEENTE: _gemeente, SCHOOLJAAR: _schooljaar,
             TEXT: _blank_to_na}


def _matches(text: pd.Series, pattern: str) -> np.ndarray:
    return text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)


def _label_key(text: pd.Series) -> pd.Series:
    return text.str.replace(_SPACES, " ", regex=True).str.strip().str.lower()


def parse_dates(text: pd.Series, groups: dict[str, np.ndarray], region) -> pd.Series:
    """Per source's date format, else ISO; each distinct value is parsed once."""
    text = text.str.replace(_MIDNIGHT, "", regex=True)
    out = np.full(len(text), np.datetime64("NaT", "ns"))
    for source_id, rows in groups.items():
        date_format = region.sources[source_id].date_format
        codes, distinct = pd.factorize(text.iloc[rows])
        distinct = pd.Series(distinct, dtype="str")
        dates = pd.to_datetime(distinct, format=date_format, errors="coerce")
        if date_format != "%Y-%m-%d":
            dates = dates.fillna(pd.to_datetime(distinct, format="%Y-%m-%d", errors="coerce"))
        dates = dates.where(dates.between(pd.Timestamp.min, pd.Timestamp.max))  # what datetime64[ns] holds
        out[rows] = np.append(dates.to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT", "ns"))[codes]
    return pd.Series(out, index=text.index)


_DECIMAL = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


def parse_decimals(text: pd.Series) -> pd.Series:
    """A decimal point or comma; checked by an Arrow regex and converted by Arrow's cast, not value by value."""
    cleaned = pa.array(text.str.replace(",", ".", regex=False), type=pa.large_string(), from_pandas=True)
    numbers = pc.cast(pc.if_else(pc.match_substring_regex(cleaned, _DECIMAL), cleaned, None), pa.float64())
    return pd.Series(numbers.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")


def parse_booleans(text: pd.Series, name: str, groups: dict[str, np.ndarray], region) -> pd.Series:
    """The yes/no words, plus the labels the region and the source map onto ja/nee; per distinct label."""
    out = pd.Series(pd.NA, index=text.index, dtype="boolean")
    for source_id, rows in groups.items():
        labels = region.codelists.get("ja_nee", {}) | region.sources[source_id].codes.get(name, {})
        truth = TRUE_FALSE | {" ".join(label.split()).lower(): code == "ja" for label, code in labels.items()}
        part = _per_distinct(text.iloc[rows], lambda values: _label_key(values).map(truth).astype("boolean"))
        out.iloc[rows] = part.to_numpy()
    return out


def parse_codes(text: pd.Series, name: str, groups: dict[str, np.ndarray], region) -> pd.Series:
    """Labels to canonical codes: each distinct label normalised and looked up once, the rows take
    their code by position."""
    codelist = CODELIST_OF_FIELD[name]
    canonical = canonical_codes(codelist)
    label_of_row, distinct = pd.factorize(text)
    labels = _label_key(pd.Series(distinct, dtype="str"))
    widths = {len(code) for code in canonical if code.isdigit()}
    if len(widths) == 1:
        labels = labels.where(~_matches(labels, r"\d+"), labels.str.zfill(widths.pop()))
    lookups = {source_id: _code_mapping(codelist, name, source_id, region) for source_id in groups}
    codes = sorted(canonical | {code for lookup in lookups.values() for code in lookup.values()})
    number = {code: i for i, code in enumerate(codes)}
    code_of_row = np.full(len(text), -1, dtype=np.int64)
    for source_id, rows in groups.items():
        lookup = lookups[source_id]
        code_of_label = np.array([number.get(lookup.get(label), -1) for label in labels] or [-1], dtype=np.int64)
        label = label_of_row[rows]
        code_of_row[rows] = np.where(label >= 0, code_of_label[np.maximum(label, 0)], -1)
    parsed = pa.array(codes, type=pa.large_string()).take(pa.array(code_of_row, mask=code_of_row < 0))
    return pd.Series(pd.array(parsed, dtype="str"), index=text.index)


def _code_mapping(codelist: str, name: str, source_id: str, region) -> dict[str, str]:
    mapping = {code: code for code in canonical_codes(codelist)} | region.codelists.get(codelist, {})
    mapping |= region.sources[source_id].codes.get(name, {})
    return {" ".join(label.split()).lower(): code for label, code in mapping.items()}


def parse(dataset: str, raw: pd.DataFrame, region) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Typed columns, and per field the rows whose value is present but does not parse."""
    source_codes, source_ids = pd.factorize(raw["source_id"])
    groups = {source_id: np.flatnonzero(source_codes == i) for i, source_id in enumerate(source_ids)}

    def parse_field(item: tuple[str, str]) -> tuple[pd.Series, np.ndarray | None]:
        name, kind = item
        text = _blank_to_na(raw[name])
        if kind == DATE:
            value = parse_dates(text, groups, region)
        elif kind == INT:
            number = parse_decimals(text)
            value = number.where((number == number.round()) & (number.abs() < 2**53)).astype("Int64")
        elif kind == DEC:
            value = parse_decimals(text)
        elif kind == BOOL:
            value = parse_booleans(text, name, groups, region)
        elif kind == CODE:
            value = parse_codes(text, name, groups, region)
        else:
            value = _per_distinct(text, NORMALISE[kind])
        failed = (text.notna() & value.isna()).to_numpy() if kind in PARSE_RULE else None
        return value, failed

    items = list(FIELDS[dataset].items())
    parsed = [parse_field(item) for item in items]
    typed = pd.DataFrame({name: value for (name, _), (value, _) in zip(items, parsed)}, index=raw.index)
    return typed, {name: failed for (name, _), (_, failed) in zip(items, parsed) if failed is not None}


def elfproef_remainder(values: pd.Series) -> np.ndarray:
    """Weighted digit sum mod 11 of 9-digit values, -1 for anything else or all zeros.

    The nine ASCII digits of every such value lie side by side in the Arrow text buffer: read as
    an n × 9 byte matrix, the weighted sum is nine int32 column passes (no int64 matrix, no parsing).
    """
    text = pa.array(values, type=pa.large_string(), from_pandas=True)
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    nine = pc.fill_null(pc.and_(pc.equal(pc.binary_length(text), 9), pc.ascii_is_decimal(text)), False)
    digits = pc.if_else(nine, text, pa.scalar("0" * 9, pa.large_string()))
    offsets = np.frombuffer(digits.buffers()[1], dtype=np.int64)[digits.offset:digits.offset + len(digits) + 1]
    matrix = np.frombuffer(digits.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 9)
    total = np.full(len(matrix), -ord("0") * sum(ELFPROEF_WEIGHTS), dtype=np.int32)
    for column, weight in enumerate(ELFPROEF_WEIGHTS):
        total += int(weight) * matrix[:, column].astype(np.int32)
    nonzero = pc.and_(nine, pc.not_equal(digits, "0" * 9)).to_numpy(zero_copy_only=False)
    return np.where(nonzero, total % 11, -1)


def _school_year_start(schooljaar: pd.Series, region) -> pd.Series:
    start = region.calendar.school_year_start
    return _per_distinct(schooljaar, lambda years: pd.to_datetime(years.str.slice(0, 4) + "-" + start,
                                                                  format="%Y-%m-%d", errors="coerce"))


def _age(born: pd.Series, on: pd.Series) -> pd.Series:
    before = (on.dt.month < born.dt.month) | ((on.dt.month == born.dt.month) & (on.dt.day < born.dt.day))
    return on.dt.year - born.dt.year - before.astype("Int64")


def _per_code(values: pd.Series, verdict) -> np.ndarray:
    """Rows whose present code fails ``verdict`` (a function of the distinct codes)."""
    ok = _per_distinct(values, lambda codes: pd.Series(verdict(codes), index=codes.index).astype("boolean"))
    return ~ok.fillna(True).to_numpy(dtype=bool)


def rule_masks(dataset: str, typed: pd.DataFrame, failed: dict[str, np.ndarray], region,
               e: pd.Timestamp) -> dict[tuple[str, str], np.ndarray]:
    """(column, rule) -> rows that break it, named as docs/validation.md names them. A missing value
    breaks only ``required`` and ``one_identifier``; a value that did not parse is reported once,
    by its parse rule."""
    masks: dict[tuple[str, str], np.ndarray] = {}
    present = {name: typed[name].notna().to_numpy() for name in typed}
    for name in REQUIRED[dataset]:
        masks[(name, "required")] = ~present[name] & ~failed.get(name, np.zeros(len(typed), dtype=bool))
    identifiers = IDENTIFIERS.get(dataset, ("bsn", "onderwijsnummer"))
    masks[(identifiers[0], "one_identifier")] = sum(present[name].astype(int) for name in identifiers) != 1
    if "bsn" in typed:
        masks[("bsn", "bsn_elfproef")] = present["bsn"] & (elfproef_remainder(typed["bsn"]) != 0)
    if "onderwijsnummer" in typed:
        onr = typed["onderwijsnummer"]
        masks[("onderwijsnummer", "onderwijsnummer_valid")] = present["onderwijsnummer"] & ~(
            onr.str.startswith("10").fillna(False).to_numpy(dtype=bool) & (elfproef_remainder(onr) == 5))
    if "postcode" in typed:
        postcode = typed["postcode"]
        masks[("postcode", "postcode_format")] = present["postcode"] & (
            ~_matches(postcode, PATTERNS["postcode"])
            | postcode.str.slice(4).isin(["SA", "SD", "SS"]).to_numpy(dtype=bool))
    for name, (rule, pattern) in CODE_FORMATS.items():
        if name in typed:
            masks[(name, rule)] = _per_code(typed[name], lambda codes, p=pattern: _matches(codes, p))
    schools = _registry(tuple(region.school_registry or ()))
    for name in SCHOOLS:
        if name in typed:
            masks[(name, "known_school")] = _per_code(typed[name], lambda codes: ~_matches(codes, PATTERNS[name])
                                                      | pc.is_in(pa.array(codes, type=pa.large_string()),
                                                                 value_set=schools).to_numpy(zero_copy_only=False))
    if "schooljaar" in typed:
        def consecutive(years: pd.Series) -> np.ndarray:
            shaped = _matches(years, r"\d{4}-\d{4}")
            first = pd.to_numeric(years.str.slice(0, 4).where(shaped), errors="coerce").to_numpy()
            second = pd.to_numeric(years.str.slice(5, 9).where(shaped), errors="coerce").to_numpy()
            return shaped & (second == first + 1)

        masks[("schooljaar", "schooljaar_format")] = _per_code(typed["schooljaar"], consecutive)
    for name in HOURS:
        if name in typed:
            in_range = typed[name].between(0, 40).fillna(False).to_numpy(dtype=bool)
            masks[(name, "hours_range")] = present[name] & ~in_range
    for name in MOJIBAKE_FIELDS:
        if name in typed:
            masks[(name, "mojibake")] = _per_code(typed[name], lambda texts: ~texts.str.contains(
                "Ã|Â|â€", regex=True).fillna(False).to_numpy(dtype=bool))
    cutoff = min(pd.Timestamp(dt.datetime.now(AMSTERDAM).date()), e)  # delivered tonight: fetched_at's day
    for name, kind in FIELDS[dataset].items():
        if kind == DATE:
            masks[(name, "not_in_future")] = (typed[name] > cutoff).to_numpy(dtype=bool)
    for name, bound, years in DATE_ORDER.get(dataset, []):
        limit = (_school_year_start(typed[bound], region) - pd.DateOffset(years=years)) if bound == "schooljaar" \
            else typed[bound]
        masks[(name, "date_order")] = (typed[name] < limit).to_numpy(dtype=bool)
    if dataset in AGE_RANGE:
        at, youngest, oldest = AGE_RANGE[dataset]
        on = _school_year_start(typed[at], region) if at == "schooljaar" else typed[at]
        age = _age(typed["geboortedatum"], on)
        implausible = (~age.between(youngest, oldest)).fillna(False).to_numpy(dtype=bool)
        masks[("geboortedatum", "birthdate_plausible")] = implausible
    if dataset == "po_transfers":
        def rank(advice: pd.Series) -> pd.Series:
            return _per_distinct(advice, lambda codes: codes.map(ADVICE_RANK).astype("Float64"))

        lowered = rank(typed["definitief_advies"]) < rank(typed["voorlopig_advies"])
        masks[("definitief_advies", "advice_not_lowered")] = lowered.fillna(False).to_numpy(dtype=bool)
    for name, rows in failed.items():
        masks[(name, PARSE_RULE[FIELDS[dataset][name]])] = rows
    return masks


_CONTROL_BYTE = np.zeros(256, dtype=bool)
_CONTROL_BYTE[[*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]] = True


def _control_bytes(text: pa.ChunkedArray | pa.Array) -> bool:
    """Could any cell hold a control character? C0 and DEL are single bytes in UTF-8, C1 is 0xC2
    followed by 0x80-0x9F; each chunk's own byte range only (Parquet chunks share one buffer)."""
    for chunk in (text.chunks if isinstance(text, pa.ChunkedArray) else [text]):
        _, offsets, data = chunk.buffers()
        if data is None or not len(chunk):
            continue
        start, end = np.frombuffer(offsets, dtype=np.int64)[[chunk.offset, chunk.offset + len(chunk)]]
        view = np.frombuffer(data, dtype=np.uint8)[start:end]
        lead = np.flatnonzero(view[:-1] == 0xC2)
        if _CONTROL_BYTE[view].any() or ((view[lead + 1] >= 0x80) & (view[lead + 1] <= 0x9F)).any():
            return True
    return False


def delivered_masks(dataset: str, raw: pd.DataFrame, region) -> dict[tuple[str, str], np.ndarray]:
    """The rules on the delivered text: control characters in any field, and a field some sources
    map left empty on a row of such a source."""
    masks = {}
    for name in FIELDS[dataset]:
        text = pa.array(raw[name].astype("str"), type=pa.large_string(), from_pandas=True)
        if not _control_bytes(text):  # the regex only where some byte could be one
            continue
        found = pc.fill_null(pc.match_substring_regex(text, CONTROL_CHARACTERS), False).to_numpy(zero_copy_only=False)
        if found.any():
            masks[(name, "control_character")] = found
    for name in REQUIRED_WHEN_MAPPED.get(dataset, ()):
        mapping = [sid for sid, source in region.sources.items() if name in source.columns.values()]
        masks[(name, "required")] = (raw["source_id"].isin(mapping) & _blank_to_na(raw[name]).isna()).to_numpy()
    return masks


def duplicate_rows(raw: pd.DataFrame, fields: list[str]) -> np.ndarray:
    """Later exact copies (delivered text) of a row of the same delivery.

    A 64-bit number per row from each column's Arrow dictionary codes (a hash per value, in C++)
    finds the candidates; the exact comparison runs on those alone.
    """
    keys = raw.loc[:, ["source_id", "delivery", *fields]]
    fingerprint = np.zeros(len(keys), dtype=np.uint64)
    for name in keys.columns:
        values = pa.array(keys[name], from_pandas=True)
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        codes = pc.fill_null(pc.dictionary_encode(values).indices, -1).to_numpy(zero_copy_only=False)
        fingerprint = fingerprint * np.uint64(0x100000001B3) + (codes.astype(np.int64) + 1).astype(np.uint64)
    candidates = pd.Series(fingerprint).duplicated(keep=False).to_numpy()
    duplicated = np.zeros(len(raw), dtype=bool)
    duplicated[candidates] = keys.loc[candidates].duplicated(keep="first").to_numpy()
    return duplicated


def select_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame.loc[keep]`` by Arrow's filter, for frames indexed 0..n-1 (index renumbered); no copy
    when every row stays."""
    keep = np.asarray(keep, dtype=bool)
    if keep.all():
        return frame
    selector = pa.array(keep)
    return _columnwise(frame, lambda column: pc.filter(column, selector))


def take_rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[positions]`` by Arrow's take (index renumbered)."""
    selector = pa.array(np.asarray(positions, dtype=np.int64))
    return _columnwise(frame, lambda column: column.take(selector))


def _columnwise(frame: pd.DataFrame, kernel) -> pd.DataFrame:
    """``kernel`` on every column as Arrow, as the pipeline selects rows."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns = [kernel(column) for column in table.columns]
    return pa.Table.from_arrays(columns, schema=table.schema).to_pandas()


def validate(dataset: str, raw: pd.DataFrame, region, e: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid typed rows with provenance and ``buiten_regio``, quarantine: one row per failing row, column and rule)."""
    fields = list(FIELDS[dataset])
    # A delivery whose required field is empty in every row breaks the contract as a whole; the
    # deliveries are numbered once (factorized provenance), not grouped on as text.
    combined = np.zeros(len(raw), dtype=np.int64)
    for name in ("source_id", "delivery", "delivery_sha256"):
        codes, distinct = pd.factorize(raw[name])
        combined = combined * (len(distinct) + 1) + codes + 1
    delivery, deliveries = pd.factorize(combined)
    filled = np.ones(len(deliveries), dtype=bool)
    for name in REQUIRED[dataset]:
        filled &= np.bincount(delivery, weights=raw[name].notna().to_numpy(), minlength=len(deliveries)) > 0
    accepted = raw if filled.all() else select_rows(raw, filled[delivery])

    # The exact duplicates need nothing of the parsing and the rules: a helper thread finds them
    # on the second core meanwhile, as the pipeline's validation does.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="duplicates") as helper:
        duplicates = helper.submit(duplicate_rows, accepted, fields)
        typed, failed = parse(dataset, accepted, region)
        masks = delivered_masks(dataset, accepted, region)
        for key, rows in rule_masks(dataset, typed, failed, region, e).items():
            masks[key] = masks[key] | rows if key in masks else rows
        masks[("*", "duplicate_row")] = duplicates.result()
    bad = np.logical_or.reduce(list(masks.values()))

    valid = select_rows(typed.assign(**{name: accepted[name] for name in PROVENANCE}), ~bad)
    if "toestemming_ouders" in valid:  # without a dated consent, consent-gated fields stop here
        consent = _consent(valid)
        valid = valid.assign(**{name: valid[name].where(consent) for name in GATED if name in valid})
    if "woongemeente_code" in valid:
        code = valid["woongemeente_code"]
        valid["buiten_regio"] = (~code.isin(region.gemeente_codes)).astype("boolean").where(code.notna())
    columns, rules = (np.array(part, dtype=object) for part in zip(*masks))
    rows, which = np.nonzero(np.column_stack(list(masks.values())))
    rejects = accepted.iloc[rows][list(PROVENANCE)].reset_index(drop=True).assign(
        column=pd.array(columns[which], dtype="str"), rule=pd.array(rules[which], dtype="str"))
    return valid, rejects


# --------------------------------------------------------------------------- link


@dataclass
class Linked:
    """Validated tables with an integer ``pupil`` id (pd.factorize of the pupil key), and the pupils."""

    tables: dict[str, pd.DataFrame]
    pupils: pd.DataFrame  # one row per pupil id, conflicts left out
    conflicts: pd.DataFrame
    conflicted: np.ndarray  # bool per pupil id
    ids: int  # pupil ids are 0 .. ids - 1 (absence-only identities included)


IDENTITY_SOURCES = ("vo_enrolment", "po_transfers", "mbo_outflow", "youth_care_waitlist")  # best first
RECENCY = {"vo_enrolment": "inschrijfdatum", "po_transfers": "aanmelddatum", "mbo_outflow": "status_datum",
           "youth_care_waitlist": "aanmelddatum"}
IDENTITY = ("bsn", "onderwijsnummer", "geboortedatum", "voornaam", "tussenvoegsel", "achternaam", "postcode",
            "woongemeente_code", "buiten_regio")


def pupil_keys(frame: pd.DataFrame) -> pd.Series:
    bsn = frame["bsn"] if "bsn" in frame else pd.Series(pd.NA, index=frame.index, dtype="str")
    onr = frame["onderwijsnummer"] if "onderwijsnummer" in frame else pd.Series(pd.NA, index=frame.index, dtype="str")
    return ("bsn:" + bsn).fillna("onr:" + onr)


def _active(enrolment: pd.DataFrame, e: pd.Timestamp) -> np.ndarray:
    return ((enrolment["inschrijfdatum"] <= e) & (enrolment["uitschrijfdatum"].isna()
                                                   | (enrolment["uitschrijfdatum"] > e))).to_numpy(dtype=bool)


FILLED_FROM_OTHER_SOURCES = ("geboortedatum", "bsn", "onderwijsnummer", "postcode", "woongemeente_code")


def _two_values(ids: np.ndarray, values: pd.Series, n: int) -> np.ndarray:
    """Per pupil id: more than one distinct present value? Exactly when its smallest and largest value
    code differ: one pass over the rows (``ufunc.at``), no sort, no de-duplication."""
    known = values.notna().to_numpy()
    codes, _ = pd.factorize(values[known])
    lowest = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    highest = np.full(n, -1, dtype=np.int64)
    np.minimum.at(lowest, ids[known], codes)
    np.maximum.at(highest, ids[known], codes)
    return (highest >= 0) & (highest != lowest)


def link(valid: dict[str, pd.DataFrame], e: pd.Timestamp) -> Linked:
    keys = {name: pupil_keys(frame) for name, frame in valid.items()}
    codes, uniques = pd.factorize(pd.concat(list(keys.values()), ignore_index=True))
    bounds = np.cumsum([0, *(len(k) for k in keys.values())])
    tables = {name: frame.assign(pupil=codes[bounds[i]:bounds[i + 1]])
              for i, (name, frame) in enumerate(valid.items())}
    tables = {name: select_rows(frame, frame["pupil"].to_numpy() >= 0) for name, frame in tables.items()}
    n = len(uniques)

    parts = []
    for priority, name in enumerate(IDENTITY_SOURCES):
        frame = tables[name]
        part = frame.loc[:, ["pupil", *(c for c in IDENTITY if c in frame)]]
        parts.append(part.assign(priority=priority, recency=frame[RECENCY[name]]))
    rows = pd.concat(parts, ignore_index=True)

    enrolment = tables["vo_enrolment"]
    active = enrolment.loc[_active(enrolment, e)]
    two_birthdates = _two_values(rows["pupil"].to_numpy(), rows["geboortedatum"], n)
    two_schools = _two_values(active["pupil"].to_numpy(), active["vo_brin6"], n)
    conflicted = two_birthdates | two_schools
    conflicts = pd.DataFrame({"pupil_key": np.concatenate([uniques[two_birthdates], uniques[two_schools]]),
                              "rule": ["conflicting_birthdate"] * int(two_birthdates.sum())
                              + ["conflicting_enrolment"] * int(two_schools.sum())})

    # Current facts: the best source, then the most recent row (a row without a date last), found
    # by one lexsort on integer keys and the first row of each pupil's run.
    rows = select_rows(rows, ~conflicted[rows["pupil"].to_numpy()])
    ids = rows["pupil"].to_numpy()
    stamps = rows["recency"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    newest_first = np.where(rows["recency"].isna().to_numpy(), np.iinfo(np.int64).max, -stamps)
    order = np.lexsort((newest_first, rows["priority"].to_numpy(), ids))
    best = order[np.r_[True, ids[order][1:] != ids[order][:-1]]] if len(order) else order
    pupil_ids = ids[best]
    pupils = take_rows(rows.drop(columns=["priority", "recency"]), best)
    # Identity gaps of the best row (a birth date its source lacks) from the pupil's first row that has one.
    for name in FILLED_FROM_OTHER_SOURCES:
        present = np.flatnonzero(rows[name].notna().to_numpy())
        first = np.full(n, -1, dtype=np.int64)
        distinct, position = np.unique(ids[present], return_index=True)
        first[distinct] = present[position]
        at = first[pupil_ids]
        fallback = rows[name].iloc[np.maximum(at, 0)].reset_index(drop=True).where(pd.Series(at >= 0)) \
            if len(rows) else pupils[name]
        pupils[name] = pupils[name].where(pupils[name].notna(), fallback)
    for name in IDENTITY_SOURCES:
        pupils[f"in_{name}"] = np.bincount(tables[name]["pupil"].to_numpy(), minlength=n)[pupil_ids] > 0
    # Each pupil's running enrolment on the evaluation date; the latest one if there are several.
    active_ids = active["pupil"].to_numpy()
    by_date = np.lexsort((active["inschrijfdatum"].to_numpy(dtype="datetime64[ns]"), active_ids))
    latest = by_date[np.r_[active_ids[by_date][1:] != active_ids[by_date][:-1], True]] if len(by_date) else by_date
    current = np.full(n, -1, dtype=np.int64)
    current[active_ids[latest]] = latest
    at = current[pupil_ids]
    for name in ("vo_brin6", "onderwijsniveau", "leerjaar"):
        pupils[name] = active[name].iloc[np.maximum(at, 0)].reset_index(drop=True).where(pd.Series(at >= 0)) \
            if len(active) else pd.Series(pd.NA, index=pupils.index, dtype=active[name].dtype)
    pupils["buiten_regio"] = pupils["buiten_regio"].fillna(False).astype(bool)
    pupils.insert(1, "pupil_key", uniques[pupil_ids])
    return Linked(tables, pupils, conflicts, conflicted, n)


# --------------------------------------------------------------------------- outputs: handovers

GATED = ("ondersteuning_details", "jeugdhulp_betrokken")
CONSENT_FIELDS = (*GATED, "opp_instemming_datum")
ADVICE_LABELS = {"pro": "PRO", "vso": "VSO", "vmbo_b": "VMBO BL", "vmbo_b_k": "VMBO BL-KL", "vmbo_k": "VMBO KL",
                 "vmbo_k_gt": "VMBO KL-GT", "vmbo_gt": "VMBO GT", "vmbo_gt_havo": "VMBO GT-HAVO", "havo": "HAVO",
                 "havo_vwo": "HAVO/VWO", "vwo": "VWO"}


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates dd-mm-jjjj (each distinct date formatted once), booleans ja/nee."""
    out = {}
    for name, column in frame.items():
        if pd.api.types.is_datetime64_any_dtype(column):
            codes, distinct = pd.factorize(column)
            shown = np.append(pd.DatetimeIndex(distinct).strftime("%d-%m-%Y").to_numpy(dtype=object), None)
            out[name] = pd.array(shown[codes], dtype="str")
        elif isinstance(column.dtype, pd.BooleanDtype) or column.dtype == bool:
            out[name] = column.map({True: "ja", False: "nee"}).astype("str")
        else:
            out[name] = column
    return pd.DataFrame(out, index=frame.index)


CSV_OPTIONS = pa_csv.WriteOptions(delimiter=";", quoting_style="needed", eol="\r\n")


def write_csv(shown: pd.DataFrame, path: Path) -> None:
    """UTF-8 with BOM, ';', CRLF, by Arrow's CSV writer (``DataFrame.to_csv`` is several times slower on
    Arrow-backed text)."""
    table = pa.Table.from_pandas(shown, preserve_index=False)
    with open(path, "wb") as handle:
        handle.write("\ufeff".encode())
        pa_csv.write_csv(table, handle, write_options=CSV_OPTIONS)


def write_per_group(frame: pd.DataFrame, by: list[str], folder: Path, stem: str) -> int:
    """One CSV per group in ``folder/<by...>/<stem>.csv``; returns the files written."""
    shown = _display(frame.drop(columns=by))

    def write(group: tuple[tuple, pd.DataFrame]) -> None:
        key, rows = group
        target = folder.joinpath(*(str(part) for part in key))
        target.mkdir(parents=True, exist_ok=True)
        write_csv(rows, target / f"{stem}.csv")

    groups = list(shown.groupby([frame[name] for name in by], sort=True))
    for group in groups:
        write(group)
    return len(groups)


def _consent(frame: pd.DataFrame) -> pd.Series:
    return frame["toestemming_ouders"].fillna(False).astype(bool) & frame["toestemming_datum"].notna()


def _latest(frame: pd.DataFrame, by: list[str], order: list[str]) -> pd.DataFrame:
    ordered = frame.sort_values([*order, "delivery", "delivery_row"], kind="stable", na_position="first")
    return ordered.drop_duplicates(by, keep="last")


def _first_school_year(e: pd.Timestamp, region) -> int:
    month, day = (int(part) for part in region.calendar.school_year_start.split("-"))
    return e.year - int((e.month * 100 + e.day) < month * 100 + day)


def po_vo_handover(linked: Linked, e: pd.Timestamp, region, folder: Path) -> int:
    """Routing follows the pupil: a running enrolment's school, else the latest unambiguous aanmelding's;
    the current and the coming school year only."""
    first = _first_school_year(e, region)
    po = linked.tables["po_transfers"]
    po = po.loc[po["schooljaar"].isin([f"{first}-{first + 1}", f"{first + 1}-{first + 2}"]).to_numpy()
                & ~linked.conflicted[po["pupil"].to_numpy()]]
    registered = po.loc[po["vo_brin6"].notna() & po["aanmelddatum"].notna()]
    latest = registered.groupby(["pupil", "schooljaar"])["aanmelddatum"].transform("max")
    registered = registered.loc[registered["aanmelddatum"] == latest]
    ambiguous = registered.groupby(["pupil", "schooljaar"])["vo_brin6"].transform("nunique") > 1
    registration = _latest(registered.loc[~ambiguous], ["pupil", "schooljaar"], [])
    registration = registration.set_index(["pupil", "schooljaar"])["vo_brin6"]
    enrolment = linked.tables["vo_enrolment"]
    running = enrolment.loc[(enrolment["uitschrijfdatum"].isna() | (enrolment["uitschrijfdatum"] > e)).to_numpy()]
    enrolled_at = _latest(running, ["pupil"], ["inschrijfdatum"]).set_index("pupil")["vo_brin6"]
    rows = _latest(po, ["pupil", "schooljaar"], ["aanmelddatum"])
    school = enrolled_at.reindex(rows["pupil"]).to_numpy(dtype=object)
    fallback = registration.reindex(pd.MultiIndex.from_frame(rows[["pupil", "schooljaar"]])).to_numpy(dtype=object)
    rows = rows.assign(vo_brin6=pd.array(np.where(pd.isna(school), fallback, school), dtype="str"))
    rows = rows.loc[rows["vo_brin6"].notna()]
    consent = _consent(rows)
    cluster = rows["cluster"].str.strip().str.lower().str.removeprefix("cluster").str.strip().isin(["1", "2"])
    tlv_due = pd.to_datetime(rows["schooljaar"].str[:4] + "-" + region.calendar.tlv_deadline, format="%Y-%m-%d") <= e
    signals = pd.DataFrame({
        "TLV_ONTBREEKT": rows["definitief_advies"].isin(["pro", "vso"]) & ~cluster
        & ~(rows["tlv_soort"].notna() & rows["tlv_datum"].notna()) & tlv_due,
        "OPP_ZONDER_INSTEMMING": rows["opp"].fillna(False).astype(bool) & rows["opp_instemming_datum"].isna(),
        "CLUSTER_LANDELIJK": cluster,
    })
    signal_text = pd.Series("", index=rows.index, dtype="str")
    for code in signals:  # a signal derived from a consent-gated field is shown only with consent
        shown = signals[code] & (consent if code == "OPP_ZONDER_INSTEMMING" else True)
        signal_text = signal_text + np.where(shown.to_numpy(dtype=bool), code + ", ", "")
    table = rows.assign(
        **{name: rows[name].where(consent) for name in CONSENT_FIELDS},
        **{name: rows[name].map(ADVICE_LABELS).fillna(rows[name]) for name in
           ("voorlopig_advies", "toets_advies", "definitief_advies")},
        reden_leeg=pd.Series("geen toestemming", index=rows.index, dtype="str").where(~consent),
        signalen=signal_text.str.removesuffix(", ").replace("", pd.NA),
    )
    columns = ["schooljaar", "vo_brin6", "bsn", "onderwijsnummer", "voornaam", "tussenvoegsel", "achternaam",
               "geboortedatum", "postcode", "ouder_email", "ouder_telefoon", "po_brin6", "aanmelddatum",
               "voorlopig_advies", "toets_advies", "definitief_advies", "ondersteuningsbehoefte", "opp",
               "opp_instemming_datum", "arrangement", "tlv_soort", "tlv_datum", "cluster", "toestemming_ouders",
               "toestemming_datum", "ondersteuning_details", "jeugdhulp_betrokken", "reden_leeg", "signalen"]
    table = table.sort_values(["schooljaar", "vo_brin6", "achternaam", "voornaam"], kind="stable").loc[:, columns]
    write_per_group(table, ["schooljaar", "vo_brin6"], folder, "overdracht")
    counts = signals.astype(int).assign(schooljaar=rows["schooljaar"], school=rows["vo_brin6"], leerlingen=1)
    for year, group in counts.groupby("schooljaar"):
        group.drop(columns="schooljaar").groupby("school").sum().to_csv(
            folder / str(year) / "swv_signalen.csv", sep=";", encoding="utf-8-sig")
    return len(table)


def vo_mbo_handover(linked: Linked, e: pd.Timestamp, region, folder: Path) -> int:
    """Once ingeschreven at one institution, only that one; leavers of the current and the coming
    transfer year; support from the VO school's record, else the PO dossier; absence of the last year."""
    flow = linked.tables["mbo_outflow"]
    flow = flow.loc[flow["mbo_brin"].notna() & ~linked.conflicted[flow["pupil"].to_numpy()]]
    rows = _latest(flow, ["pupil", "mbo_brin", "crebo"], ["status_datum"])
    month, day = (int(part) for part in region.calendar.school_year_start.split("-"))
    applied = rows["aanmelddatum"].fillna(e)
    ends = applied.dt.year + ((applied.dt.month * 100 + applied.dt.day) >= month * 100 + day).astype("int64")
    rows = rows.assign(jaar=rows["uitstroomdatum"].dt.year.astype("Int64").fillna(ends.astype("Int64")).astype("str"))
    first = _first_school_year(e, region)
    rows = rows.loc[rows["jaar"].isin([str(first), str(first + 1)]).to_numpy()]
    enrolled_at = _latest(rows.loc[rows["vva_status"].eq("ingeschreven").fillna(False).to_numpy()], ["pupil"],
                          ["status_datum"]).set_index("pupil")["mbo_brin"]
    at = enrolled_at.reindex(rows["pupil"]).to_numpy(dtype=object)
    rows = rows.loc[pd.isna(at) | (at == rows["mbo_brin"].to_numpy(dtype=object))]
    po = linked.tables["po_transfers"]
    support = ["ondersteuningsbehoefte", "opp", "opp_instemming_datum", "arrangement", "toestemming_ouders",
               "toestemming_datum", "ondersteuning_details", "jeugdhulp_betrokken"]
    vo_support = ["ondersteuningsbehoefte", "opp", "toestemming_ouders", "toestemming_datum", "ondersteuning_details"]
    dossier = _latest(po, ["pupil"], ["schooljaar", "aanmelddatum"]).set_index("pupil")[support]
    enrolment = _latest(linked.tables["vo_enrolment"], ["pupil"], ["inschrijfdatum"]).set_index("pupil")
    pupil = rows["pupil"].to_numpy()
    from_vo = enrolment[vo_support].reindex(pupil)
    has_vo = from_vo.notna().any(axis=1).to_numpy()
    joined = rows.drop(columns=[c for c in support if c in rows]).assign(
        **{name: (from_vo[name].to_numpy() if name in vo_support else pd.NA) for name in support},
        **{name: enrolment[name].reindex(pupil).to_numpy() for name in ("voornaam", "tussenvoegsel", "achternaam")},
        has_dossier=has_vo | np.isin(pupil, dossier.index.to_numpy()),
    )
    from_po = dossier.reindex(pupil)
    joined = joined.assign(**{name: joined[name].where(has_vo, from_po[name].to_numpy()) for name in support})
    hours = _absence_last_year(linked, joined, region, e)
    joined = joined.assign(uren_ongeoorloofd=hours["uren_ongeoorloofd"].to_numpy(),
                           uren_geoorloofd=hours["uren_geoorloofd"].to_numpy())
    consent = _consent(joined)
    reason = pd.Series("geen gegevens", index=joined.index, dtype="str").where(~joined["has_dossier"], "geen toestemming")
    table = joined.assign(**{name: joined[name].where(consent) for name in CONSENT_FIELDS},
                          vo_niveau=joined["vo_niveau"].map(ADVICE_LABELS).fillna(joined["vo_niveau"]),
                          reden_leeg=reason.where(~consent))
    columns = ["jaar", "mbo_brin", "bsn", "onderwijsnummer", "voornaam", "tussenvoegsel", "achternaam",
               "geboortedatum", "vo_brin6", "vo_niveau", "vo_diploma", "uitstroomdatum", "aanmelddatum", "crebo",
               "mbo_niveau", "vva_status", "status_datum", *support, "reden_leeg", "uren_ongeoorloofd",
               "uren_geoorloofd"]
    table = table.sort_values(["jaar", "mbo_brin", "achternaam", "voornaam"], kind="stable").loc[:, columns]
    write_per_group(table, ["jaar", "mbo_brin"], folder, "overdracht")
    return len(table)


def _absence_last_year(linked: Linked, leavers: pd.DataFrame, region, e: pd.Timestamp) -> pd.DataFrame:
    """Absence hours per leaver in the school year of its last day at VO; empty where its school delivered none."""
    absence = linked.tables["vo_absence"]
    last_day = (leavers["uitstroomdatum"] - pd.Timedelta(days=1)).fillna(e).to_numpy(dtype="datetime64[D]")
    year = _school_year(last_day, region)
    codes, distinct = pd.factorize(absence["week_start"])
    weeks = _school_year(distinct.to_numpy(dtype="datetime64[D]"), region)[codes]
    schools, names = pd.factorize(absence["vo_brin6"])
    delivered = np.unique(schools.astype(np.int64) * 10_000 + weeks)
    school = pd.Index(names).get_indexer(leavers["vo_brin6"])
    known = (school >= 0) & np.isin(school.astype(np.int64) * 10_000 + year, delivered)
    wanted = np.isin(weeks, np.unique(year))
    sums = (absence.loc[wanted, ["pupil", "uren_ongeoorloofd", "uren_geoorloofd"]].assign(year=weeks[wanted])
            .groupby(["pupil", "year"]).sum())
    found = sums.reindex(pd.MultiIndex.from_arrays([leavers["pupil"], year])).fillna(0.0).reset_index(drop=True)
    found.loc[~known, :] = np.nan
    return found


# --------------------------------------------------------------------------- outputs: alerts

EPOCH_MONDAY = np.datetime64("1970-01-05", "D")


class Weeks:
    """School weeks: Monday-Friday weeks not wholly inside a holiday, numbered consecutively."""

    def __init__(self, region, e: pd.Timestamp) -> None:
        days = [np.arange(np.datetime64(h.start, "D"), np.datetime64(h.end, "D") + 1) for h in region.calendar.holidays]
        holiday = np.concatenate([np.array([], dtype="datetime64[D]"), *days])
        mondays = np.unique(monday(holiday))
        inside = np.all([np.isin(mondays + k, holiday) for k in range(5)], axis=0) if len(mondays) else np.array([], bool)
        self.holidays = mondays[inside]
        day = np.datetime64(e.date(), "D")
        last = monday(np.array([day]))[0]
        last -= 7 if last + 4 >= day else 0
        weeks = []
        while len(weeks) < 4:
            if not np.isin(last, self.holidays):
                weeks.append(last)
            last -= 7
        self.window = np.array(weeks[::-1])  # the last 4 complete school weeks, oldest first
        self.last = self.window[-1]

    def number(self, mondays: np.ndarray) -> np.ndarray:
        return (mondays - EPOCH_MONDAY).astype(np.int64) // 7 - np.searchsorted(self.holidays, mondays)

    def since(self, start: np.ndarray) -> np.ndarray:
        return np.clip(self.number(np.array([self.last]))[0] - self.number(monday(start + 2)) + 1, 0, None)


def monday(days: np.ndarray) -> np.ndarray:
    days = np.asarray(days, dtype="datetime64[D]")
    return days - (days.astype(np.int64) + 3) % 7


def _school_year(days: np.ndarray, region) -> np.ndarray:
    month, day = (int(part) for part in region.calendar.school_year_start.split("-"))
    stamps = pd.DatetimeIndex(days)
    return (stamps.year - ((stamps.month * 100 + stamps.day) < month * 100 + day)).to_numpy()


def _on(year: np.ndarray, month_day: str) -> np.ndarray:
    return pd.to_datetime(pd.Series(year).astype("str") + "-" + month_day, format="%Y-%m-%d").to_numpy(dtype="datetime64[D]")


def _weekly_absence(absence: pd.DataFrame, weeks: Weeks) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unexcused hours per pupil and complete school week, and per pupil over the last four weeks."""
    hours = absence["uren_ongeoorloofd"].to_numpy(dtype=float, na_value=0.0)
    mondays = monday(absence["week_start"].to_numpy(dtype="datetime64[D]"))
    keep = (hours > 0) & (mondays <= weeks.last) & ~np.isin(mondays, weeks.holidays)
    week = (mondays[keep] - EPOCH_MONDAY).astype(np.int64) // 7
    combined, inverse = np.unique((absence["pupil"].to_numpy()[keep] << 16) | week, return_inverse=True)
    weekly = pd.DataFrame({"pupil": combined >> 16, "monday": EPOCH_MONDAY + 7 * (combined & 0xFFFF),
                           "hours": np.bincount(inverse, weights=hours[keep])})
    weekly["week"] = weeks.number(weekly["monday"].to_numpy(dtype="datetime64[D]"))
    window = weekly.loc[np.isin(weekly["monday"].to_numpy(dtype="datetime64[D]"), weeks.window)]
    return weekly, window.groupby("pupil").agg(hours=("hours", "sum"), first=("monday", "min"))


def alert_rules(linked: Linked, region, e: pd.Timestamp) -> pd.DataFrame:
    """The reasons of docs/alerts.md, vectorised over integer pupil ids; one row per (pupil, reason)."""
    pupils = linked.pupils
    n = linked.ids
    known = np.zeros(n, dtype=bool)
    known[pupils["pupil"].to_numpy()] = True
    day = np.datetime64(e.date(), "D")
    weeks = Weeks(region, e)

    enrolment = linked.tables["vo_enrolment"]
    ep = enrolment["pupil"].to_numpy()
    active = np.zeros(n, dtype=bool)
    active[ep[_active(enrolment, e)]] = True
    exempt = np.zeros(n, dtype=bool)
    exempt[ep[enrolment["vrijstelling"].notna().to_numpy()]] = True
    flow = linked.tables["mbo_outflow"]
    fp = flow["pupil"].to_numpy()
    in_outflow = np.zeros(n, dtype=bool)
    in_outflow[fp] = True
    sq = np.zeros(n, dtype=bool)
    sq[fp[(flow["vo_diploma"].fillna(False).astype(bool) & flow["vo_niveau"].isin(["havo", "vwo", "havo_vwo"])).to_numpy()]] = True

    born = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    born[pupils["pupil"].to_numpy()] = pupils["geboortedatum"].to_numpy(dtype="datetime64[D]")
    b = pd.DatetimeIndex(born)
    age = (e.year - b.year - ((e.month * 100 + e.day) < (b.month * 100 + b.day))).to_numpy(dtype=float)
    after = _school_year(np.array([day]), region)[0] > _school_year(born, region) + 16
    started = (day.astype("datetime64[M]").astype(np.int64)) >= born.astype("datetime64[M]").astype(np.int64) + 61
    unknown = np.isnat(born)
    swv = unknown | (started & ~after) | (after & (age < 18) & ~sq)
    dsp = ~unknown & (age >= 18) & (age <= 22) & ~sq
    scope = np.where(swv, "SWV", np.where(dsp, "DOORSTROOMPUNT", ""))

    hits = []

    def hit(reason: str, pupil: np.ndarray, start: np.ndarray) -> None:
        hits.append(pd.DataFrame({"pupil": np.asarray(pupil, dtype=np.int64), "reason": reason,
                                  "episode_start": np.asarray(start, dtype="datetime64[D]")}))

    # ABS: an enrolment ended, not active, no vrijstelling, not a leaver, in the SWV's scope.
    ends = enrolment["uitschrijfdatum"].to_numpy(dtype="datetime64[D]")
    ended = enrolment.loc[~np.isnat(ends) & (ends <= day)].sort_values("uitschrijfdatum").drop_duplicates("pupil", keep="last")
    p = ended["pupil"].to_numpy()
    fires = ~active[p] & ~exempt[p] & ~in_outflow[p] & (scope[p] == "SWV")
    abs_pupils, abs_start = p[fires], ended["uitschrijfdatum"].to_numpy(dtype="datetime64[D]")[fires]
    hit("ABS", abs_pupils, abs_start)

    weekly, window = _weekly_absence(linked.tables["vo_absence"], weeks)

    # LRV: the run of 20-hour weeks ending with the last complete school week is longer than 4 weeks.
    heavy = weekly.loc[weekly["hours"] >= 20].sort_values(["pupil", "week"], ascending=[True, False])
    last = weeks.number(np.array([weeks.last]))[0]
    runs = heavy.loc[(last - heavy["week"]) == heavy.groupby("pupil").cumcount()].groupby("pupil").agg(
        weeks=("week", "size"), start=("monday", "min"))
    runs = runs.loc[(runs["weeks"] > 4).to_numpy() & active[runs.index.to_numpy()]]
    hit("LRV", runs.index.to_numpy(), runs["start"].to_numpy())
    v16 = window.loc[(window["hours"] >= 16).to_numpy() & active[window.index.to_numpy()] & ~window.index.isin(runs.index)]
    hit("V16", v16.index.to_numpy(), v16["first"].to_numpy())

    # T3M: ABS or LRV for more than 3 months.
    limit = np.datetime64((e - pd.DateOffset(months=3)).date(), "D")
    lrv_start = runs["start"].to_numpy(dtype="datetime64[D]")
    hit("T3M", np.concatenate([abs_pupils[abs_start < limit], runs.index.to_numpy()[lrv_start < limit]]),
        np.concatenate([abs_start[abs_start < limit], lrv_start[lrv_start < limit]]))

    # PO_GEEN_VO: a transfer for a school year that has begun, and not active in VO.
    po = linked.tables["po_transfers"]
    year = pd.to_numeric(po["schooljaar"].str.slice(0, 4), errors="coerce")
    po, year = po.loc[year.notna()], year.dropna().astype(np.int64).to_numpy()
    begins = _on(year, region.calendar.school_year_start)
    fires = (begins <= day) & ~active[po["pupil"].to_numpy()]
    first = (pd.DataFrame({"pupil": po["pupil"].to_numpy()[fires], "start": begins[fires]})
             .sort_values("start", kind="stable").drop_duplicates("pupil", keep="last"))
    hit("PO_GEEN_VO", first["pupil"].to_numpy(), first["start"].to_numpy())

    # The two MBO rules, on leavers of the current or the previous school year without startkwalificatie.
    current = _school_year(np.array([day]), region)[0]
    left = flow["uitstroomdatum"].to_numpy(dtype="datetime64[D]")
    leaving = np.where(np.isnat(left), current, _school_year(left, region)).astype(np.int64)
    deadline = _on(leaving + 1, region.calendar.mbo_application_deadline)
    applied = flow["aanmelddatum"].to_numpy(dtype="datetime64[D]")
    leavers = pd.DataFrame({"pupil": fp, "deadline": deadline, "count_date": _on(leaving + 1, region.calendar.vsv_count_date),
                            "in_time": ~np.isnat(applied) & (applied <= deadline),
                            "enrolled": flow["vva_status"].eq("ingeschreven").fillna(False).to_numpy(dtype=bool),
                            "left": left, "status": flow["status_datum"].to_numpy(dtype="datetime64[D]")})
    leavers = leavers.loc[(leaving >= current - 1) & (leaving <= current) & ~sq[fp]]
    leavers = leavers.sort_values(["left", "status"], na_position="first", kind="stable")
    flags = leavers.groupby("pupil")[["in_time", "enrolled"]].any()
    leavers = leavers.drop_duplicates("pupil", keep="last").set_index("pupil").drop(columns=["in_time", "enrolled"]).join(flags)
    late = leavers.loc[(leavers["deadline"] < day) & ~leavers["in_time"]]
    hit("MBO_GEEN_AANMELDING", late.index.to_numpy(), late["deadline"].to_numpy())
    lost = leavers.loc[(leavers["count_date"] <= day) & leavers["in_time"] & ~leavers["enrolled"]]
    hit("MBO_NIET_INGESCHREVEN", lost.index.to_numpy(), lost["count_date"].to_numpy())

    # JZ_WACHT_VERZUIM: an open waitlist entry older than 14 weeks, active in VO, 8+ hours in the window.
    wait = linked.tables["youth_care_waitlist"]
    registered = wait["aanmelddatum"].to_numpy(dtype="datetime64[D]")
    open_entry = wait["startdatum"].isna().to_numpy() & wait["einddatum"].isna().to_numpy() & ~np.isnat(registered)
    waiting = pd.Series(registered[open_entry], index=wait["pupil"].to_numpy()[open_entry])
    waiting = waiting.loc[(day - waiting.to_numpy(dtype="datetime64[D]")).astype(np.int64) > 7 * 14]
    earliest = waiting.groupby(level=0).min()
    absent = window["hours"].reindex(earliest.index, fill_value=0.0).to_numpy() >= 8
    fires = absent & active[earliest.index.to_numpy()]
    hit("JZ_WACHT_VERZUIM", earliest.index.to_numpy()[fires], earliest.to_numpy()[fires])

    alerts = pd.concat(hits, ignore_index=True)
    alerts = alerts.loc[known[alerts["pupil"].to_numpy()] & ~linked.conflicted[alerts["pupil"].to_numpy()]]
    alerts["category"] = scope[alerts["pupil"].to_numpy()]
    alerts = alerts.loc[alerts["category"] != ""]
    routed = alerts["category"] == "DOORSTROOMPUNT"
    dsp_rows = (alerts.loc[routed].groupby("pupil", as_index=False)["episode_start"].min()
                .assign(reason="DOORSTROOMPUNT", category="DOORSTROOMPUNT"))
    return pd.concat([alerts.loc[~routed], dsp_rows], ignore_index=True).sort_values(["reason", "pupil"], ignore_index=True)


def write_alert_lists(alerts: pd.DataFrame, linked: Linked, region, folder: Path) -> None:
    """The coordinator's list and one per municipality (its own residents), as CSV; all alerts as Parquet."""
    people = linked.pupils.set_index("pupil")
    listed = alerts.join(people[["pupil_key", "bsn", "onderwijsnummer", "voornaam", "tussenvoegsel", "achternaam",
                                 "geboortedatum", "woongemeente_code", "buiten_regio", "vo_brin6"]], on="pupil")
    write_parquet(listed, folder / "signalen.parquet")
    shown = _display(listed.drop(columns=["pupil"]))
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(shown, folder / "signalen_thuiszittercoordinator.csv")
    own = ~listed["buiten_regio"].fillna(False).to_numpy(dtype=bool)
    for code in region.gemeente_codes:
        target = folder / "gemeenten" / code
        target.mkdir(parents=True, exist_ok=True)
        rows = own & listed["woongemeente_code"].eq(code).fillna(False).to_numpy(dtype=bool)
        write_csv(shown.loc[rows].drop(columns=["woongemeente_code", "buiten_regio"]), target / f"signalen_{code}.csv")


# --------------------------------------------------------------------------- outputs: exports


def municipal_exports(linked: Linked, alerts: pd.DataFrame, region, e: pd.Timestamp, folder: Path) -> int:
    """Per municipality, its residents only: a keyed-pseudonym monitoring table and counts with 1-5 suppressed."""
    pupils = linked.pupils.loc[~linked.pupils["buiten_regio"]]
    n = linked.ids
    absence = linked.tables["vo_absence"]
    recent = (absence["week_start"] >= e - pd.Timedelta(weeks=4)).to_numpy()
    hours = np.bincount(absence["pupil"].to_numpy()[recent], weights=absence["uren_ongeoorloofd"].to_numpy()[recent],
                        minlength=n)
    wait = linked.tables["youth_care_waitlist"]
    waiting = np.zeros(n, dtype=bool)
    waiting[wait["pupil"].to_numpy()[(wait["startdatum"].isna() & wait["einddatum"].isna()).to_numpy()]] = True
    reasons = alerts.groupby("pupil")["reason"].agg(", ".join)
    written = 0
    for code in region.gemeente_codes:
        own = pupils.loc[pupils["woongemeente_code"].eq(code).fillna(False).to_numpy(dtype=bool)]
        key = os.environ.get(f"SWV_EXPORT_KEY_{code}", "reference-key-" + code)
        pseudonym = pd.util.hash_pandas_object(own["pupil_key"], index=False,
                                               hash_key=hashlib.sha256(key.encode()).hexdigest()[:16])
        p = own["pupil"].to_numpy()
        age = e.year - own["geboortedatum"].dt.year
        monitoring = pd.DataFrame({
            "pseudoniem": pseudonym.map("{:016x}".format).to_numpy(), "geboortejaar": own["geboortedatum"].dt.year.to_numpy(),
            "pc4": own["postcode"].str.slice(0, 4).to_numpy(), "vo_brin6": own["vo_brin6"].to_numpy(),
            "onderwijsniveau": own["onderwijsniveau"].to_numpy(), "uren_ongeoorloofd_4w": hours[p],
            "wacht_op_jeugdhulp": waiting[p], "signalen": reasons.reindex(p).to_numpy(),
        })
        target = folder / code / e.date().isoformat()
        write_parquet(monitoring, target / "monitoring.parquet")
        write_csv(_display(monitoring), target / "monitoring.csv")
        band = pd.cut(age, [0, 12, 14, 16, 18, 200], right=False, labels=["<12", "12-13", "14-15", "16-17", "18+"])
        counts = pd.crosstab(band.to_numpy(), own["onderwijsniveau"].fillna("onbekend").to_numpy(), margins=True)
        counts.astype(object).where(~counts.isin(range(1, 6)), "<5").to_csv(
            target / "aggregaat_per_leeftijd.csv", sep=";", encoding="utf-8-sig")
        written += len(monitoring)
    return written
