"""The validation rules: one function per rule, named after it, each citing its source.

Column rules are registered as Pandera check methods (``pa.Field(bsn_elfproef=())`` in
``schemas.datasets``); cross-field rules are registered dataframe-level checks that return one
boolean per row and name the column they report in their ``column`` statistic, so every failure
lands on a row *and* a column in the quarantine. Every function is vectorised: a check over a
million rows costs a handful of array operations, never a Python loop per row. A missing value
passes every rule except ``required`` and ``one_identifier``: absence is their business alone.

The rule names are a contract: the quarantine table stores them, ``docs/validation.md`` explains
them to data stewards and the demo generator plants defects under exactly these names.
``duplicate_row`` is the one rule on the delivered text rather than on typed values (an exact
duplicate is a property of what was delivered); ``required`` is Pandera's own ``nullable=False``
on the model's fields; the parse rules (``date_parse``, ``number_parse``, ``unknown_code`` for
labels) live in ``schemas.parse``.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandera.extensions import register_check_method

from schemas.codelists import ADVICE_RANK, canonical_codes, known_schools
from schemas.frames import per_distinct
from settings.constants import TIMEZONE

# Every rule name a quarantine entry can carry (docs/validation.md explains each one).
RULES = (
    "bsn_elfproef", "onderwijsnummer_valid", "one_identifier", "known_school", "brin6_format", "brin4_format",
    "postcode_format", "gemeentecode_format", "agb_format", "crebo_format", "required", "not_in_future",
    "date_order", "advice_not_lowered", "birthdate_plausible", "mojibake", "duplicate_row", "schooljaar_format",
    "hours_range", "absence_within_schedule", "date_parse", "number_parse", "unknown_code", "control_character",
    "excel_formula", "excel_merged_cell",
)

BRIN4 = r"\d{2}[A-Z]{2}"  # domain.md §3, python-stdnum nl.brin
BRIN6 = r"\d{2}[A-Z]{2}\d{2}"
# Typical byte pairs of UTF-8 text decoded as Windows-1252 ('Ã«' for 'ë', 'â€™' for '’', 'Â ' for a
# non-breaking space); none occurs in Dutch names or prose written correctly.
MOJIBAKE = "Ã|Â|â€"

SCHOOL_YEAR = "schooljaar"  # the one text column cross-field rules read as a date (its first day)

# Elfproef weights from the most significant digit down (domain.md §3).
_ELFPROEF_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def _fullmatch(series: pd.Series, pattern: str) -> pd.Series:
    """True where the value matches the whole pattern or is missing."""
    return series.str.fullmatch(pattern).fillna(False).astype(bool) | series.isna()


def _per_code(series: pd.Series, verdict) -> pd.Series:
    """``verdict`` (a function of a Series of distinct values) of each distinct code, spread back over
    the rows; a missing value passes. Codes repeat: millions of absence rows name a few hundred
    schools, each matched and looked up once instead of once per row."""
    return per_distinct(series, lambda codes: verdict(codes).astype("boolean")).fillna(True).astype(bool)


@cache
def _arrow_value_set(values: frozenset[str]) -> pa.Array:
    """A set of codes as one Arrow array, built once per set (``Series.isin`` rebuilds its value set per call)."""
    return pa.array(sorted(values), type=pa.large_string())


def elfproef_remainder(series: pd.Series) -> pd.Series:
    """(Σ (9−i)·dᵢ for i < 8 − d₈) mod 11 of 9-digit strings; −1 for anything else (domain.md §3).

    Nine ASCII digits are nine bytes, so the digits of every such value sit side by side in one
    Arrow buffer: read as an n × 9 matrix of bytes, the weighted sum is nine column passes in
    int32 (python-stdnum is the reference in the tests). Not a matrix product: that needs the
    matrix as int64 first, 72 bytes a value of fresh memory, which costs more than the arithmetic.
    """
    text = pa.array(series, type=pa.large_string(), from_pandas=True)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    nine_digits = pc.fill_null(pc.and_(pc.equal(pc.binary_length(text), 9), pc.ascii_is_decimal(text)), False)
    digits = pc.if_else(nine_digits, text, pa.scalar("0" * 9, pa.large_string()))
    offsets = np.frombuffer(digits.buffers()[1], dtype=np.int64)[digits.offset:digits.offset + len(digits) + 1]
    matrix = np.frombuffer(digits.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(-1, 9)
    weighted = np.full(len(matrix), -ord("0") * sum(_ELFPROEF_WEIGHTS), dtype=np.int32)  # the bytes are '0' + d
    for column, weight in enumerate(_ELFPROEF_WEIGHTS):
        weighted += weight * matrix[:, column].astype(np.int32)
    valid = pc.and_(nine_digits, pc.not_equal(digits, "0" * 9)).to_numpy(zero_copy_only=False)
    return pd.Series(np.where(valid, weighted % 11, -1), index=series.index)


@register_check_method()
def bsn_elfproef(series: pd.Series) -> pd.Series:
    """BSN: 9 digits, not all zero, weighted sum ≡ 0 (mod 11) (domain.md §3, python-stdnum nl.bsn).

    An 8-digit BSN (a spreadsheet dropped the leading zero) is padded to 9 when parsed, as
    python-stdnum does; shorter numbers are not, since padding them makes nonsense valid.
    """
    return (elfproef_remainder(series) == 0) | series.isna()


@register_check_method()
def onderwijsnummer_valid(series: pd.Series) -> pd.Series:
    """Onderwijsnummer: 9 digits starting with 10, weighted sum ≡ 5 (mod 11) (domain.md §3)."""
    starts_10 = series.str.startswith("10").fillna(False).astype(bool)
    return (starts_10 & (elfproef_remainder(series) == 5)) | series.isna()


@register_check_method()
def brin6_format(series: pd.Series) -> pd.Series:
    """School location code: BRIN (2 digits, 2 letters) + 2-digit vestiging, e.g. 07NU00 (domain.md §3)."""
    return _per_code(series, lambda codes: codes.str.fullmatch(BRIN6))


@register_check_method()
def brin4_format(series: pd.Series) -> pd.Series:
    """Institution code (BRIN): 2 digits and 2 letters, e.g. 25LJ (domain.md §3)."""
    return _per_code(series, lambda codes: codes.str.fullmatch(BRIN4))


@register_check_method(statistics=["registry"])
def known_school(series: pd.Series, *, registry: tuple[str, ...] | None = None) -> pd.Series:
    """A well-formed BRIN6 must be a location in the DUO school registry (domain.md §3: the registry is DUO's).

    ``registry``: the region's own DUO files (``school_registry``); None is the national registry.
    A malformed code is ``brin6_format``'s failure, not this rule's, so a steward sees one reason.
    """
    def verdict(codes: pd.Series) -> pd.Series:
        schools = _arrow_value_set(known_schools(registry))
        registered = pc.is_in(pa.array(codes, type=pa.large_string()), value_set=schools)
        return pd.Series(registered.to_numpy(zero_copy_only=False), index=codes.index) | ~codes.str.fullmatch(BRIN6)

    return _per_code(series, verdict)


@register_check_method()
def postcode_format(series: pd.Series) -> pd.Series:
    """Dutch postcode 1234AB: no leading zero, letter pairs SA, SD and SS are never issued (domain.md §3)."""
    forbidden = series.str.slice(4).isin(["SA", "SD", "SS"])
    return _fullmatch(series, r"[1-9]\d{3}[A-Z]{2}") & ~forbidden


@register_check_method()
def gemeentecode_format(series: pd.Series) -> pd.Series:
    """CBS gemeentecode: GM followed by 4 digits, e.g. GM0118 (domain.md §1, §3)."""
    return _per_code(series, lambda codes: codes.str.fullmatch(r"GM\d{4}"))


@register_check_method()
def agb_format(series: pd.Series) -> pd.Series:
    """AGB code of a care provider: 8 digits (domain.md §3, Vektis)."""
    return _per_code(series, lambda codes: codes.str.fullmatch(r"\d{8}"))


@register_check_method()
def crebo_format(series: pd.Series) -> pd.Series:
    """Crebo code of an MBO qualification: 5 digits (domain.md §3 [U]; reference/mbo_kwalificaties_crebo_2015.csv)."""
    return _per_code(series, lambda codes: codes.str.fullmatch(r"\d{5}"))


@register_check_method()
def schooljaar_format(series: pd.Series) -> pd.Series:
    """School year as two consecutive years, e.g. 2026-2027 (school year 1 Aug–31 Jul, domain.md §2.3)."""
    def consecutive(years: pd.Series) -> pd.Series:
        shaped = years.str.fullmatch(r"\d{4}-\d{4}").fillna(False).astype(bool)
        first = pd.to_numeric(years.str.slice(0, 4).where(shaped), errors="coerce")
        second = pd.to_numeric(years.str.slice(5, 9).where(shaped), errors="coerce")
        return (shaped & (second == first + 1)).astype("boolean")

    return per_distinct(series, consecutive).fillna(False).astype(bool) | series.isna()


@register_check_method()
def hours_range(series: pd.Series) -> pd.Series:
    """Absence hours per school week between 0 and 40 (lesson hours, domain.md §4.3)."""
    return series.between(0, 40) | series.isna()


@register_check_method()
def mojibake(series: pd.Series) -> pd.Series:
    """Text must not contain UTF-8 read as Windows-1252 ('JosÃ©' for 'José'): the delivery's encoding is wrong.

    Names must reach the receiving school as written (domain.md §2.1: OSO needs the pupil's name).
    """
    garbled = per_distinct(series, lambda texts: texts.str.contains(MOJIBAKE, regex=True).astype("boolean"))
    return ~garbled.fillna(False).astype(bool)


@register_check_method(statistics=["codelist"])
def unknown_code(series: pd.Series, *, codelist: str) -> pd.Series:
    """A code field holds a canonical code of its list (domain.md §2.2, §4.4, §5.2, §6).

    Parsing maps delivered labels onto these codes and reports labels it does not know under the
    same rule name; this check guards the contract of the typed table.
    """
    return series.isin(canonical_codes(codelist)) | series.isna()


# --- cross-field rules: each reports on the column named by its ``column`` statistic -------------


@register_check_method(statistics=["column", "alternatives"], supported_types=pd.DataFrame)
def one_identifier(frame: pd.DataFrame, *, column: str, alternatives: tuple[str, ...] = ()) -> pd.Series:
    """Exactly one pupil identifier: a BSN, or for a pupil without one the onderwijsnummer (domain.md §3, §9 item 3).

    With no alternatives (youth-care waitlists: iJw identifies clients by BSN, domain.md §5.1) the
    column itself is required.
    """
    present = sum(frame[name].notna().astype(int) for name in (column, *alternatives))
    return present == 1


@register_check_method(statistics=["column", "evaluation_date"], supported_types=pd.DataFrame)
def not_in_future(frame: pd.DataFrame, *, column: str, evaluation_date: dt.date) -> pd.Series:
    """A date may not lie after the delivery date (``fetched_at``, Dutch calendar day) nor after the evaluation date.

    Nothing in these deliveries can have happened after it was delivered; a later date is a typo
    (domain.md §2.3, §5.4 timelines).
    """
    # A frame holds a handful of deliveries: convert each distinct fetched_at once.
    codes, moments = pd.factorize(frame["fetched_at"])
    days = pd.to_datetime(pd.Series(moments, dtype="str"), utc=True, format="ISO8601").dt.tz_convert(TIMEZONE)
    cutoffs = days.dt.tz_localize(None).dt.normalize().clip(upper=pd.Timestamp(evaluation_date)).to_numpy()
    cutoff = pd.Series(cutoffs[codes], index=frame.index)
    return ~(frame[column] > cutoff)


@register_check_method(
    statistics=["column", "not_before", "years_before", "school_year_start"], supported_types=pd.DataFrame
)
def date_order(
    frame: pd.DataFrame, *, column: str, not_before: str, years_before: int = 0, school_year_start: str = "08-01"
) -> pd.Series:
    """A date does not come before the date it follows (domain.md §5.3/§5.4, §6, §2.3).

    ``not_before`` names a date column (startdatum ≥ aanmelddatum) or ``schooljaar``:
    then the bound is the first day of that school year minus ``years_before`` years (a PO
    aanmelding or TLV more than two years before the pupil's first VO year is a wrong year).
    """
    if not_before == SCHOOL_YEAR:
        bound = school_year_first_day(frame[SCHOOL_YEAR], school_year_start) - pd.DateOffset(years=years_before)
    else:
        bound = frame[not_before]
    return ~(frame[column] < bound)


@register_check_method(statistics=["column", "provisional"], supported_types=pd.DataFrame)
def advice_not_lowered(frame: pd.DataFrame, *, column: str, provisional: str) -> pd.Series:
    """The definitive schooladvies is never lower than the provisional one (domain.md §2.3; order of §2.2)."""
    def rank(advice: pd.Series) -> pd.Series:
        return per_distinct(advice, lambda codes: codes.map(ADVICE_RANK).astype("Float64"))

    return ~(rank(frame[column]) < rank(frame[provisional])).fillna(False).astype(bool)


@register_check_method(
    statistics=["column", "at", "min_age", "max_age", "school_year_start"], supported_types=pd.DataFrame
)
def birthdate_plausible(
    frame: pd.DataFrame, *, column: str, at: str, min_age: int, max_age: int, school_year_start: str = "08-01"
) -> pd.Series:
    """Age in whole years on the date in ``at`` lies in [min_age, max_age] (domain.md §2.3, §4.1, §6).

    ``at`` is a date column, or ``schooljaar``: then the age counts on the school year's first day
    (a pupil entering VO is 10–14 on 1 August).
    """
    on = school_year_first_day(frame[at], school_year_start) if at == SCHOOL_YEAR else frame[at]
    age = age_in_years(frame[column], on)
    return age.between(min_age, max_age) | age.isna()


@register_check_method(statistics=["column", "excused", "scheduled"], supported_types=pd.DataFrame)
def absence_within_schedule(frame: pd.DataFrame, *, column: str, excused: str, scheduled: str) -> pd.Series:
    """Absence in a week (unexcused plus excused hours) is not more than the pupil's scheduled hours that
    week, where a delivery gives them: a pupil cannot miss lessons that were not on the timetable
    (domain.md §4.3: VO counts lesson hours). Without scheduled hours the rule has nothing to judge.
    """
    absent = frame[column].fillna(0) + frame[excused].fillna(0)
    return ~(absent > frame[scheduled]).fillna(False).astype(bool)


def duplicate_row(raw: pd.DataFrame, fields: list[str]) -> pd.Series:
    """An exact copy (same delivered text in every field) of an earlier row of the same delivery.

    A doubled row would count a pupil twice in every waitlist figure and export (domain.md §9 items
    11 and 14). The first occurrence stays valid; later ones are quarantined. Rows of different
    deliveries are never duplicates of each other: a re-delivery repeats rows by design.
    """
    keys = raw.loc[:, ["source_id", "delivery", *fields]]
    # A 64-bit fingerprint per row finds the candidates fast; the exact comparison runs on those alone.
    candidates = pd.Series(_row_hashes(keys)).duplicated(keep=False).to_numpy()
    duplicated = pd.Series(False, index=raw.index)
    duplicated.loc[candidates] = keys.loc[candidates].duplicated(keep="first")
    return duplicated


# --- helpers shared by the rules ---------------------------------------------------------------


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit number per row, equal for equal rows (missing equal to missing).

    Each column's values are numbered by Arrow's dictionary encoding (a hash per value, in C++),
    and the numbers mixed column by column: faster than ``pd.util.hash_pandas_object``,
    which hashes every text anew. Different rows may share a number; callers compare exactly.
    """
    fingerprint = np.zeros(len(frame), dtype=np.uint64)
    for name in frame.columns:
        values = pa.array(frame[name], from_pandas=True)
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        codes = pc.fill_null(pc.dictionary_encode(values).indices, -1).to_numpy(zero_copy_only=False)
        fingerprint = fingerprint * np.uint64(0x100000001B3) + (codes.astype(np.int64) + 1).astype(np.uint64)
    return fingerprint


def school_year_first_day(schooljaar: pd.Series, school_year_start: str = "08-01") -> pd.Series:
    """First day of the school year '2026-2027' (1 August 2026 by default, domain.md §2.3); NaT if malformed."""
    def first_day(years: pd.Series) -> pd.Series:
        return pd.to_datetime(years.str.slice(0, 4) + "-" + school_year_start, format="%Y-%m-%d", errors="coerce")

    return per_distinct(schooljaar, first_day)


def age_in_years(born: pd.Series, on: pd.Series) -> pd.Series:
    """Completed years between two date columns (birthday not yet reached counts one less)."""
    before_birthday = (on.dt.month < born.dt.month) | ((on.dt.month == born.dt.month) & (on.dt.day < born.dt.day))
    return (on.dt.year - born.dt.year) - before_birthday.astype("Int64")


RULE_MESSAGES = {
    "bsn_elfproef": "{column} is geen geldig BSN (9 cijfers, elfproef)",
    "onderwijsnummer_valid": "{column} is geen geldig onderwijsnummer (9 cijfers, begint met 10, elfproef)",
    "one_identifier": "precies één van {identifiers} moet gevuld zijn (nu geen of allebei)",
    "one_identifier_only": "{column} ontbreekt: deze bron identificeert een persoon alleen met {column}",
    "known_school": "{column} staat niet in het DUO-scholenregister",
    "brin6_format": "{column} is geen BRIN-vestigingscode (2 cijfers, 2 letters, 2 cijfers)",
    "brin4_format": "{column} is geen BRIN-code (2 cijfers, 2 letters)",
    "postcode_format": "{column} is geen Nederlandse postcode (1234AB)",
    "gemeentecode_format": "{column} is geen CBS-gemeentecode (GM en 4 cijfers)",
    "agb_format": "{column} is geen AGB-code (8 cijfers)",
    "crebo_format": "{column} is geen crebocode (5 cijfers)",
    "schooljaar_format": "{column} is geen schooljaar van twee opeenvolgende jaren (zoals 2026-2027)",
    "hours_range": "{column} ligt niet tussen 0 en 40 uur per week",
    "absence_within_schedule": (
        "{column} en {excused} samen zijn meer dan de geroosterde uren ({scheduled}) van die week"
    ),
    "mojibake": "{column} bevat verminkte tekens (UTF-8 gelezen als Windows-1252)",
    "unknown_code": "{column} bevat een code buiten de codelijst {codelist}",
    "required": "{column} is verplicht maar leeg",
    "not_in_future": "{column} ligt na de leverdatum of de peildatum",
    "date_order": "{column} ligt vóór {not_before}",
    "date_order_school_year": "{column} ligt meer dan {years_before} jaar vóór het begin van het schooljaar",
    "advice_not_lowered": "{column} is lager dan {provisional}",
    "birthdate_plausible": "leeftijd volgens {column} ligt niet tussen {min_age} en {max_age} jaar op {at}",
    "birthdate_plausible_school_year": (
        "leeftijd volgens {column} ligt niet tussen {min_age} en {max_age} jaar op de eerste dag van het schooljaar"
    ),
    "duplicate_row": "exacte kopie van een eerdere rij in dezelfde levering",
    "control_character": "{column} bevat een stuurteken (zoals NUL of BEL) dat in geen tekst thuishoort",
    "excel_formula": "{column}: cel {cell} bevat een formule zonder berekende waarde (lees: leeg)",
    "excel_merged_cell": "{column}: cel {cell} is deel van samengevoegde cellen en heeft zelf geen waarde",
}

# What a partner does about a rejected row, in the partner's own words: the "Hoe op te lossen" column of
# the feedback files (docs/validation.md, "Feedback to the partners"); the steward's version is the
# "what to do" column of docs/validation.md "The rules".
RULE_FIXES = {
    "bsn_elfproef": "Controleer het BSN in uw administratie; meestal is één cijfer verkeerd getypt.",
    "onderwijsnummer_valid": ("Controleer het onderwijsnummer (9 cijfers, begint met 10); staat er een BSN in deze "
                              "kolom, zet het dan in de BSN-kolom."),
    "one_identifier": ("Vul het BSN in; gebruik het onderwijsnummer alleen voor een leerling zonder BSN, en vul niet "
                       "allebei."),
    "known_school": ("Controleer de vestigingscode (BRIN6) met de school; is de school nieuw, meld het dan bij het "
                     "samenwerkingsverband."),
    "brin6_format": ("Lever de vestigingscode als tekst (2 cijfers, 2 letters, 2 cijfers, zoals 07NU00); Excel laat "
                     "vaak de voorloopnul weg."),
    "brin4_format": "Lever de instellingscode als tekst (2 cijfers, 2 letters, zoals 25LJ).",
    "postcode_format": "Corrigeer de postcode (4 cijfers en 2 letters, zoals 7901AB) in het adres.",
    "gemeentecode_format": "Lever de CBS-gemeentecode (GM en 4 cijfers, zoals GM0118).",
    "agb_format": "Lever de AGB-code als tekst van 8 cijfers; Excel laat vaak de voorloopnul weg.",
    "crebo_format": "Controleer de crebocode (5 cijfers) van de opleiding bij de mbo-instelling.",
    "required": "Vul dit verplichte veld in.",
    "not_in_future": ("De datum ligt na de leverdatum: meestal een verkeerd jaar of dag en maand omgewisseld. "
                      "Corrigeer de datum."),
    "date_order": "Deze datum ligt vóór de datum waar hij op volgt; controleer welke van de twee fout is.",
    "advice_not_lowered": ("Het definitieve advies is lager dan het voorlopige; controleer of de twee kolommen "
                           "niet zijn omgewisseld."),
    "birthdate_plausible": "Controleer de geboortedatum (vaak een verkeerd jaar) of de andere datum in de rij.",
    "mojibake": ("Exporteer het bestand opnieuw in de afgesproken tekenset (UTF-8 of Windows-1252): letters als ë "
                 "zijn verminkt."),
    "duplicate_row": "Deze rij staat twee keer in de levering; verwijder de kopie.",
    "schooljaar_format": "Lever het schooljaar als twee opeenvolgende jaren, zoals 2026-2027.",
    "hours_range": "Lever uren per week tussen 0 en 40; controleer of er minuten in plaats van uren zijn geëxporteerd.",
    "absence_within_schedule": ("Het verzuim is meer dan de geroosterde uren van die week; controleer welk getal fout "
                                "is (rooster van een andere week, minuten of klokuren in plaats van lesuren)."),
    "date_parse": "Corrigeer de datum; gebruik het afgesproken datumformaat (zoals dd-mm-jjjj).",
    "number_parse": "Lever een gewoon getal, zonder tekst of eenheid.",
    "control_character": "Het veld bevat een onzichtbaar stuurteken; maak een nieuwe, schone export.",
    "excel_formula": ("De cel bevat een formule zonder waarde; open en bewaar het bestand in Excel, of lever waarden "
                      "in plaats van formules."),
    "excel_merged_cell": "De cel is samengevoegd met andere cellen; maak de samenvoeging ongedaan en vul elke rij.",
    "unknown_code": ("Gebruik een waarde uit de afgesproken codelijst; is dit een geldige eigen omschrijving, meld "
                     "het dan bij het samenwerkingsverband."),
}

# C0 controls other than tab, line feed and carriage return, DEL and the C1 controls: never text.
CONTROL_CHARACTERS = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"


def control_character(series: pd.Series) -> pd.Series:
    """True where the delivered text holds no control character (rule ``control_character``).

    A NUL or BEL byte in a name or a note is a damaged export, not text: passed on, it ends up in a
    school's handover file. Tab and line breaks are allowed (multi-line notes).
    """
    text = pa.array(series.astype("str"), type=pa.large_string(), from_pandas=True)
    if not _may_hold_control_characters(text):  # almost every column: one pass over its bytes
        return pd.Series(True, index=series.index)
    found = pc.fill_null(pc.match_substring_regex(text, CONTROL_CHARACTERS), False)
    return pd.Series(~found.to_numpy(zero_copy_only=False), index=series.index)


_CONTROL_BYTE = np.zeros(256, dtype=bool)  # C0 controls but tab, LF and CR; DEL
_CONTROL_BYTE[[*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]] = True


def _may_hold_control_characters(text: pa.Array | pa.ChunkedArray) -> bool:
    """False when no byte of the text can be part of a control character: the regex then has nothing
    to find, and a whole column is cleared by a byte lookup instead of a regex per cell.

    UTF-8 writes a C0 control or DEL as that byte and a C1 control (U+0080-U+009F) as 0xC2 0x80-0x9F;
    no other character contains these bytes. Only the chunk's own bytes are read (a slice shares its
    whole parent's buffer); a null cell's bytes, if any, can only say "maybe", and the regex decides.
    """
    for chunk in (text.chunks if isinstance(text, pa.ChunkedArray) else [text]):
        _, offsets, data = chunk.buffers()
        if data is None or len(chunk) == 0:
            continue
        bounds = np.frombuffer(offsets, dtype=np.int64)[[chunk.offset, chunk.offset + len(chunk)]]
        view = np.frombuffer(data, dtype=np.uint8)[bounds[0]:bounds[1]]
        for start in range(0, len(view), 1 << 24):  # 16 MiB at a time keeps the lookup's mask small
            block = view[start:start + (1 << 24) + 1]
            if _CONTROL_BYTE[block].any():
                return True
            lead = np.flatnonzero(block[:-1] == 0xC2)
            if len(lead) and ((block[lead + 1] >= 0x80) & (block[lead + 1] <= 0x9F)).any():
                return True
    return False


def describe(rule: str, column: str, statistics: dict | None = None) -> str:
    """The steward's message for a failure: rule, column and the rule's parameters, never a value."""
    stats = {**(statistics or {}), "column": column}
    key = rule
    if rule == "one_identifier":
        stats["identifiers"] = " en ".join([column, *stats.get("alternatives", ())])
        key = "one_identifier" if stats.get("alternatives") else "one_identifier_only"
    if SCHOOL_YEAR in (stats.get("not_before"), stats.get("at")):
        key = f"{rule}_school_year"
    return RULE_MESSAGES[key].format(**stats)
