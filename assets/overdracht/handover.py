"""Warme overdracht: who goes into which school's file, what may be in it, and what needs attention.

Pure functions behind ``assets.overdracht.handover_assets`` (which writes the files); ``docs/handover.md`` is the
readers' description. The rules, each in one place:

- **Routing follows the pupil** (domain.md §2.1, §6; data minimisation, AVG art. 5): a PO dossier goes
  to the VO school location of the pupil's aanmelding until the pupil is enrolled in VO, from then on
  to the enrolling school only (``routed_transfers``). A VO leaver's record goes to every MBO
  institution applied to until the pupil is ``ingeschreven`` at one, from then on to that one only
  (``mbo_applications``). Only the current and the coming school year are handed over
  (``handover_school_years``, ``handover_leaving_years``).
- **Consent** (domain.md §2.4, §7): the consent-gated fields are filled only where consent was given
  *and* dated (``schemas.consent.consent_given``, ``blank_without_consent``); ``Reden leeg`` says why
  cells are empty (``empty_reason``).
- **Signals** (domain.md §2.4, §9.8): ``TLV_ONTBREEKT``, ``OPP_ZONDER_INSTEMMING``,
  ``CLUSTER_LANDELIJK`` (``handover_flags``).
- **Identity** (domain.md §3): pupils are linked by ``assets.koppeling.linkage.pupil_key``, never by name;
  identities in conflict (``pupil_conflicts``) are left out of every handover.

Codes are shown with their Dutch labels and names beside them (``schemas.vocabulary``). Everything is
vectorised: no loop runs per pupil, so a national year stays cheap (bench/README.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assets.koppeling.linkage import KEY_FIELDS, key_positions, pupil_key
from connectors.outbox import safe_segment
from schemas.codelists import qualification_names
from schemas.consent import consent_given
from schemas.datasets import consent_gated_fields
from schemas.frames import per_distinct, select_rows
from schemas.vocabulary import (
    ADVICE_LABELS,
    GEEN_ONDERSTEUNINGSBEHOEFTE,
    GEEN_TOESTEMMING,
    NIET_GELEVERD,
    TLV_LABELS,
    VVA_LABELS,
    labelled,
    named,
    names_of,
)

# BRIN (4 characters, an institution) or BRIN + vestiging (6, a school location): domain.md §3.
BRIN_CODE = re.compile(r"^\d{2}[A-Z]{2}(\d{2})?$")
SCHOOL_YEAR = re.compile(r"^\d{4}-\d{4}$")
YEAR = re.compile(r"^\d{4}$")

# The dossier fields that go to a school only with consent: the ones the canonical models mark
# consent-gated, plus whether (and when) parents agreed to the OPP handelingsdeel, which is OPP content
# (domain.md §2.4: "discuss with parents whether the OPP may be transferred").
CONSENT_FIELDS = (*sorted(consent_gated_fields("po_transfers")), "opp_instemming", "opp_instemming_datum")

# Signal code -> what the school and the SWV read (docs/handover.md).
FLAGS = {
    "TLV_ONTBREEKT": "Definitief advies pro of vso, maar geen TLV na de TLV-datum",
    "OPP_ZONDER_INSTEMMING": "OPP zonder instemming (of datum ervan) van de ouders met het handelingsdeel",
    "CLUSTER_LANDELIJK": "Cluster 1 of 2: toelating via de landelijke instelling, geen TLV van het SWV",
}
# Signals derived from a consent-gated field: on a pupil's row only with consent (counted always).
CONSENT_DERIVED_FLAGS = frozenset({"OPP_ZONDER_INSTEMMING"})

# Field -> Dutch header, in file order; both files start with who the pupil is.
IDENTITY_COLUMNS = {
    "bsn": "BSN",
    "onderwijsnummer": "Onderwijsnummer",
    "voornaam": "Roepnaam",
    "tussenvoegsel": "Tussenvoegsel",
    "achternaam": "Achternaam",
    "geboortedatum": "Geboortedatum",
}
SUPPORT_COLUMNS = {
    "ondersteuningsbehoefte": "Extra ondersteuning",
    "opp": "OPP",
    "opp_instemming": "Instemming OPP",
    "opp_instemming_datum": "Datum instemming OPP",
    "arrangement": "Arrangement",
}
CONSENT_COLUMNS = {
    "toestemming_ouders": "Toestemming ouders",
    "toestemming_datum": "Datum toestemming",
    "ondersteuning_details": "Ondersteuningsbehoeften",
    "jeugdhulp_betrokken": "Jeugdhulp betrokken",
    "reden_leeg": "Reden leeg",
}
PO_VO_COLUMNS = {
    **IDENTITY_COLUMNS,
    "postcode": "Postcode",
    "ouder_email": "E-mail ouder",
    "ouder_telefoon": "Telefoon ouder",
    "po_brin6": "School van herkomst (BRIN)",
    "po_naam": "School van herkomst",
    "vo_brin6": "Aangemeld bij (BRIN)",
    "aangemeld_naam": "Aangemeld bij",
    "aanmelddatum": "Datum aanmelding",
    "inschrijfdatum": "Ingeschreven op",
    "voorlopig_advies": "Voorlopig advies",
    "toets_advies": "Toetsadvies",
    "definitief_advies": "Definitief advies",
    **SUPPORT_COLUMNS,
    "tlv_soort": "TLV",
    "tlv_datum": "Datum TLV",
    "cluster": "Cluster",
    **CONSENT_COLUMNS,
    "signalen": "Signalen",
}
VO_MBO_COLUMNS = {
    **IDENTITY_COLUMNS,
    "vo_brin6": "VO-school (BRIN)",
    "vo_naam": "VO-school",
    "vo_niveau": "VO-niveau",
    "vo_diploma": "Diploma VO",
    "uitstroomdatum": "Datum uitstroom",
    "aanmelddatum": "Datum aanmelding",
    "crebo": "Crebo",
    "opleiding": "Opleiding",
    "mbo_niveau": "MBO-niveau",
    "vva_status": "VVA-status",
    "status_datum": "Datum status",
    "bron_ondersteuning": "Bron ondersteuning",
    **SUPPORT_COLUMNS,
    **CONSENT_COLUMNS,
    "verzuim_schooljaar": "Verzuim schooljaar",
    "uren_ongeoorloofd": "Uren ongeoorloofd verzuim",
    "uren_geoorloofd": "Uren geoorloofd verzuim",
}
# What a leaver's PO dossier contributes to the VO -> MBO handover, and what the VO school delivers.
SUPPORT_FIELDS = ("ondersteuningsbehoefte", "opp", "opp_instemming", "opp_instemming_datum", "arrangement",
                  "toestemming_ouders", "toestemming_datum", "ondersteuning_details", "jeugdhulp_betrokken")
VO_SUPPORT_FIELDS = ("ondersteuningsbehoefte", "opp", "toestemming_ouders", "toestemming_datum",
                     "ondersteuning_details")
# What the VO -> MBO handover reads of the weekly absence (the asset asks the lake for these columns only).
ABSENCE_COLUMNS = (*KEY_FIELDS, "vo_brin6", "week_start", "uren_ongeoorloofd", "uren_geoorloofd")


# ---------------------------------------------------------------------------------------------
# Folder names


def _segment(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"refusing {str(value)[:20]!r} as a folder name: not a {what} ({pattern.pattern})")
    return safe_segment(value)


def brin_segment(code: object) -> str:
    """A school folder name from a BRIN (4) or BRIN + vestiging (6) code (domain.md §3); else refused."""
    return _segment(code, BRIN_CODE, "BRIN code")


def year_segment(value: object) -> str:
    """A year folder name: a school year (``2026-2027``) or a calendar year (``2026``); else refused."""
    return _segment(value, SCHOOL_YEAR if "-" in str(value) else YEAR, "school year or year")


# ---------------------------------------------------------------------------------------------
# Rules


def blank_without_consent(frame: pd.DataFrame, consent: pd.Series) -> pd.DataFrame:
    """The frame with every ``CONSENT_FIELDS`` value emptied where ``consent`` is False (domain.md §7)."""
    return frame.assign(**{field: frame[field].where(consent) for field in CONSENT_FIELDS})


def cluster_number(cluster: pd.Series) -> pd.Series:
    """The cluster as delivered ("1", "Cluster 2", "cluster 3") reduced to its number ("1", "2", "3")."""
    return cluster.str.strip().str.lower().str.removeprefix("cluster").str.strip()


def national_cluster(cluster: pd.Series) -> pd.Series:
    """Cluster 1 or 2 ("1", "cluster 2"): organised nationally, no SWV TLV (domain.md §2.4)."""
    return cluster_number(cluster).isin(["1", "2"])


def tlv_deadlines(schooljaar: pd.Series, tlv_deadline: str) -> pd.Series:
    """The TLV date of each row: ``MM-DD`` (``calendar.tlv_deadline``) in the year its school year starts."""
    return pd.to_datetime(schooljaar.str[:4] + "-" + tlv_deadline, format="%Y-%m-%d")


def tlv_missing(frame: pd.DataFrame, *, evaluation_date: pd.Timestamp, tlv_deadline: str) -> pd.Series:
    """``TLV_ONTBREEKT``: definitief advies pro or vso, no TLV (kind and date), and the TLV date has passed.

    A TLV for PrO or VSO is issued by the SWV (domain.md §2.4, §9.8). Cluster 1/2 pupils are admitted
    by the national institution instead (``CLUSTER_LANDELIJK``), so the signal does not apply to them.
    A TLV recorded after the TLV date ends the signal: it asks for a TLV, not for a punctual one.
    """
    needs_tlv = frame["definitief_advies"].isin(["pro", "vso"]) & ~national_cluster(frame["cluster"])
    has_tlv = frame["tlv_soort"].notna() & frame["tlv_datum"].notna()
    due = tlv_deadlines(frame["schooljaar"], tlv_deadline) <= pd.Timestamp(evaluation_date)
    return needs_tlv & ~has_tlv & due


def opp_without_instemming(frame: pd.DataFrame) -> pd.Series:
    """``OPP_ZONDER_INSTEMMING``: an OPP without parents' agreement to its handelingsdeel: neither its
    date nor, from a partner that delivers it as yes/no, a ``ja`` (``opp_instemming``).

    Parents have instemmingsrecht on the handelingsdeel since 1 August 2017 (domain.md §2.4).
    """
    agreed = frame["opp_instemming_datum"].notna() | frame["opp_instemming"].fillna(False).astype(bool)
    return frame["opp"].fillna(False).astype(bool) & ~agreed


def handover_flags(frame: pd.DataFrame, *, evaluation_date: pd.Timestamp, tlv_deadline: str) -> pd.DataFrame:
    """One boolean column per signal in ``FLAGS``, computed on the full (ungated) dossier."""
    return pd.DataFrame({
        "TLV_ONTBREEKT": tlv_missing(frame, evaluation_date=evaluation_date, tlv_deadline=tlv_deadline),
        "OPP_ZONDER_INSTEMMING": opp_without_instemming(frame),
        "CLUSTER_LANDELIJK": national_cluster(frame["cluster"]),
    }, index=frame.index)


def signal_text(flags: pd.DataFrame, consent: pd.Series) -> pd.Series:
    """The ``Signalen`` cell: codes in ``FLAGS`` order, comma separated; empty when none.

    A signal derived from a consent-gated field is left off the row without consent: it would tell
    the school what the blanked field holds.
    """
    text = pd.Series("", index=flags.index, dtype="str")
    for code in FLAGS:
        shown = flags[code] & (consent if code in CONSENT_DERIVED_FLAGS else True)
        text = text + shown.map({True: f"{code}, ", False: ""}).astype("str")
    text = text.str.removesuffix(", ")
    return text.where(text != "")


def empty_reason(frame: pd.DataFrame, consent: pd.Series, delivered: pd.Series | bool = True) -> pd.Series:
    """``Reden leeg``: why a row's consent-gated cells are empty, in the words of ``schemas.vocabulary``.

    ``frame`` holds the row's support fields before any blanking. In this order: ``niet geleverd``
    when no support record of the pupil was delivered at all; nothing when consent was given and
    something is shown; ``geen toestemming`` when there is a support need or a gated value but no
    (dated) consent; ``geen ondersteuningsbehoefte`` when the record says no extra support and no
    OPP; else ``niet geleverd`` (consent, a support need, but no details delivered). So a pupil
    who needs nothing never reads as one whose parents refused (docs/handover.md "Reden leeg").
    """
    gated = [field for field in CONSENT_FIELDS if field in frame.columns]
    present = frame.loc[:, gated].notna().any(axis=1).to_numpy()
    need = (frame["ondersteuningsbehoefte"].fillna(False).astype(bool)
            | frame["opp"].fillna(False).astype(bool)).to_numpy()
    given = consent.to_numpy(dtype=bool)
    known = np.broadcast_to(np.asarray(delivered, dtype=bool), given.shape)
    reason = np.select(
        [~known, given & present, ~given & (need | present), ~need],
        [NIET_GELEVERD, "", GEEN_TOESTEMMING, GEEN_ONDERSTEUNINGSBEHOEFTE],
        default=NIET_GELEVERD,
    )
    return pd.Series(reason, index=frame.index, dtype="str").replace("", pd.NA)


def school_year_starts(dates: pd.Series | np.ndarray, school_year_start: str) -> np.ndarray:
    """The calendar year in which the school year of each date began (2026 for 10 October 2026).

    In numpy day arithmetic: it runs over the millions of weekly absence rows. Dates must be present.
    """
    days = np.asarray(dates, dtype="datetime64[D]")
    month, day = (int(part) for part in school_year_start.split("-"))
    years = days.astype("datetime64[Y]")
    starts = (years.astype("datetime64[M]") + (month - 1)).astype("datetime64[D]") + (day - 1)
    return years.astype(np.int64) + 1970 - (days < starts)


def handover_school_years(evaluation_date: pd.Timestamp, school_year_start: str) -> tuple[str, str]:
    """The current and the coming school year on ``E`` (``2026-2027``, ``2027-2028``): the PO -> VO
    transfers that are handed over. An older year's pupils are in VO already; their school has the
    dossier (docs/handover.md "Who receives whom")."""
    first = int(school_year_starts([pd.Timestamp(evaluation_date)], school_year_start)[0])
    return f"{first}-{first + 1}", f"{first + 1}-{first + 2}"


def handover_leaving_years(evaluation_date: pd.Timestamp, school_year_start: str) -> tuple[str, str]:
    """The years of uitstroom whose leavers enter MBO in the current or the coming school year: the
    leavers of last summer (``2026`` on 5 October 2026) and of next summer (``2027``)."""
    first = int(school_year_starts([pd.Timestamp(evaluation_date)], school_year_start)[0])
    return str(first), str(first + 1)


# ---------------------------------------------------------------------------------------------
# The handover tables


@dataclass(frozen=True)
class Handover:
    """The rows for the receiving schools, and what the manifests and the metadata need.

    ``table``: ``school`` and ``year`` (the folder), then the Dutch columns, in file order, sorted.
    ``flags``: one boolean column per signal, same index, before any consent gating (for counts).
    ``sources``: per ``school`` and ``year`` the deliveries (``delivery``, ``sha256``) the rows came from.
    ``left_out``: rows or pupils not handed over, by reason (counts only).
    """

    table: pd.DataFrame
    flags: pd.DataFrame
    sources: pd.DataFrame
    left_out: dict[str, int]

    @property
    def columns(self) -> list[str]:
        return [c for c in self.table.columns if c not in ("school", "year")]

    @property
    def blanked(self) -> pd.Series:
        """Rows whose consent-gated fields were emptied for want of consent."""
        return self.table["Reden leeg"].eq(GEEN_TOESTEMMING).fillna(False)

    def schools(self) -> Iterator[tuple[str, str, pd.DataFrame, list[dict[str, str]]]]:
        """``(year, school, rows with the Dutch columns, source deliveries)`` per receiving school."""
        sources = {key: group.loc[:, ["delivery", "sha256"]].to_dict("records")
                   for key, group in self.sources.groupby(["year", "school"], sort=True)}
        for (year, school), rows in self.table.groupby(["year", "school"], sort=True):
            yield year, school, rows.loc[:, self.columns].reset_index(drop=True), sources.get((year, school), [])


def _latest(frame: pd.DataFrame, by: list[str], order: list[str]) -> pd.DataFrame:
    """The last row per ``by`` when sorted by ``order`` then delivery order (deterministic)."""
    ordered = frame.sort_values([*order, "fetched_at", "delivery", "delivery_row"], kind="stable", na_position="first")
    return ordered.drop_duplicates(by, keep="last")


def _sorted_for_reading(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Folder, then surname and first name as a reader looks them up, then the pupil key (a tie-breaker)."""
    return frame.sort_values(["year", "school", "achternaam", "voornaam", *keys], kind="stable", na_position="last",
                             key=lambda s: s.str.lower() if s.dtype == "str" else s)


