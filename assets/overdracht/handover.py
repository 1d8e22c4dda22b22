"""Warme overdracht: who goes into which school's file, what may be in it, and what needs attention.

Pure functions behind ``assets.overdracht.handover_assets`` (which writes the files); ``docs/handover.md`` is the
readers' description. The rules, each in one place:

- **Routing** (domain.md §2.1): a PO dossier goes only to the VO school location where the pupil is
  aangemeld, never before aanmelding and never to another school (``registered_transfers``). A VO
  leaver's record goes only to the MBO institution applied to (``mbo_applications``, domain.md §6).
- **Consent** (domain.md §2.4, §7): the consent-gated fields of the PO dossier are filled only where
  parents consented *and* the consent is dated (``consent_given``, ``blank_without_consent``).
- **Signals** (domain.md §2.4, §9.8): ``TLV_ONTBREEKT``, ``OPP_ZONDER_INSTEMMING``,
  ``CLUSTER_LANDELIJK`` (``handover_flags``).
- **Identity** (domain.md §3): pupils are linked by ``assets.koppeling.linkage.pupil_key``, never by name;
  identities in conflict (``pupil_conflicts``) are left out of every handover.

Everything is vectorised: a national year (190,000 transfers, 150,000 leavers) takes seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from assets.koppeling.linkage import key_positions, pupil_key
from connectors.outbox import safe_segment
from schemas.datasets import consent_gated_fields
from schemas.frames import select_rows

# BRIN (4 characters, an institution) or BRIN + vestiging (6, a school location): domain.md §3.
BRIN_CODE = re.compile(r"^\d{2}[A-Z]{2}(\d{2})?$")
SCHOOL_YEAR = re.compile(r"^\d{4}-\d{4}$")
YEAR = re.compile(r"^\d{4}$")

# The dossier fields that go to a school only with the parents' consent: the ones the canonical model
# marks consent-gated, plus the date parents agreed to the OPP handelingsdeel, which is OPP content
# (domain.md §2.4: "discuss with parents whether the OPP may be transferred").
CONSENT_FIELDS = (*sorted(consent_gated_fields("po_transfers")), "opp_instemming_datum")
GEEN_TOESTEMMING = "geen toestemming"
GEEN_GEGEVENS = "geen gegevens"

# Signal code -> what the school and the SWV read (docs/handover.md).
FLAGS = {
    "TLV_ONTBREEKT": "Definitief advies pro of vso, maar geen TLV na de TLV-datum",
    "OPP_ZONDER_INSTEMMING": "OPP zonder datum van instemming ouders met het handelingsdeel",
    "CLUSTER_LANDELIJK": "Cluster 1 of 2: toelating via de landelijke instelling, geen TLV van het SWV",
}
# Signals derived from a consent-gated field: on a pupil's row only with consent (counted always).
CONSENT_DERIVED_FLAGS = frozenset({"OPP_ZONDER_INSTEMMING"})

# Canonical schooladvies code -> DUO label (domain.md §2.2).
ADVICE_LABELS = {
    "pro": "PRO", "vso": "VSO", "vmbo_b": "VMBO BL", "vmbo_b_k": "VMBO BL-KL", "vmbo_k": "VMBO KL",
    "vmbo_k_gt": "VMBO KL-GT", "vmbo_gt": "VMBO GT", "vmbo_gt_havo": "VMBO GT-HAVO", "havo": "HAVO",
    "havo_vwo": "HAVO/VWO", "vwo": "VWO",
}
TLV_LABELS = {"pro": "TLV PrO", "vso": "TLV VSO"}
# Canonical VVA status -> the wording of the VVA (domain.md §6).
VVA_LABELS = {
    "aanmelding_ontvangen": "aanmelding ontvangen",
    "onderwijsovereenkomst_aangeboden": "onderwijsovereenkomst aangeboden",
    "niet_tot_inschrijving": "aanmelding leidt niet tot inschrijving",
    "ingetrokken": "aanmelding ingetrokken",
    "ingeschreven": "ingeschreven",
}

# Field -> Dutch header, in file order; both files start with who the pupil is.
IDENTITY_COLUMNS = {
    "bsn": "BSN",
    "onderwijsnummer": "Onderwijsnummer",
    "voornaam": "Roepnaam",
    "tussenvoegsel": "Tussenvoegsel",
    "achternaam": "Achternaam",
    "geboortedatum": "Geboortedatum",
}
PO_VO_COLUMNS = {
    **IDENTITY_COLUMNS,
    "postcode": "Postcode",
    "ouder_email": "E-mail ouder",
    "ouder_telefoon": "Telefoon ouder",
    "po_brin6": "School van herkomst (BRIN)",
    "aanmelddatum": "Datum aanmelding",
    "voorlopig_advies": "Voorlopig advies",
    "toets_advies": "Toetsadvies",
    "definitief_advies": "Definitief advies",
    "ondersteuningsbehoefte": "Extra ondersteuning",
    "opp": "OPP",
    "opp_instemming_datum": "Datum instemming OPP",
    "arrangement": "Arrangement",
    "tlv_soort": "TLV",
    "tlv_datum": "Datum TLV",
    "cluster": "Cluster",
    "toestemming_ouders": "Toestemming ouders",
    "toestemming_datum": "Datum toestemming",
    "ondersteuning_details": "Ondersteuningsbehoeften",
    "jeugdhulp_betrokken": "Jeugdhulp betrokken",
    "reden_leeg": "Reden leeg",
    "signalen": "Signalen",
}
VO_MBO_COLUMNS = {
    **IDENTITY_COLUMNS,
    "vo_brin6": "VO-school (BRIN)",
    "vo_niveau": "VO-niveau",
    "vo_diploma": "Diploma VO",
    "uitstroomdatum": "Datum uitstroom",
    "aanmelddatum": "Datum aanmelding",
    "crebo": "Crebo",
    "mbo_niveau": "MBO-niveau",
    "vva_status": "VVA-status",
    "status_datum": "Datum status",
    "ondersteuningsbehoefte": "Extra ondersteuning",
    "opp": "OPP",
    "opp_instemming_datum": "Datum instemming OPP",
    "arrangement": "Arrangement",
    "toestemming_ouders": "Toestemming ouders",
    "toestemming_datum": "Datum toestemming",
    "ondersteuning_details": "Ondersteuningsbehoeften",
    "jeugdhulp_betrokken": "Jeugdhulp betrokken",
    "reden_leeg": "Reden leeg",
}
# What a pupil's PO record contributes to the VO -> MBO handover.
SUPPORT_FIELDS = ("ondersteuningsbehoefte", "opp", "opp_instemming_datum", "arrangement", "toestemming_ouders",
                  "toestemming_datum", "ondersteuning_details", "jeugdhulp_betrokken")


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


def consent_given(frame: pd.DataFrame) -> pd.Series:
    """Parents consented to sharing support details: ``toestemming_ouders`` true **and** dated.

    domain.md §2.4 (the OPP goes along only if parents agree) and §7 (consent as a ground for sharing
    health and behaviour data); an undated "ja" cannot be shown to anyone and counts as no consent.
    """
    return frame["toestemming_ouders"].fillna(False).astype(bool) & frame["toestemming_datum"].notna()


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
    """``OPP_ZONDER_INSTEMMING``: an OPP without the date parents agreed to its handelingsdeel.

    Parents have instemmingsrecht on the handelingsdeel since 1 August 2017 (domain.md §2.4).
    """
    return frame["opp"].fillna(False).astype(bool) & frame["opp_instemming_datum"].isna()


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


def registered_transfers(po_transfers: pd.DataFrame,
                         pupil_conflicts: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Each pupil's current aanmelding per school year, at exactly one VO school location.

    Only rows with a receiving school and an aanmelddatum count (domain.md §2.1: no dossier before
    aanmelding). A pupil with several aanmeldingen keeps the latest; two different schools on the same
    latest date cannot be told apart and the pupil goes to neither. Identities in conflict and rows
    without an identifier are left out. Adds ``pupil_key``.
    """
    keyed = po_transfers.assign(pupil_key=pupil_key(po_transfers))
    registered = keyed["vo_brin6"].notna() & keyed["aanmelddatum"].notna()
    conflict = keyed["pupil_key"].isin(pupil_conflicts["pupil_key"])
    candidates = keyed.loc[registered & ~conflict & keyed["pupil_key"].notna()]
    pupil = ["pupil_key", "schooljaar"]
    latest = candidates.loc[candidates["aanmelddatum"] == candidates.groupby(pupil)["aanmelddatum"].transform("max")]
    ambiguous = latest.groupby(pupil)["vo_brin6"].transform("nunique") > 1
    chosen = _latest(latest.loc[~ambiguous], pupil, [])
    left_out = {
        "rows_without_aanmelding": int((~registered).sum()),
        "pupils_in_conflict": int(keyed.loc[registered & conflict, "pupil_key"].nunique()),
        "pupils_registered_at_two_schools_same_day": int(latest.loc[ambiguous, "pupil_key"].nunique()),
    }
    return chosen, left_out


