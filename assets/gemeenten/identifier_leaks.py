"""The last line of defence of the exports: no pupil identifier in any published cell (domain.md §7)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assets.gemeenten.published_tables import MunicipalExport
from assets.signalen.alert_rules import as_dates

# The pupils' columns ``leaked_identifiers`` looks for in every published cell.
GUARDED_IDENTIFIERS = ("bsn", "onderwijsnummer", "voornaam", "achternaam", "postcode", "geboortedatum")


def _text_chunks(values: pd.Series) -> list[pa.Array]:
    """A column's values as Arrow string chunks (no copy for an Arrow-backed text column)."""
    array = pa.array(values.astype("str"), from_pandas=True)
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    return [chunk.cast(pa.string()) for chunk in chunks]


def _published_texts(export: MunicipalExport, lengths: pa.Array) -> dict[str, pa.Array]:
    """Every published column's distinct cell texts of these lengths (in bytes), by ``table.column``."""
    texts = {}
    for name, table in {"monitoring": export.monitoring, **export.aggregates}.items():
        for column in table.columns:
            text = _cell_texts(table[column])
            texts[f"{name}.{column}"] = pc.unique(text.filter(pc.is_in(pc.binary_length(text), value_set=lengths)))
    return texts


def _cell_texts(values: pd.Series) -> pa.Array:
    """A column's present values as text. Numbers by Arrow's cast, whole ones without ".0", so an
    identifier that became a number is still found; a column of mixed values as pandas shows them."""
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array(values.dropna().astype("str"), type=pa.string(), from_pandas=True)
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return pc.cast(array, pa.string()).drop_null()


def _published_birth_dates(candidates: pa.Array, guarded: GuardedIdentifiers) -> pa.Array:
    """The published texts that are a pupil's birth date written as jjjj-mm-dd or dd-mm-jjjj."""
    candidates = candidates.filter(pc.equal(pc.binary_length(candidates), 10))  # both forms are 10 characters
    shaped = []
    for pattern, form in ((r"^\d{4}-\d{2}-\d{2}$", "%Y-%m-%d"), (r"^\d{2}-\d{2}-\d{4}$", "%d-%m-%Y")):
        texts = candidates.filter(pc.match_substring_regex(candidates, pattern))
        shaped.append((texts, pc.cast(pc.strptime(texts, format=form, unit="s", error_is_null=True), pa.date32())))
    if not any(len(texts) for texts, _ in shaped):  # usually nothing published looks like a date
        return pa.array([], pa.string())
    return pa.concat_arrays([texts.filter(pc.fill_null(pc.is_in(days, value_set=guarded.birth_dates), False))
                             for texts, days in shaped])


class GuardedIdentifiers:
    """The region's pupil identifiers as the guard looks them up: made once a night, used for every
    municipality's export (the guard looks for every pupil of the region, so rebuilding them per
    municipality would cost the whole region once per municipality)."""

    def __init__(self, pupils: pd.DataFrame):
        self._pupils = pupils
        names = [pupils[c] for c in ("voornaam", "achternaam") if c in pupils.columns]
        postcodes = pupils["postcode"].astype("str").str.replace(" ", "", regex=False)
        self.texts = pa.chunked_array(
            [chunk for values in (pupils["bsn"], pupils["onderwijsnummer"], *names, postcodes)
             for chunk in _text_chunks(values)], type=pa.string())
        # The lengths (in bytes) of every identifier text and of a date's two forms (10 characters).
        self.lengths = pc.unique(pa.concat_arrays([pc.unique(pc.binary_length(self.texts)),
                                                   pa.array([10], pa.int32())]))

    @functools.cached_property
    def birth_dates(self) -> pa.Array:
        """Distinct birth dates; only needed when something published looks like a date."""
        births = self._pupils["geboortedatum"].dropna()
        return pa.array(np.unique(as_dates(births).to_numpy(dtype="datetime64[D]")))


def leaked_identifiers(export: MunicipalExport, pupils: pd.DataFrame | GuardedIdentifiers) -> list[str]:
    """Published columns that contain a BSN, onderwijsnummer, name, full postcode or birth date of a pupil.

    A last line of defence before anything is written: it must always be empty. It looks up every
    pupil's identifiers (of the whole region, not only this municipality) in the distinct published
    texts, once: a hash table of what is published, probed by the identifiers. Equal texts are of
    equal length, so only published texts as long as some identifier (or as a date) are kept: not
    the 64-character pseudonyms, almost everything published (a table of hundreds instead of 350 k
    entries, probed six million times). Birth dates are found the other way round (published texts
    shaped as a date, parsed, looked up among the birth dates), so no million birth dates are
    formatted as text per export. ``pupils``: the region's pupils, or their ``GuardedIdentifiers``
    made once for every export of the night.
    """
    guarded = pupils if isinstance(pupils, GuardedIdentifiers) else GuardedIdentifiers(pupils)
    secrets = guarded.texts
    texts = _published_texts(export, guarded.lengths)
    published = pc.unique(pa.chunked_array(list(texts.values()), type=pa.string()))
    leaked = pa.concat_arrays([pc.unique(secrets.filter(pc.is_in(secrets, value_set=published))),
                               _published_birth_dates(published, guarded)])
    tables = {"monitoring": export.monitoring, **export.aggregates}
    problems = [f"{name}.{column} (datum)" for name, table in tables.items()
                for column in table.columns if pd.api.types.is_datetime64_any_dtype(table[column])]
    if len(leaked):
        problems += [column for column, values in texts.items()
                     if pc.any(pc.is_in(values, value_set=leaked)).as_py()]
    return problems