def _sources(frame: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    parts = [frame.loc[:, ["school", "year", name, sha]].set_axis(["school", "year", "delivery", "sha256"], axis=1)
             for name, sha in pairs]
    out = pd.concat(parts, ignore_index=True).dropna(subset=["delivery"]).drop_duplicates()
    return out.sort_values(["year", "school", "delivery", "sha256"], kind="stable").reset_index(drop=True)


def _current_enrolments(vo_enrolment: pd.DataFrame, keys: pd.Series, evaluation_date: pd.Timestamp) -> pd.DataFrame:
    """Per pupil key (of ``keys``) the VO enrolment that has not ended on ``E`` (one that starts later, on
    1 August, counts: the school has enrolled the pupil); of several, the one that began last.
    Columns ``pupil_key``, ``enrolled_brin6``, ``inschrijfdatum``, ``enrolment_delivery``, ``enrolment_sha256``."""
    wanted = pa.array(keys.dropna().unique(), type=pa.large_string())
    rows = select_rows(vo_enrolment, key_positions(vo_enrolment, wanted) >= 0)
    rows = rows.assign(pupil_key=pupil_key(rows))
    ends = rows["uitschrijfdatum"]
    running = rows.loc[(ends.isna() | (ends > pd.Timestamp(evaluation_date))).to_numpy() & rows["pupil_key"].notna()]
    latest = _latest(running, ["pupil_key"], ["inschrijfdatum"])
    return latest.loc[:, ["pupil_key", "vo_brin6", "inschrijfdatum", "delivery", "delivery_sha256"]].rename(
        columns={"vo_brin6": "enrolled_brin6", "delivery": "enrolment_delivery",
                 "delivery_sha256": "enrolment_sha256"})


def routed_transfers(po_transfers: pd.DataFrame, vo_enrolment: pd.DataFrame, pupil_conflicts: pd.DataFrame, *,
                     evaluation_date: pd.Timestamp, school_year_start: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Each pupil's PO dossier per school year, routed to exactly one VO school location (``school``).

    Routing follows the pupil (domain.md §2.1; AVG art. 5 data minimisation): once a VO enrolment
    exists that has not ended, the dossier goes to the enrolling school only, also when the pupil
    registered elsewhere (that school no longer receives it). Before enrolment it goes to the school
    of the aanmelding: only rows with a receiving school and an aanmelddatum count (no dossier before
    aanmelding); of several aanmeldingen the latest counts, and two different schools on the same
    latest date cannot be told apart, so the pupil goes to neither until enrolled. Only the current
    and the coming school year (``handover_school_years``). Identities in conflict and rows without an
    identifier are left out. Adds ``pupil_key``, ``school``, ``inschrijfdatum`` (of the enrolment
    the routing follows, else empty) and the enrolment's delivery.
    """
    keyed = po_transfers.assign(pupil_key=pupil_key(po_transfers))
    years = handover_school_years(evaluation_date, school_year_start)
    in_years = keyed["schooljaar"].isin(years).to_numpy()
    conflict = keyed["pupil_key"].isin(pupil_conflicts["pupil_key"]).to_numpy()
    candidates = keyed.loc[in_years & ~conflict & keyed["pupil_key"].notna().to_numpy()]

    pupil = ["pupil_key", "schooljaar"]
    dossier = _latest(candidates, pupil, ["aanmelddatum"])  # a registered row wins over one without
    applied = candidates.loc[candidates["vo_brin6"].notna() & candidates["aanmelddatum"].notna()]
    latest = applied.loc[applied["aanmelddatum"] == applied.groupby(pupil)["aanmelddatum"].transform("max")]
    ambiguous = latest.groupby(pupil)["vo_brin6"].transform("nunique") > 1
    registration = _latest(latest.loc[~ambiguous], pupil, []).loc[:, [*pupil, "vo_brin6"]].rename(
        columns={"vo_brin6": "registered_brin6"})
    enrolled = _current_enrolments(vo_enrolment, dossier["pupil_key"], evaluation_date)
    routed = (dossier.merge(registration, on=pupil, how="left", validate="one_to_one")
                     .merge(enrolled, on="pupil_key", how="left", validate="many_to_one"))
    routed = routed.assign(school=routed["enrolled_brin6"].fillna(routed["registered_brin6"]))
    chosen = routed.loc[routed["school"].notna()]
    unplaced = routed.loc[routed["school"].isna()]
    ambiguous_pupils = latest.loc[ambiguous, pupil].drop_duplicates()
    left_out = {
        "transfers_outside_current_school_years": int((~in_years).sum()),
        "pupils_without_aanmelding_or_enrolment": int(
            unplaced.merge(ambiguous_pupils, on=pupil, how="left", indicator=True)["_merge"].eq("left_only").sum()),
        "pupils_in_conflict": int(keyed.loc[in_years & conflict, "pupil_key"].nunique()),
        "pupils_registered_at_two_schools_same_day": int(
            unplaced.merge(ambiguous_pupils, on=pupil, how="inner").shape[0]),
        "pupils_routed_to_enrolling_school_elsewhere": int(
            (chosen["enrolled_brin6"].notna() & chosen["registered_brin6"].notna()
             & (chosen["enrolled_brin6"] != chosen["registered_brin6"])).sum()),
    }
    return chosen.drop(columns=["registered_brin6", "enrolled_brin6"]), left_out


def po_vo_handover(po_transfers: pd.DataFrame, vo_enrolment: pd.DataFrame, pupil_conflicts: pd.DataFrame, *,
                   evaluation_date: pd.Timestamp, tlv_deadline: str, school_year_start: str = "08-01") -> Handover:
    """The PO → VO handover rows, per receiving school location and school year.

    Routing by ``routed_transfers``; consent-gated fields blanked without consent, ``Reden leeg`` by
    ``empty_reason``; signals in ``Signalen``; school names beside codes (domain.md §2.1, §2.4, §7).
    """
    rows, left_out = routed_transfers(po_transfers, vo_enrolment, pupil_conflicts, evaluation_date=evaluation_date,
                                      school_year_start=school_year_start)
    rows = _sorted_for_reading(rows.assign(year=rows["schooljaar"]), ["pupil_key"])
    flags = handover_flags(rows, evaluation_date=evaluation_date, tlv_deadline=tlv_deadline)
    consent = consent_given(rows)
    shown = blank_without_consent(rows, consent).assign(
        po_naam=names_of(rows["po_brin6"]),
        aangemeld_naam=names_of(rows["vo_brin6"]),
        voorlopig_advies=labelled(rows["voorlopig_advies"], ADVICE_LABELS),
        toets_advies=labelled(rows["toets_advies"], ADVICE_LABELS),
        definitief_advies=labelled(rows["definitief_advies"], ADVICE_LABELS),
        tlv_soort=labelled(rows["tlv_soort"], TLV_LABELS),
        reden_leeg=empty_reason(rows, consent),
        signalen=signal_text(flags, consent),
    )
    table = shown.loc[:, ["school", "year", *PO_VO_COLUMNS]].rename(columns=PO_VO_COLUMNS)
    return Handover(
        table=table.reset_index(drop=True),
        flags=flags.reset_index(drop=True),
        sources=_sources(rows, [("delivery", "delivery_sha256"), ("enrolment_delivery", "enrolment_sha256")]),
        left_out=left_out,
    )


def swv_signal_overview(handover: Handover) -> dict[str, pd.DataFrame]:
    """Per school year: signal counts per receiving school and a total row; counts only, no pupils.

    Counts include signals left off a row for want of consent (``CONSENT_DERIVED_FLAGS``): the SWV
    sees how often they occur, never for whom.
    """
    counts = pd.concat([handover.table.loc[:, ["year", "school"]], handover.flags.astype("int64"),
                        handover.blanked.astype("int64").rename(GEEN_TOESTEMMING)], axis=1)
    counts = counts.assign(Leerlingen=1)
    columns = ["Leerlingen", *FLAGS, GEEN_TOESTEMMING]
    overview = {}
    for year, group in counts.groupby("year", sort=True):
        per_school = group.groupby("school", sort=True)[columns].sum().reset_index()
        per_school.insert(1, "Vestiging", names_of(per_school["school"]))
        total = pd.DataFrame([{"school": "Totaal", "Vestiging": "", **per_school[columns].sum().to_dict()}])
        table = pd.concat([per_school, total], ignore_index=True)
        overview[year] = table.rename(columns={"school": "Vestiging (BRIN)", GEEN_TOESTEMMING: "Zonder toestemming"})
    return overview


def leaving_year(leavers: pd.DataFrame, *, school_year_start: str, evaluation_date: pd.Timestamp) -> pd.Series:
    """The year of uitstroom: ``uitstroomdatum``'s year; before leaving, when the application's school year ends.

    Applications come in before 1 April of the final year (domain.md §6), months before the pupil
    leaves, so an applicant without ``uitstroomdatum`` belongs to the end year of the school year of
    the ``aanmelddatum`` (or, lacking that too, of the evaluation date).
    """
    applied = leavers["aanmelddatum"].fillna(pd.Timestamp(evaluation_date))
    ends = pd.Series(school_year_starts(applied, school_year_start) + 1, index=leavers.index, dtype="Int64")
    year = leavers["uitstroomdatum"].dt.year.astype("Int64").fillna(ends)
    return year.astype("str")


def mbo_applications(mbo_outflow: pd.DataFrame, pupil_conflicts: pd.DataFrame, *, school_year_start: str,
                     evaluation_date: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, int]]:
    """VO leavers' applications, one row per leaver, MBO institution and programme (crebo), with ``year``.

    Routing follows the pupil (domain.md §6; AVG art. 5): before enrolment each institution the
    leaver applied to gets its own applications; once the leaver is ``ingeschreven`` at one, that
    institution only (of two, the later status). The same application delivered twice keeps its
    latest status. Only leavers of the current and the coming school year's transfer to MBO
    (``handover_leaving_years``). Identities in conflict are left out. Adds ``pupil_key``.
    """
    keyed = mbo_outflow.assign(pupil_key=pupil_key(mbo_outflow))
    applied = keyed["mbo_brin"].notna()
    conflict = keyed["pupil_key"].isin(pupil_conflicts["pupil_key"])
    chosen = _latest(keyed.loc[applied & ~conflict & keyed["pupil_key"].notna()],
                     ["pupil_key", "mbo_brin", "crebo"], ["status_datum"])
    chosen = chosen.assign(year=leaving_year(chosen, school_year_start=school_year_start,
                                             evaluation_date=evaluation_date))
    in_years = chosen["year"].isin(handover_leaving_years(evaluation_date, school_year_start))
    current = chosen.loc[in_years]
    enrolled = _latest(current.loc[current["vva_status"].eq("ingeschreven").fillna(False)], ["pupil_key"],
                       ["status_datum"]).loc[:, ["pupil_key", "mbo_brin"]].rename(columns={"mbo_brin": "enrolled_at"})
    current = current.merge(enrolled, on="pupil_key", how="left", validate="many_to_one")
    follows = current["enrolled_at"].isna() | current["enrolled_at"].eq(current["mbo_brin"])
    left_out = {
        "rows_without_mbo_application": int((~applied).sum()),
        "pupils_in_conflict": int(keyed.loc[applied & conflict, "pupil_key"].nunique()),
        "applications_outside_current_years": int((~in_years).sum()),
        "applications_elsewhere_after_enrolment": int((~follows).sum()),
    }
    return current.loc[follows.to_numpy()].drop(columns="enrolled_at"), left_out


def absence_summary(vo_absence: pd.DataFrame, leavers: pd.DataFrame, *, school_year_start: str,
                    evaluation_date: pd.Timestamp) -> pd.DataFrame:
    """Per leaver (``pupil_key``, ``vo_brin6``, ``uitstroomdatum``): absence hours in the last school year at VO.

    The school year is the one of the last day before ``uitstroomdatum`` (a leaver who has not left
    yet: the current one). Hours of every school are summed. A pupil without absence rows had no
    absence when the school delivered absence for that year, else the hours are unknown:
    ``verzuim_schooljaar`` says ``niet geleverd`` and the hours stay empty (docs/handover.md).
    Integer positions and ``bincount`` throughout: a national absence table has millions of rows.
    """
    if not len(leavers):
        return pd.DataFrame({"verzuim_schooljaar": pd.Series(dtype="str"), "uren_ongeoorloofd": pd.Series(dtype="float64"),
                             "uren_geoorloofd": pd.Series(dtype="float64")}, index=leavers.index)
    last_day = (leavers["uitstroomdatum"] - pd.Timedelta(days=1)).fillna(pd.Timestamp(evaluation_date))
    target = school_year_starts(last_day, school_year_start)
    label = pd.Series(target, index=leavers.index).map({y: f"{y}-{y + 1}" for y in np.unique(target)}).astype("str")
    # A few hundred distinct weeks in millions of rows: each week's school year is worked out once.
    years = per_distinct(vo_absence["week_start"], lambda weeks: pd.Series(school_year_starts(weeks, school_year_start))
                         ).to_numpy(dtype=np.int64)
    every = np.concatenate([target, years])
    first, span = int(every.min()), int(every.max() - every.min()) + 1

    # Which school delivered absence for which school year.
    schools = pa.array(vo_absence["vo_brin6"], type=pa.large_string(), from_pandas=True)
    schools = schools.combine_chunks() if isinstance(schools, pa.ChunkedArray) else schools
    encoded = pc.dictionary_encode(schools)
    seen = np.zeros((len(encoded.dictionary) + 1, span), dtype=bool)  # the last row: a school without absence
    seen[encoded.indices.to_numpy(zero_copy_only=False), years - first] = True
    school = pc.index_in(pa.array(leavers["vo_brin6"], type=pa.large_string(), from_pandas=True),
                         value_set=encoded.dictionary).fill_null(-1).to_numpy(zero_copy_only=False)
    known = seen[school, target - first]

    # The leavers' hours per school year.
    keys = pa.array(leavers["pupil_key"].dropna().unique(), type=pa.large_string())
    wanted = np.isin(years, np.unique(target))
    rows = select_rows(vo_absence.loc[:, [c for c in (*KEY_FIELDS, "uren_ongeoorloofd", "uren_geoorloofd")
                                          if c in vo_absence.columns]], wanted)
    at = key_positions(rows, keys)
    mine = at >= 0
    bins = at[mine] * span + (years[wanted][mine] - first)
    leaver = pc.index_in(pa.array(leavers["pupil_key"], type=pa.large_string(), from_pandas=True),
                         value_set=keys).fill_null(-1).to_numpy(zero_copy_only=False)
    where = np.maximum(leaver, 0) * span + (target - first)
    hours = {}
    for column in ("uren_ongeoorloofd", "uren_geoorloofd"):
        values = rows[column].to_numpy(dtype="float64", na_value=0.0)[mine]
        total = np.bincount(bins, weights=values, minlength=len(keys) * span)
        found = total[where] if len(total) else np.zeros(len(leavers))
        hours[column] = np.where(known, np.where(leaver >= 0, found, 0.0), np.nan)
    return pd.DataFrame({
        "verzuim_schooljaar": label.where(known, label + " " + NIET_GELEVERD),
        "uren_ongeoorloofd": hours["uren_ongeoorloofd"],
        "uren_geoorloofd": hours["uren_geoorloofd"],
    }, index=leavers.index)


def leaver_support(leavers: pd.DataFrame, po_transfers: pd.DataFrame, vo_enrolment: pd.DataFrame) -> pd.DataFrame:
    """Per leaver: names and level from the latest VO enrolment, and one support record with its source.

    What the VO school delivered with its latest enrolment of the pupil comes first: it knows the
    pupil now (docs/handover.md "VO → MBO"). Without it, the pupil's latest PO dossier; without
    either, nothing (``bron_ondersteuning``: ``niet geleverd``). The support record carries its own
    consent, as delivered with it.
    """
    keys = pa.array(leavers["pupil_key"].dropna().unique(), type=pa.large_string())
    po = select_rows(po_transfers, key_positions(po_transfers, keys) >= 0)
    po = po.assign(pupil_key=pupil_key(po))
    dossier = _latest(po.loc[po["pupil_key"].notna()], ["pupil_key"], ["schooljaar", "aanmelddatum"])
    dossier = dossier.loc[:, ["pupil_key", "schooljaar", *SUPPORT_FIELDS, "delivery", "delivery_sha256"]].rename(
        columns={"delivery": "po_delivery", "delivery_sha256": "po_delivery_sha256"}).set_index("pupil_key")
    vo = select_rows(vo_enrolment, key_positions(vo_enrolment, keys) >= 0)
    vo = vo.assign(pupil_key=pupil_key(vo))
    enrolment = _latest(vo.loc[vo["pupil_key"].notna()], ["pupil_key"], ["inschrijfdatum"]).set_index("pupil_key")
    enrolment = enrolment.reindex(leavers["pupil_key"]).reset_index(drop=True)
    from_po = dossier.reindex(leavers["pupil_key"]).reset_index(drop=True)
    vo_fields = [field for field in VO_SUPPORT_FIELDS if field in enrolment.columns]
    has_vo = enrolment.loc[:, vo_fields].notna().any(axis=1).to_numpy()
    has_po = from_po["po_delivery"].notna().to_numpy() & ~has_vo
    support = pd.DataFrame({
        field: (enrolment[field].where(has_vo, from_po[field]) if field in vo_fields else from_po[field].where(~has_vo))
        for field in SUPPORT_FIELDS
    })
    school = enrolment["vo_brin6"].fillna("?").to_numpy(dtype=object)
    source = np.where(has_vo, "VO-school " + school,
                      np.where(has_po, "PO-dossier " + from_po["schooljaar"].fillna("?").to_numpy(dtype=object),
                               NIET_GELEVERD + " (geen gegevens van VO-school of PO-dossier)"))
    return support.assign(
        bron_ondersteuning=pd.array(source, dtype="str"),
        has_support=has_vo | has_po,
        **{field: enrolment[field] for field in ("voornaam", "tussenvoegsel", "achternaam", "onderwijsniveau")},
        vo_delivery=enrolment["delivery"], vo_delivery_sha256=enrolment["delivery_sha256"],
        po_delivery=from_po["po_delivery"].where(has_po),
        po_delivery_sha256=from_po["po_delivery_sha256"].where(has_po),
    ).set_axis(leavers.index)


def vo_mbo_handover(mbo_outflow: pd.DataFrame, po_transfers: pd.DataFrame, vo_enrolment: pd.DataFrame,
                    pupil_conflicts: pd.DataFrame, *, school_year_start: str, evaluation_date: pd.Timestamp,
                    vo_absence: pd.DataFrame | None = None) -> Handover:
    """The VO → MBO handover rows, per MBO institution (``mbo_brin``) and year of uitstroom (domain.md §6).

    Routing by ``mbo_applications``. Names and, where the outflow lacks it, the VO level come from the
    pupil's latest VO enrolment; support, OPP and consent from what the VO school delivered, else the
    PO dossier (``leaver_support``, source in ``Bron ondersteuning``), consent-gated as in the PO → VO
    handover (domain.md §2.4, §7); absence in the last school year from ``vo_absence``
    (``absence_summary``; without it the hours read ``niet geleverd``).
    """
    rows, left_out = mbo_applications(mbo_outflow, pupil_conflicts, school_year_start=school_year_start,
                                      evaluation_date=evaluation_date)
    rows = rows.reset_index(drop=True)
    support = leaver_support(rows, po_transfers, vo_enrolment)
    absence = absence_summary(vo_absence if vo_absence is not None else _no_absence(), rows,
                              school_year_start=school_year_start, evaluation_date=evaluation_date)
    merged = pd.concat([rows.drop(columns=[c for c in support.columns if c in rows.columns]), support, absence],
                       axis=1)
    merged = merged.assign(school=merged["mbo_brin"], vo_niveau=merged["vo_niveau"].fillna(merged["onderwijsniveau"]))
    merged = _sorted_for_reading(merged, ["pupil_key", "crebo"])
    consent = consent_given(merged)
    shown = blank_without_consent(merged, consent).assign(
        vo_naam=names_of(merged["vo_brin6"]),
        vo_niveau=labelled(merged["vo_niveau"], ADVICE_LABELS),
        opleiding=named(merged["crebo"], qualification_names()),
        vva_status=labelled(merged["vva_status"], VVA_LABELS),
        reden_leeg=empty_reason(merged, consent, delivered=merged["has_support"]),
    )
    table = shown.loc[:, ["school", "year", *VO_MBO_COLUMNS]].rename(columns=VO_MBO_COLUMNS)
    return Handover(
        table=table.reset_index(drop=True),
        flags=pd.DataFrame(index=table.index),
        sources=_sources(merged, [("delivery", "delivery_sha256"), ("po_delivery", "po_delivery_sha256"),
                                  ("vo_delivery", "vo_delivery_sha256")]),
        left_out=left_out,
    )


def _no_absence() -> pd.DataFrame:
    return pd.DataFrame({"bsn": pd.Series(dtype="str"), "onderwijsnummer": pd.Series(dtype="str"),
                         "vo_brin6": pd.Series(dtype="str"), "week_start": pd.Series(dtype="datetime64[s]"),
                         "uren_ongeoorloofd": pd.Series(dtype="float64"),
                         "uren_geoorloofd": pd.Series(dtype="float64")})
