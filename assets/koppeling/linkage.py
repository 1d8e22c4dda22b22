"""Pupil linkage: one identity per pupil across every source, by BSN, else onderwijsnummer.

Never by name (docs/domain.md §3, §7): names are not identifiers and matching on them would
link different children. A pupil known by BSN in one source and only by onderwijsnummer in another
stays two identities; that is the safe error.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas.frames import select_rows, take_rows


# The identifiers a pupil key is made of: a step that only links rows to pupils needs no other column.
KEY_FIELDS = ("bsn", "onderwijsnummer")


def pupil_key(frame: pd.DataFrame) -> pd.Series:
    """``bsn:<BSN>`` where a BSN is present, else ``onr:<onderwijsnummer>``; NA without either."""
    bsn = frame["bsn"] if "bsn" in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="str")
    onr = frame["onderwijsnummer"] if "onderwijsnummer" in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="str")
    return ("bsn:" + bsn).fillna("onr:" + onr).astype("str")


def key_positions(frame: pd.DataFrame, keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Position in ``keys`` (pupil keys) of each row's ``pupil_key``; -1 when absent or without one.

    For several frames against the same keys, prepare the keys once: ``PupilIndex(keys).positions``.
    """
    return PupilIndex(keys).positions(frame)


class PupilIndex:
    """Pupil keys prepared once for looking up the rows of many frames (``positions``).

    A step that links several datasets to the same million pupils splits the keys into their BSNs
    and onderwijsnummers, and converts them to integers, once instead of per dataset.
    """

    def __init__(self, keys: pa.Array | pa.ChunkedArray) -> None:
        keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
        self.keys = keys.cast(pa.large_string())
        self._identifiers = []  # (column, positions of its keys, their identifier values)
        for column, prefix in (("bsn", "bsn:"), ("onderwijsnummer", "onr:")):
            of_kind = pc.fill_null(pc.starts_with(self.keys, prefix), False)
            where = np.flatnonzero(of_kind.to_numpy(zero_copy_only=False))
            known = KnownValues(pc.utf8_slice_codeunits(self.keys.filter(of_kind), len(prefix)))
            self._identifiers.append((column, where, known))

    def positions(self, frame: pd.DataFrame) -> np.ndarray:
        """Position among the keys of each row's ``pupil_key``; -1 when absent or without one.

        The same answer as looking up ``pupil_key(frame)``, without building a key text per row: the
        BSNs are looked up among the keys' BSNs and, where a row has none, the onderwijsnummers among
        theirs (Arrow hash lookups on the delivered values; millions of absence rows).
        """
        positions = np.full(len(frame), -1, dtype=np.int64)
        remaining = np.ones(len(frame), dtype=bool)
        for column, where, known in self._identifiers:
            if column not in frame.columns:
                continue
            values = pa.array(frame[column], type=pa.large_string(), from_pandas=True)
            present = remaining & pc.is_valid(values).to_numpy(zero_copy_only=False)
            found = known.index_of(values)
            hit = present & (found >= 0)
            positions[hit] = where[found[hit]]
            remaining &= ~present  # a row with a BSN is never looked up by its onderwijsnummer
        return positions


def index_in(values: pa.Array, known: pa.Array) -> np.ndarray:
    """Position of each value in ``known`` (-1 when absent); see ``KnownValues.index_of``."""
    return KnownValues(known).index_of(values)


class KnownValues:
    """Texts to look others up in, prepared once: also as integers where all are nine digits.

    Validated BSNs and onderwijsnummers are nine ASCII digits, so both sides usually convert to
    integers, which hash faster than the texts; other texts are looked up as they are.
    """

    def __init__(self, known: pa.Array) -> None:
        self.text = known

    @cached_property
    def number(self) -> pa.Array | None:
        return pc.cast(self.text, pa.int64()) if _nine_digits(self.text) else None

    def index_of(self, values: pa.Array) -> np.ndarray:
        """Position of each value among the known (-1 when absent).

        When the values are far fewer than the known (a waitlist of 60 k rows against a million
        pupils' keys), the smaller side is hashed: the known that occur among the values are found
        first, and the values looked up among those. Of similar sizes (enrolments), that builds two
        large hash tables instead of one, which costs more; the cross-over lies near one value to four
        known (bench/README.md, "Design notes").
        """
        known = self.text
        if _nine_digits(values) and self.number is not None:
            values, known = pc.cast(values, pa.int64()), self.number
        if len(values) * 4 > len(known):
            return pc.fill_null(pc.index_in(values, value_set=known), -1).to_numpy(zero_copy_only=False)
        occurring = pc.fill_null(pc.is_in(known, value_set=values), False)
        where = np.flatnonzero(occurring.to_numpy(zero_copy_only=False))
        found = pc.fill_null(pc.index_in(values, value_set=known.filter(occurring)), -1).to_numpy(zero_copy_only=False)
        return np.where(found >= 0, where[np.maximum(found, 0)] if len(where) else -1, -1)


