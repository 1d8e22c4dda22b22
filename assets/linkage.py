"""Pupil linkage: one identity per pupil across every source, by BSN, else onderwijsnummer.

Never by name (shared/domain.md §3, §7): names are not identifiers and matching on them would
link different children. A pupil known by BSN in one source and only by onderwijsnummer in another
stays two identities; that is the safe error.
"""

from __future__ import annotations

import pandas as pd


def pupil_key(frame: pd.DataFrame) -> pd.Series:
    """``bsn:<BSN>`` where a BSN is present, else ``onr:<onderwijsnummer>``; NA without either."""
    bsn = frame["bsn"] if "bsn" in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="str")
    onr = frame["onderwijsnummer"] if "onderwijsnummer" in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="str")
    return ("bsn:" + bsn).fillna("onr:" + onr).astype("str")


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
        part["dataset"] = name
        part["priority"] = priority
        part["recency"] = frame[_RECENCY[name]] if _RECENCY[name] in frame.columns else pd.NaT
        parts.append(part)
    rows = pd.concat(parts, ignore_index=True)
    return rows[rows["pupil_key"].notna()]


def birthdate_conflicts(rows: pd.DataFrame) -> pd.DataFrame:
    """Identities with two different birth dates across sources: one of them is wrong, so neither is used."""
    dated = rows.dropna(subset=["geboortedatum"])
    distinct = dated.groupby("pupil_key")["geboortedatum"].nunique()
    keys = distinct.index[distinct > 1]
    return pd.DataFrame({"pupil_key": keys.astype("str"), "rule": "conflicting_birthdate",
                         "message": "verschillende geboortedata voor hetzelfde BSN/onderwijsnummer"})


def enrolments_active_on(enrolment: pd.DataFrame, on: pd.Timestamp) -> pd.DataFrame:
    """Enrolments running on ``on``: enrolled on or before it, not (yet) de-registered; keyed by pupil."""
    active = enrolment[(enrolment["inschrijfdatum"] <= on)
                       & (enrolment["uitschrijfdatum"].isna() | (enrolment["uitschrijfdatum"] > on))]
    return active.assign(pupil_key=pupil_key(active))


def enrolment_conflicts(enrolment: pd.DataFrame, on: pd.Timestamp) -> pd.DataFrame:
    """Identities enrolled at two different school locations on the same day (the evaluation date)."""
    schools = enrolments_active_on(enrolment, on).groupby("pupil_key")["vo_brin6"].nunique()
    keys = schools.index[schools > 1]
    return pd.DataFrame({"pupil_key": keys.astype("str"), "rule": "conflicting_enrolment",
                         "message": "op dezelfde dag ingeschreven op twee scholen"})


def active_enrolment(enrolment: pd.DataFrame, on: pd.Timestamp) -> pd.DataFrame:
    """Each pupil's enrolment that is active on ``on`` (the latest one if several)."""
    active = enrolments_active_on(enrolment, on).sort_values(["pupil_key", "inschrijfdatum"])
    return active.drop_duplicates("pupil_key", keep="last")


def _lookup(values: pd.Series, keys: pd.Series) -> pd.Series:
    """``values`` (indexed by unique pupil key) aligned to ``keys``; NA where absent. Keeps the dtype."""
    return pd.Series(values.reindex(keys.to_numpy()).to_numpy(), index=keys.index, dtype=values.dtype)


def link_pupils(datasets: dict[str, pd.DataFrame], on: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per pupil identity with its current facts, and the identities in conflict.

    Conflicting identities are left out of ``pupils`` (they go to quarantine with their reason),
    so no output is built on facts we know to be contradictory.
    """
    rows = identity_rows(datasets)
    conflicts = pd.concat(
        [birthdate_conflicts(rows), enrolment_conflicts(datasets["vo_enrolment"], on)], ignore_index=True
    ).drop_duplicates(["pupil_key", "rule"])
    rows = rows[~rows["pupil_key"].isin(conflicts["pupil_key"])]
    latest = (rows.sort_values(["pupil_key", "priority", "recency"], ascending=[True, True, False], na_position="last")
                  .drop_duplicates("pupil_key", keep="first"))
    pupils = latest.drop(columns=["priority", "recency", "dataset"]).reset_index(drop=True)
    # Fill identity gaps (e.g. birth date missing in the best source) from the other sources.
    for field in ("geboortedatum", "bsn", "onderwijsnummer", "postcode", "woongemeente_code"):
        if field in rows.columns:
            fallback = rows.dropna(subset=[field]).drop_duplicates("pupil_key").set_index("pupil_key")[field]
            pupils[field] = pupils[field].where(pupils[field].notna(), _lookup(fallback, pupils["pupil_key"]))
    presence = rows.groupby(["pupil_key", "dataset"]).size().unstack(fill_value=0) > 0
    for name in _SOURCE_PRIORITY:
        column = f"in_{name}"
        pupils[column] = _lookup(presence[name], pupils["pupil_key"]).fillna(False).astype(bool) if name in presence else False
    active = active_enrolment(datasets["vo_enrolment"], on).set_index("pupil_key")
    for field in ("vo_brin6", "onderwijsniveau", "leerjaar"):
        pupils[field] = _lookup(active[field], pupils["pupil_key"])
    pupils["buiten_regio"] = pupils["buiten_regio"].fillna(False).astype(bool) if "buiten_regio" in pupils else False
    return pupils, conflicts.reset_index(drop=True)
