"""Explicit parsing: the delivered text of a raw frame becomes the typed values of its model.

Pandera is not asked to coerce: a column that fails coercion hides all its other checks, and
``drop_invalid_rows`` raises on coercion failures (two known Pandera traps). Parsing here is explicit,
vectorised and per source (each partner has its own date format and code labels), and records
every value that is present but does not parse as a failure of that row and column, under the
rules ``date_parse``, ``number_parse`` or ``unknown_code``. The parsed value becomes NA, so the
checks that follow judge the rest of the row without reporting the same cell twice.

Two delivery shapes are completed here, each where the region file asks for it: yes/no fields
delivered as labels (support levels ``geen/basis/extra``, consent ``akkoord/geweigerd``) are mapped
through the code lists like codes are, and a field a source leaves empty may be derived
(``sources.<id>.derive``, ``DERIVATIONS``): the VVA application date from the first status.

Normalisation that is not a judgement happens here too: identifiers lose spaces and dots and are
upper-cased (``' 1234 ab'`` is the postcode ``1234AB``), CBS padding is stripped from gemeente
codes, text is stripped. Whether the result is *valid* is for ``schemas.checks`` to say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas.codelists import BOOLEAN_CODELIST, CODELIST_OF_FIELD, canonical_codes
from schemas.datasets import PROVENANCE_COLUMNS, canonical_fields
from schemas.frames import per_distinct
from settings.region import Region, Source

TRUE_WORDS = ("ja", "j", "yes", "true", "1", "x")
FALSE_WORDS = ("nee", "n", "no", "false", "0")
ISO_DATE = "%Y-%m-%d"  # what the Excel and JSON connectors write, accepted from every source

# Whitespace spelled out rather than \s: pandas runs \s patterns in Python's re instead of Arrow's
# RE2 (their \s differ), far slower. \u00a0 is the non-breaking space of spreadsheets.
_SPACES = "[ \t\r\n\u00a0]+"
_SEPARATORS = "[ \t\r\n\u00a0.\\-]"  # spaces, dots and hyphens inside identifiers
_MIDNIGHT = r"[T ]00:00(:00(\.0+)?)?$"  # '2026-03-01 00:00:00' from a spreadsheet date cell

FAILURE_COLUMNS = ["row", "column", "rule", "message"]
PARSE_RULES = {
    "date": "date_parse", "integer": "number_parse", "decimal": "number_parse", "boolean": "unknown_code",
    "code": "unknown_code",
}
UNKNOWN_CODE_COLUMNS = ["source_id", "column", "label", "rows"]
# Per dataset and field, the derivations a source may ask for (``derive``) and the fields each reads.
DERIVATIONS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "mbo_outflow": {"aanmelddatum": {"first_status_date": ("status_datum",)}},
}


@dataclass(frozen=True)
class ParseResult:
    """The typed frame and what did not parse.

    ``frame`` has the raw frame's index, every canonical field in the model's dtype, and the
    provenance columns. ``failures`` has one row per cell that did not parse (``row`` is the raw
    frame's index label). ``unknown_codes`` counts the code labels nobody mapped, per source and
    field: labels are not personal, so the UI may show them to the steward who adds the mapping.
    """

    frame: pd.DataFrame
    failures: pd.DataFrame
    unknown_codes: pd.DataFrame


def parse_dataset(dataset: str, raw: pd.DataFrame, region: Region) -> ParseResult:
    """Parse every canonical field of ``dataset`` in ``raw``; fields the sources do not map become NA."""
    sources = {source_id: region.sources[source_id] for source_id in raw["source_id"].unique()}
    groups = {source_id: raw.index[raw["source_id"] == source_id] for source_id in sources}
    fields = list(canonical_fields(dataset).items())
    parsed = [_parse_field(name, column, raw, groups, sources, region) for name, column in fields]
    frame = pd.DataFrame({name: field.values for (name, _), field in zip(fields, parsed)}, index=raw.index)
    for source_id, rows in groups.items():
        for name, how in sources[source_id].derive.items():
            # Derived only where the delivery left the field empty: a delivered value, even a bad one, is judged.
            empty = rows[_blank_to_na(raw.loc[rows, name]).isna().to_numpy()] if name in raw.columns else rows
            frame.loc[empty, name] = DERIVE[how](frame, rows).loc[empty]
    for name in PROVENANCE_COLUMNS:
        frame[name] = raw[name].astype("int64") if name == "delivery_row" else raw[name].astype("str")
    return ParseResult(
        frame=frame,
        failures=pd.concat([no_failures(), *(f.failures for f in parsed if f.failures is not None)],
                           ignore_index=True),
        unknown_codes=pd.concat([pd.DataFrame(columns=UNKNOWN_CODE_COLUMNS),
                                 *(f.unknown for f in parsed if f.unknown is not None)], ignore_index=True),
    )


@dataclass(frozen=True)
class _ParsedField:
    values: pd.Series
    failures: pd.DataFrame | None  # the cells that did not parse, if any
    unknown: pd.DataFrame | None  # their labels, for a code field


def _parse_field(name: str, column, raw: pd.DataFrame, groups: dict[str, pd.Index], sources: dict[str, Source],
                 region: Region) -> _ParsedField:
    text = _blank_to_na(raw[name]) if name in raw.columns else pd.Series(pd.NA, index=raw.index, dtype="str")
    kind = field_kind(name, str(column.dtype))
    if kind == "date":
        parsed = parse_dates(text, groups, sources)
    elif kind == "integer":
        parsed = parse_integers(text)
    elif kind == "decimal":
        parsed = parse_decimals(text)
    elif kind == "boolean":
        parsed = parse_booleans(text, name, groups, sources, region)
    elif kind == "code":
        parsed = parse_codes(text, name, groups, sources, region)
    else:
        parsed = per_distinct(text, NORMALISERS.get(name, _strip))  # identifiers, schools, names: repeated
    failed = text.notna() & parsed.isna()
    if kind not in PARSE_RULES or not failed.any():
        return _ParsedField(parsed, None, None)
    message = _failure_message(name, kind, raw.loc[failed, "source_id"], sources)
    labelled = kind in ("code", "boolean")
    unknown = _label_counts(text[failed], raw.loc[failed, "source_id"], name) if labelled else None
    return _ParsedField(parsed, _failures(failed, name, PARSE_RULES[kind], message), unknown)


def field_kind(name: str, dtype: str) -> str:
    """How a field is parsed: date, integer, decimal, boolean, code (a code list) or text."""
    if dtype.startswith("datetime64"):
        return "date"
    if name in CODELIST_OF_FIELD:
        return "code"
    return {"Int64": "integer", "float64": "decimal", "boolean": "boolean"}.get(dtype, "text")


def parse_dates(text: pd.Series, groups: dict[str, pd.Index], sources: dict[str, Source]) -> pd.Series:
    """Dates in each source's ``date_format``, or ISO; NaT where a value is no such date.

    Dates outside what datetime64[ns] holds (before 1677, after 2262) are typos and fail as well.
    """
    text = text.str.replace(_MIDNIGHT, "", regex=True)
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    for source_id, rows in groups.items():
        date_format = sources[source_id].date_format
        # A column holds a few thousand distinct dates: parse each once (strptime is the slow part).
        codes, distinct = pd.factorize(text.loc[rows])
        dates = pd.to_datetime(pd.Series(distinct, dtype="str"), format=date_format, errors="coerce")
        if date_format != ISO_DATE:
            dates = dates.fillna(pd.to_datetime(pd.Series(distinct, dtype="str"), format=ISO_DATE, errors="coerce"))
        dates = dates.where(dates.between(pd.Timestamp.min, pd.Timestamp.max)).astype("datetime64[ns]")
        # factorize marks a missing value with code -1: the NaT appended last.
        parsed.loc[rows] = np.append(dates.to_numpy(), np.datetime64("NaT", "ns"))[codes]
    return parsed


def parse_integers(text: pd.Series) -> pd.Series:
    """Whole numbers ('3', '3.0', '3,0' from a spreadsheet); anything else is NA (parsed as decimals)."""
    numbers = parse_decimals(text)
    whole = (numbers == numbers.round()) & (numbers.abs() < 2**53)
    return numbers.where(whole).astype("Int64")


_DECIMAL = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


def parse_decimals(text: pd.Series) -> pd.Series:
    """Decimal numbers with a decimal point or a decimal comma ('2,5' is 2.5); 'inf' and 'nan' are not numbers.

    Checked and converted by Arrow kernels (``pd.to_numeric`` on text goes value by value).
    """
    cleaned = pa.array(text.str.strip().str.replace(",", ".", regex=False), type=pa.large_string(), from_pandas=True)
    numbers = pc.cast(pc.if_else(pc.match_substring_regex(cleaned, _DECIMAL), cleaned, None), pa.float64())
    return pd.Series(numbers.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")


def parse_booleans(text: pd.Series, field: str = "", groups: dict[str, pd.Index] | None = None,
                   sources: dict[str, Source] | None = None, region: Region | None = None) -> pd.Series:
    """ja/nee, j/n, yes/no, true/false, 1/0, and x for a ticked box; case does not matter.

    Per source, labels the region maps onto ``ja``/``nee`` (``codelists.ja_nee``) and the source's
    own (``sources.<id>.codes.<field>``, which win) are yes/no values too: a support level
    ``geen/basis/extra`` or a consent ``akkoord/geweigerd``.
    """
    words = {word: True for word in TRUE_WORDS} | {word: False for word in FALSE_WORDS}
    if not groups:
        return per_distinct(text, lambda labels: _label_key(labels).map(words).astype("boolean"))
    shared = region.codelists.get(BOOLEAN_CODELIST, {}) if region is not None else {}
    parsed = pd.Series(pd.NA, index=text.index, dtype="boolean")
    for source_id, rows in groups.items():
        labels = shared | sources[source_id].codes.get(field, {})
        truth = words | {_label_key_of(label): code == "ja" for label, code in labels.items()}
        parsed.loc[rows] = per_distinct(text.loc[rows], lambda values: _label_key(values).map(truth).astype("boolean"))
    return parsed


def first_status_date(frame: pd.DataFrame, rows: pd.Index) -> pd.Series:
    """The application date of a VVA record is the date of its first status (domain.md §6).

    For partners that deliver the status history (one row per status, the first one 'aanmelding
    ontvangen') without a separate application date. An application is one pupil (BSN, else
    onderwijsnummer) at one MBO institution for one programme (``mbo_brin``, ``crebo``); its rows
    all get the earliest ``status_datum``. A delivery of the latest status alone cannot show the
    application date: then this is the date of that status (docs/configuration.md says so).
    """
    part = frame.loc[rows]
    pupil = part["bsn"].fillna(part["onderwijsnummer"])
    keys = [pupil.rename("pupil"), *(part[name] for name in ("mbo_brin", "crebo"))]
    first = part["status_datum"].groupby(keys, dropna=False).transform("min")
    return first.where(pupil.notna())


DERIVE = {"first_status_date": first_status_date}


def parse_codes(
    text: pd.Series, field: str, groups: dict[str, pd.Index], sources: dict[str, Source], region: Region
) -> pd.Series:
    """Delivered labels mapped onto canonical codes; a label nobody mapped becomes NA.

    Accepted per source: the canonical codes themselves, the region's code list
    (``codelists.<list>``) and the source's own labels (``sources.<id>.codes.<field>``), which win.
    Matching ignores case and repeated spaces. Numeric codes keep their width: a spreadsheet that
    turned code ``01`` into ``1`` still means ``01``.
    """
    codelist = CODELIST_OF_FIELD[field]
    canonical = canonical_codes(codelist)
    # A column holds a handful of distinct labels in up to millions of rows: each distinct label is
    # normalised and looked up once, and the rows take their code by position.
    label_of_row, distinct = pd.factorize(text)  # missing: -1
    labels = _label_key(pd.Series(distinct, dtype="str"))
    width = {len(code) for code in canonical if code.isdigit()}
    if len(width) == 1:
        digits = labels.str.fullmatch(r"\d+").fillna(False).astype(bool)
        labels = labels.where(~digits, labels.str.zfill(width.pop()))
    lookups = {}
    for source_id in groups:
        mapping = {code: code for code in canonical} | region.codelists.get(codelist, {})
        mapping |= sources[source_id].codes.get(field, {})
        lookups[source_id] = {_label_key_of(label): code for label, code in mapping.items()}
    codes = sorted({code for lookup in lookups.values() for code in lookup.values()})
    code_number = {code: number for number, code in enumerate(codes)}
    code_of_row = np.full(len(text), -1, dtype=np.int64)
    for source_id, rows in groups.items():
        lookup = lookups[source_id]
        code_of_label = np.array([code_number.get(lookup.get(label), -1) for label in labels], dtype=np.int64)
        at = text.index.get_indexer(rows)
        label = label_of_row[at]
        code_of_row[at] = np.where(label >= 0, code_of_label[np.maximum(label, 0)] if len(labels) else -1, -1)
    parsed = pa.array(codes, type=pa.large_string()).take(pa.array(code_of_row, mask=code_of_row < 0))
    return pd.Series(pd.array(parsed, dtype="str"), index=text.index)


def normalise_identifier(text: pd.Series) -> pd.Series:
    """Identifiers without spaces, dots or hyphens, upper-case ('07nu.00' is 07NU00)."""
    return _blank_to_na(text.str.replace(_SEPARATORS, "", regex=True).str.upper())


def normalise_bsn(text: pd.Series) -> pd.Series:
    """A BSN as an identifier; 8 digits get their leading zero back (spreadsheets drop it, domain.md §3)."""
    bsn = normalise_identifier(text)
    eight_digits = bsn.str.fullmatch(r"\d{8}").fillna(False).astype(bool)
    return bsn.where(~eight_digits, bsn.str.zfill(9))


def normalise_postcode(text: pd.Series) -> pd.Series:
    """'1234 ab', 'NL-1234AB' and '1234AB' are all 1234AB (python-stdnum nl.postcode compact)."""
    return normalise_identifier(text).str.replace(r"^NL", "", regex=True)


def normalise_gemeentecode(text: pd.Series) -> pd.Series:
    """'GM1690    ' (CBS pads to 10 characters) and 'gm1690' are GM1690; DUO's bare '1690' too (domain.md §1)."""
    code = normalise_identifier(text)
    bare = code.str.fullmatch(r"\d{4}").fillna(False).astype(bool)
    return code.where(~bare, "GM" + code)


def normalise_schooljaar(text: pd.Series) -> pd.Series:
    """'2026/2027' and '2026 - 2027' are 2026-2027."""
    return _blank_to_na(text.str.replace(r" *[/\-] *", "-", regex=True).str.strip())


def _strip(text: pd.Series) -> pd.Series:
    return _blank_to_na(text.str.strip())


NORMALISERS = {
    "bsn": normalise_bsn,
    "onderwijsnummer": normalise_identifier,
    "po_brin6": normalise_identifier,
    "vo_brin6": normalise_identifier,
    "mbo_brin": normalise_identifier,
    "zorgaanbieder_agb": normalise_identifier,
    "crebo": normalise_identifier,
    "postcode": normalise_postcode,
    "woongemeente_code": normalise_gemeentecode,
    "schooljaar": normalise_schooljaar,
}


def no_failures() -> pd.DataFrame:
    """An empty failure table with the column types every failure table has."""
    return pd.DataFrame({"row": pd.Series(dtype="int64"), **{c: pd.Series(dtype="str") for c in FAILURE_COLUMNS[1:]}})


def _blank_to_na(text: pd.Series) -> pd.Series:
    text = text.astype("str").str.strip()
    return text.where(text != "")


def _label_key(text: pd.Series) -> pd.Series:
    return text.str.replace(_SPACES, " ", regex=True).str.strip().str.lower()


def _label_key_of(label: str) -> str:
    return re.sub(_SPACES, " ", label).strip().lower()


def _failures(failed: pd.Series, column: str, rule: str, message: str | pd.Series) -> pd.DataFrame:
    rows = failed.index[failed.to_numpy()]
    if isinstance(message, pd.Series):
        message = message.to_numpy()
    return pd.DataFrame({"row": rows, "column": column, "rule": rule, "message": message}, columns=FAILURE_COLUMNS)


def _failure_message(name: str, kind: str, source_ids: pd.Series, sources: dict[str, Source]) -> str | pd.Series:
    """Why a value did not parse, in the steward's words; never the value itself."""
    if kind == "date":
        return f"{name} is geen datum (verwacht " + source_ids.map(
            {source_id: _expected_date(source) for source_id, source in sources.items()}
        ) + ")"
    return {
        "integer": f"{name} is geen geheel getal",
        "decimal": f"{name} is geen getal",
        "boolean": f"{name} is geen ja/nee-waarde (ja, nee, j, n, yes, no, true, false, 1, 0, x of een label "
                   f"uit codelists.ja_nee of de codes van de bron)",
        "code": f"{name}: label staat niet in codelijst {CODELIST_OF_FIELD.get(name)} of in de labels van de bron",
    }[kind]


def _expected_date(source: Source) -> str:
    """The date format a source promised, in the words of a Dutch spreadsheet user."""
    spelled = source.date_format.replace("%d", "dd").replace("%m", "mm").replace("%Y", "jjjj").replace("%y", "jj")
    return spelled if source.date_format == ISO_DATE else f"{spelled} of jjjj-mm-dd"


def _label_counts(labels: pd.Series, source_ids: pd.Series, column: str) -> pd.DataFrame:
    counts = (
        pd.DataFrame({"source_id": source_ids, "label": labels})
        .value_counts(["source_id", "label"])
        .rename("rows")
        .reset_index()
    )
    return counts.assign(column=column).loc[:, UNKNOWN_CODE_COLUMNS]