def _nine_digits(text: pa.Array) -> bool:
    """Is every present value exactly nine ASCII digits (so the integer is the same identifier)?"""
    shaped = pc.and_(pc.equal(pc.binary_length(text), 9), pc.ascii_is_decimal(text))
    return bool(pc.all(shaped).as_py() in (True, None))  # missing values are skipped; none present: True


# Where a pupil's current facts (residence, name) come from, best first: the VO school's own
# administration is updated most often; the PO dossier, the VVA record and the municipality's
# waitlist are older snapshots of the same child.
_SOURCE_PRIORITY = ("vo_enrolment", "po_transfers", "mbo_outflow", "youth_care_waitlist")
_IDENTITY_FIELDS = ("bsn", "onderwijsnummer", "geboortedatum", "voornaam", "tussenvoegsel", "achternaam",
                    "postcode", "woongemeente_code", "buiten_regio")
_RECENCY = {"vo_enrolment": "inschrijfdatum", "po_transfers": "aanmelddatum", "mbo_outflow": "status_datum",
            "youth_care_waitlist": "aanmelddatum"}


def identity_rows(datasets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every identity-bearing row of every dataset, keyed, with its source priority and recency."""
    parts = []
    for priority, name in enumerate(_SOURCE_PRIORITY):
        frame = datasets.get(name)
        if frame is None or frame.empty:
            continue
        part = frame.loc[:, [c for c in _IDENTITY_FIELDS if c in frame.columns]].copy()
        part["pupil_key"] = pupil_key(frame)
        part["priority"] = priority
        part["recency"] = frame[_RECENCY[name]] if _RECENCY[name] in frame.columns else pd.NaT
        parts.append(part)
    rows = pd.concat(parts, ignore_index=True)
    return rows[rows["pupil_key"].notna()].reset_index(drop=True)


def _in_conflict(ids: np.ndarray, values: pd.Series, n_ids: int) -> np.ndarray:
    """Per identity id: does it have more than one distinct non-missing value?

    An id has two values exactly when its smallest and largest value code differ: one pass over the
    rows (``ufunc.at``), no sort.
    """
    known = values.notna().to_numpy()
    value_codes, _ = pd.factorize(values[known])
    known_ids = ids[known].astype(np.int64)
    lowest = np.full(n_ids, np.iinfo(np.int64).max, dtype=np.int64)
    highest = np.full(n_ids, -1, dtype=np.int64)
    np.minimum.at(lowest, known_ids, value_codes)
    np.maximum.at(highest, known_ids, value_codes)
    return (highest >= 0) & (highest != lowest)


def enrolments_active_on(enrolment: pd.DataFrame, on: pd.Timestamp) -> pd.DataFrame:
    """Enrolments running on ``on``: enrolled on or before it, not (yet) de-registered; keyed by pupil."""
    active = enrolment[(enrolment["inschrijfdatum"] <= on)
                       & (enrolment["uitschrijfdatum"].isna() | (enrolment["uitschrijfdatum"] > on))]
    return active.assign(pupil_key=pupil_key(active))


def _first_per_id(ids: np.ndarray, n_ids: int) -> np.ndarray:
    """Per identity id, the position of its first row in ``ids`` (-1 without one)."""
    first = np.full(n_ids, -1, dtype=np.int64)
    unique, position = np.unique(ids, return_index=True)
    first[unique] = position
    return first


def _run_starts(sorted_ids: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal ids (``sorted_ids`` sorted)."""
    return np.r_[True, sorted_ids[1:] != sorted_ids[:-1]] if len(sorted_ids) else np.zeros(0, dtype=bool)


def _run_ends(sorted_ids: np.ndarray) -> np.ndarray:
    """Mask of the last element of each run of equal ids (``sorted_ids`` sorted)."""
    return np.r_[sorted_ids[1:] != sorted_ids[:-1], True] if len(sorted_ids) else np.zeros(0, dtype=bool)


def _take(values: pd.Series, positions: np.ndarray) -> pd.Series:
    """``values`` at ``positions`` (-1: missing), keeping the dtype."""
    taken = values.iloc[np.where(positions >= 0, positions, 0)].reset_index(drop=True) if len(values) else \
        pd.Series(pd.NA, index=range(len(positions)), dtype=values.dtype)
    return taken.where(pd.Series(positions >= 0)) if (positions < 0).any() else taken


def link_pupils(datasets: dict[str, pd.DataFrame], on: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per pupil identity with its current facts, and the identities in conflict.

    Conflicting identities (two birth dates across sources; two schools on the evaluation date) are
    left out of ``pupils`` (they go to quarantine with their reason), so no output is built on facts
    we know to be contradictory. Keys are turned into integer ids once (``pd.factorize``); every
    grouping and lookup after that works on those ids, not on the key strings.
    """
    rows = identity_rows(datasets)
    ids, keys = pd.factorize(rows["pupil_key"])
    n_ids = len(keys)
    enrolment = datasets["vo_enrolment"]
    active = enrolments_active_on(enrolment, on)
    active_ids = keys.get_indexer(active["pupil_key"])
    birth = _in_conflict(ids, rows["geboortedatum"], n_ids)
    known = active_ids >= 0
    school = _in_conflict(active_ids[known], active["vo_brin6"].iloc[np.flatnonzero(known)], n_ids)
    conflicts = pd.concat([
        pd.DataFrame({"pupil_key": keys[birth].astype("str"), "rule": "conflicting_birthdate",
                      "message": "verschillende geboortedata voor hetzelfde BSN/onderwijsnummer"}),
        pd.DataFrame({"pupil_key": keys[school].astype("str"), "rule": "conflicting_enrolment",
                      "message": "op dezelfde dag ingeschreven op twee scholen"}),
    ], ignore_index=True)

    keep = ~(birth | school)[ids]
    rows, ids = select_rows(rows, keep).reset_index(drop=True), ids[keep]
    # Current facts: the best source, then the most recent row (domain: _SOURCE_PRIORITY).
    # Newest first, an undated row after every dated one (negating NaT's int64 minimum would overflow
    # back to the minimum and put it first).
    recency = rows["recency"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    newest_first = np.where(rows["recency"].isna().to_numpy(), np.iinfo(np.int64).max, -recency)
    order = np.lexsort((newest_first, rows["priority"].to_numpy(), ids))
    best = order[_run_starts(ids[order])]
    pupil_ids = ids[best]
    pupils = take_rows(rows.drop(columns=["priority", "recency"]), best).reset_index(drop=True)
    # Fill identity gaps (e.g. birth date missing in the best source) from the other sources, in row order.
    for field in ("geboortedatum", "bsn", "onderwijsnummer", "postcode", "woongemeente_code"):
        if field in rows.columns:
            present = rows[field].notna().to_numpy()
            first = _first_per_id(ids[present], n_ids)[pupil_ids]
            fallback = _take(rows[field].iloc[np.flatnonzero(present)], first)
            pupils[field] = pupils[field].where(pupils[field].notna(), fallback)
    presence = np.zeros((n_ids, len(_SOURCE_PRIORITY)), dtype=bool)
    presence[ids, rows["priority"].to_numpy()] = True
    for priority, name in enumerate(_SOURCE_PRIORITY):
        pupils[f"in_{name}"] = presence[pupil_ids, priority]
    # Each pupil's active enrolment on ``on``; the latest one if there are several.
    by_date = np.lexsort((active["inschrijfdatum"].to_numpy(dtype="datetime64[ns]"), active_ids))
    latest = by_date[_run_ends(active_ids[by_date])]
    latest = latest[active_ids[latest] >= 0]
    current = np.full(n_ids, -1, dtype=np.int64)
    current[active_ids[latest]] = latest
    for field in ("vo_brin6", "onderwijsniveau", "leerjaar"):
        pupils[field] = _take(active[field], current[pupil_ids])
    pupils["buiten_regio"] = pupils["buiten_regio"].fillna(False).astype(bool) if "buiten_regio" in pupils else False
    return pupils, conflicts.drop_duplicates(["pupil_key", "rule"]).reset_index(drop=True)