def po_vo_handover(po_transfers: pd.DataFrame, pupil_conflicts: pd.DataFrame, *,
                   evaluation_date: pd.Timestamp, tlv_deadline: str) -> Handover:
    """The PO → VO handover rows, per receiving school location (``vo_brin6``) and school year.

    Routing by ``registered_transfers``; consent-gated fields blanked without consent, with "geen
    toestemming" in ``Reden leeg``; signals in ``Signalen`` (domain.md §2.1, §2.4, §7).
    """
    rows, left_out = registered_transfers(po_transfers, pupil_conflicts)
    rows = _sorted_for_reading(rows.assign(school=rows["vo_brin6"], year=rows["schooljaar"]), ["pupil_key"])
    flags = handover_flags(rows, evaluation_date=evaluation_date, tlv_deadline=tlv_deadline)
    consent = consent_given(rows)
    shown = blank_without_consent(rows, consent).assign(
        voorlopig_advies=rows["voorlopig_advies"].map(ADVICE_LABELS).fillna(rows["voorlopig_advies"]),
        toets_advies=rows["toets_advies"].map(ADVICE_LABELS).fillna(rows["toets_advies"]),
        definitief_advies=rows["definitief_advies"].map(ADVICE_LABELS).fillna(rows["definitief_advies"]),
        tlv_soort=rows["tlv_soort"].map(TLV_LABELS).fillna(rows["tlv_soort"]),
        reden_leeg=pd.Series(GEEN_TOESTEMMING, index=rows.index, dtype="str").where(~consent),
        signalen=signal_text(flags, consent),
    )
    table = shown.loc[:, ["school", "year", *PO_VO_COLUMNS]].rename(columns=PO_VO_COLUMNS)
    return Handover(
        table=table.reset_index(drop=True),
        flags=flags.reset_index(drop=True),
        sources=_sources(rows, [("delivery", "delivery_sha256")]),
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
        total = pd.DataFrame([{"school": "Totaal", **per_school[columns].sum().to_dict()}])
        table = pd.concat([per_school, total], ignore_index=True)
        overview[year] = table.rename(columns={"school": "Vestiging (BRIN)", GEEN_TOESTEMMING: "Zonder toestemming"})
    return overview


def leaving_year(leavers: pd.DataFrame, *, school_year_start: str, evaluation_date: pd.Timestamp) -> pd.Series:
    """The year of uitstroom: ``uitstroomdatum``'s year; before leaving, when the application's school year ends.

    Applications come in before 1 April of the final year (domain.md §6), months before the pupil
    leaves, so an applicant without ``uitstroomdatum`` belongs to the end year of the school year of
    the ``aanmelddatum`` (or, lacking that too, of the evaluation date).
    """
    month, day = (int(part) for part in school_year_start.split("-"))
    applied = leavers["aanmelddatum"].fillna(pd.Timestamp(evaluation_date))
    ends = applied.dt.year + ((applied.dt.month * 100 + applied.dt.day) >= month * 100 + day).astype("int64")
    year = leavers["uitstroomdatum"].dt.year.astype("Int64").fillna(ends.astype("Int64"))
    return year.astype("str")


def mbo_applications(mbo_outflow: pd.DataFrame, pupil_conflicts: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """VO leavers' applications, one row per leaver, MBO institution and programme (crebo).

    A leaver may apply to several institutions (domain.md §6): each gets only its own applications.
    The same application delivered twice keeps its latest status. Identities in conflict are left out.
    Adds ``pupil_key``.
    """
    keyed = mbo_outflow.assign(pupil_key=pupil_key(mbo_outflow))
    applied = keyed["mbo_brin"].notna()
    conflict = keyed["pupil_key"].isin(pupil_conflicts["pupil_key"])
    chosen = _latest(keyed.loc[applied & ~conflict & keyed["pupil_key"].notna()],
                     ["pupil_key", "mbo_brin", "crebo"], ["status_datum"])
    left_out = {
        "rows_without_mbo_application": int((~applied).sum()),
        "pupils_in_conflict": int(keyed.loc[applied & conflict, "pupil_key"].nunique()),
    }
    return chosen, left_out


def vo_mbo_handover(mbo_outflow: pd.DataFrame, po_transfers: pd.DataFrame, vo_enrolment: pd.DataFrame,
                    pupil_conflicts: pd.DataFrame, *, school_year_start: str,
                    evaluation_date: pd.Timestamp) -> Handover:
    """The VO → MBO handover rows, per MBO institution (``mbo_brin``) and year of uitstroom (domain.md §6).

    Names and, where the outflow lacks it, the VO level come from the pupil's latest VO enrolment.
    Support and OPP come from the pupil's latest PO dossier, consent-gated as in the PO → VO handover
    (domain.md §2.4, §7); a leaver without a PO dossier gets "geen gegevens" in ``Reden leeg``.
    """
    rows, left_out = mbo_applications(mbo_outflow, pupil_conflicts)
    # Only the leavers' own PO dossiers and VO enrolments are sorted and merged: a tenth of the rows.
    leavers = pa.array(rows["pupil_key"].dropna().unique(), type=pa.large_string())
    po = select_rows(po_transfers, key_positions(po_transfers, leavers) >= 0)
    po = po.assign(pupil_key=pupil_key(po))
    dossier = _latest(po.loc[po["pupil_key"].notna()], ["pupil_key"], ["schooljaar", "aanmelddatum"])
    dossier = dossier.loc[:, ["pupil_key", *SUPPORT_FIELDS, "delivery", "delivery_sha256"]].rename(
        columns={"delivery": "po_delivery", "delivery_sha256": "po_delivery_sha256"})
    vo = select_rows(vo_enrolment, key_positions(vo_enrolment, leavers) >= 0)
    vo = vo.assign(pupil_key=pupil_key(vo))
    enrolment = _latest(vo.loc[vo["pupil_key"].notna()], ["pupil_key"], ["inschrijfdatum"])
    enrolment = enrolment.loc[:, ["pupil_key", "voornaam", "tussenvoegsel", "achternaam", "onderwijsniveau",
                                  "delivery", "delivery_sha256"]].rename(
        columns={"delivery": "vo_delivery", "delivery_sha256": "vo_delivery_sha256"})

    merged = (rows.merge(dossier, on="pupil_key", how="left", validate="many_to_one", indicator="_po")
                  .merge(enrolment, on="pupil_key", how="left", validate="many_to_one"))
    merged = merged.assign(
        school=merged["mbo_brin"],
        year=leaving_year(merged, school_year_start=school_year_start, evaluation_date=evaluation_date),
        vo_niveau=merged["vo_niveau"].fillna(merged["onderwijsniveau"]),
    )
    merged = _sorted_for_reading(merged, ["pupil_key", "crebo"])
    known = merged["_po"].eq("both")
    consent = consent_given(merged)
    reason = pd.Series(GEEN_GEGEVENS, index=merged.index, dtype="str").where(~known, GEEN_TOESTEMMING)
    shown = blank_without_consent(merged, consent).assign(
        vo_niveau=merged["vo_niveau"].map(ADVICE_LABELS).fillna(merged["vo_niveau"]),
        vva_status=merged["vva_status"].map(VVA_LABELS).fillna(merged["vva_status"]),
        reden_leeg=reason.where(~consent),
    )
    table = shown.loc[:, ["school", "year", *VO_MBO_COLUMNS]].rename(columns=VO_MBO_COLUMNS)
    return Handover(
        table=table.reset_index(drop=True),
        flags=pd.DataFrame(index=table.index),
        sources=_sources(merged, [("delivery", "delivery_sha256"), ("po_delivery", "po_delivery_sha256"),
                                  ("vo_delivery", "vo_delivery_sha256")]),
        left_out=left_out,
    )
