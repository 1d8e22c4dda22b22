"""Canonical datasets: the contract every delivery is mapped onto.

One Pandera ``DataFrameModel`` per canonical source. The region YAML maps each partner's column
names onto these fields; parsing turns the delivered text into the dtypes below; validation checks
the rules in ``schemas.checks``. Each field says what it means (``description``) and, in
``metadata``, whether it is personal data (never in logs, metadata or previews) and whether it may
only be shared with the parents' consent (shared/domain.md §2.4, §7).

Provenance columns (which delivery, which row) are added by the connectors to every dataset.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

PERSONAL = {"personal": True}
CONSENT = {"personal": True, "consent_gated": True}

Date = pd.Timestamp


def _f(description: str, *, nullable: bool = True, metadata: dict | None = None, **kwargs) -> object:
    return pa.Field(nullable=nullable, description=description, metadata=metadata or {}, **kwargs)


class Provenance(pa.DataFrameModel):
    """Where a row came from; added by the connectors, never mapped from a partner's columns."""

    source_id: Series[str] = _f("Source id in the region YAML.", nullable=False)
    delivery: Series[str] = _f("File name or URL of the delivery.", nullable=False)
    delivery_row: Series[int] = _f("Row number in the delivery (1 = first data row).", nullable=False)
    delivery_sha256: Series[str] = _f("sha256 of the delivered bytes.", nullable=False)
    fetched_at: Series[str] = _f("When the delivery was read (ISO 8601, UTC).", nullable=False)

    class Config:
        strict = False
        coerce = False


class PupilIdentity(pa.DataFrameModel):
    """Fields that identify a pupil; exactly one usable identifier is required (domain.md §3)."""

    bsn: Series[str] = _f("Burgerservicenummer, 9 digits, elfproef (domain.md §3).", metadata=PERSONAL)
    onderwijsnummer: Series[str] = _f("Onderwijsnummer for pupils without BSN: 9 digits starting 10 (domain.md §3).", metadata=PERSONAL)
    geboortedatum: Series[Date] = _f("Date of birth.", metadata=PERSONAL)

    class Config:
        strict = False
        coerce = False


class Naw(pa.DataFrameModel):
    voornaam: Series[str] = _f("First name.", metadata=PERSONAL)
    tussenvoegsel: Series[str] = _f("Surname prefix (van, de, ...).", metadata=PERSONAL)
    achternaam: Series[str] = _f("Surname.", metadata=PERSONAL)
    postcode: Series[str] = _f("Postcode of the home address, normalised 1234AB (domain.md §3).", metadata=PERSONAL)
    woongemeente_code: Series[str] = _f("CBS code of the municipality of residence (GMxxxx).")


class PoTransfer(Provenance, PupilIdentity, Naw):
    """PO → VO transfer (OSO/LAS export of a PO school board): one row per groep-8 pupil."""

    ouder_email: Series[str] = _f("Parent/guardian e-mail for the receiving school.", metadata=PERSONAL)
    ouder_telefoon: Series[str] = _f("Parent/guardian phone number.", metadata=PERSONAL)
    po_brin6: Series[str] = _f("Sending PO school location, BRIN + vestiging (6 chars).")
    vo_brin6: Series[str] = _f("VO school location where the pupil is aangemeld; empty before aanmelding.")
    aanmelddatum: Series[Date] = _f("Date of aanmelding at the VO school (domain.md §2.1: no dossier before it).")
    schooljaar: Series[str] = _f("School year the pupil enters VO, e.g. 2026-2027.", nullable=False)
    voorlopig_advies: Series[str] = _f("Provisional schooladvies, canonical code (domain.md §2.2).")
    toets_advies: Series[str] = _f("Doorstroomtoets advice, canonical code (domain.md §2.2).")
    definitief_advies: Series[str] = _f("Definitive schooladvies, canonical code; never lower than provisional (domain.md §2.3).")
    ondersteuningsbehoefte: Series[pd.BooleanDtype] = _f("Pupil needs extra support.")
    opp: Series[pd.BooleanDtype] = _f("Has an ontwikkelingsperspectiefplan (domain.md §2.4).")
    opp_instemming_datum: Series[Date] = _f("Date parents agreed to the OPP handelingsdeel (domain.md §2.4).")
    arrangement: Series[str] = _f("Support arrangement code (e.g. OZA) or empty.")
    tlv_soort: Series[str] = _f("Toelaatbaarheidsverklaring issued: pro, vso or empty (domain.md §2.4).")
    tlv_datum: Series[Date] = _f("Date the TLV was issued.")
    cluster: Series[str] = _f("Cluster 1 or 2 indication (national institutions, domain.md §2.4) or empty.")
    toestemming_ouders: Series[pd.BooleanDtype] = _f("Parents consented to sharing support details with the VO school.")
    toestemming_datum: Series[Date] = _f("Date the consent was recorded.")
    ondersteuning_details: Series[str] = _f("Support details for the receiving school (free text).", metadata=CONSENT)
    jeugdhulp_betrokken: Series[pd.BooleanDtype] = _f("Youth care is involved.", metadata=CONSENT)


class YouthCareWaitlist(Provenance):
    """Youth-care (jeugdhulp) waitlist entry of one municipality (iJw fields, domain.md §5.4)."""

    bsn: Series[str] = _f("Client BSN (iJw identifies clients by BSN, domain.md §5.1).", metadata=PERSONAL)
    geboortedatum: Series[Date] = _f("Client date of birth.", metadata=PERSONAL)
    woongemeente_code: Series[str] = _f("CBS code of the responsible municipality (woonplaatsbeginsel).")
    verwijzer: Series[str] = _f("Referrer, code list COD327 (domain.md §5.2).")
    productcategorie: Series[str] = _f("Product category, code list JZ020 (domain.md §5.2).")
    zorgaanbieder_agb: Series[str] = _f("AGB code of the care provider, 8 digits (domain.md §3).")
    aanmelddatum: Series[Date] = _f("Date of registration/referral.", nullable=False)
    besluitdatum: Series[Date] = _f("Date of the municipal decision (toewijzing, JW301).")
    intakedatum: Series[Date] = _f("Date of intake.")
    startdatum: Series[Date] = _f("Start of care (JW305).")
    einddatum: Series[Date] = _f("End of care (JW307).")
    reden_beeindiging: Series[str] = _f("Reason for ending, code list JZ588 (domain.md §5.2).")


class VoEnrolment(Provenance, PupilIdentity, Naw):
    """VO enrolment (inschrijving) per school location, from each VO school's LAS export."""

    vo_brin6: Series[str] = _f("VO school location, BRIN + vestiging.", nullable=False)
    leerjaar: Series[pd.Int64Dtype] = _f("Year of study (1-6).")
    onderwijsniveau: Series[str] = _f("Level/stream, canonical schooladvies code (pro, vmbo_b, ..., vwo, vso).")
    inschrijfdatum: Series[Date] = _f("Date of enrolment.", nullable=False)
    uitschrijfdatum: Series[Date] = _f("Date of de-registration; empty while enrolled.")
    vrijstelling: Series[str] = _f("Leerplicht exemption article (5a, 5b, 5c, 15, 3a, 3b; domain.md §4.4) or empty.")


class VoAbsence(Provenance):
    """Weekly absence per pupil from each VO school's LAS (lesson hours, domain.md §4.3)."""

    bsn: Series[str] = _f("BSN of the pupil.", metadata=PERSONAL)
    onderwijsnummer: Series[str] = _f("Onderwijsnummer of the pupil.", metadata=PERSONAL)
    vo_brin6: Series[str] = _f("VO school location.", nullable=False)
    week_start: Series[Date] = _f("Monday of the school week.", nullable=False)
    uren_ongeoorloofd: Series[float] = _f("Unexcused absence in lesson hours that week.", nullable=False)
    uren_geoorloofd: Series[float] = _f("Excused absence (illness, schorsing) in lesson hours that week.")


class MboOutflow(Provenance):
    """VO leavers and their MBO application status (VVA, domain.md §6)."""

    bsn: Series[str] = _f("BSN of the leaver.", metadata=PERSONAL)
    onderwijsnummer: Series[str] = _f("Onderwijsnummer of the leaver.", metadata=PERSONAL)
    geboortedatum: Series[Date] = _f("Date of birth.", metadata=PERSONAL)
    woongemeente_code: Series[str] = _f("CBS code of the municipality of residence.")
    vo_brin6: Series[str] = _f("VO school location the pupil leaves.", nullable=False)
    vo_niveau: Series[str] = _f("VO level, canonical schooladvies code.")
    vo_diploma: Series[pd.BooleanDtype] = _f("Left with a VO diploma.")
    uitstroomdatum: Series[Date] = _f("Date the pupil leaves VO.")
    mbo_brin: Series[str] = _f("BRIN (4 chars) of the MBO institution applied to.")
    crebo: Series[str] = _f("Crebo code of the MBO programme, 5 digits.")
    mbo_niveau: Series[pd.Int64Dtype] = _f("MBO level 1-4.")
    aanmelddatum: Series[Date] = _f("Date of the MBO application.")
    vva_status: Series[str] = _f("VVA application status, canonical code (domain.md §6).")
    status_datum: Series[Date] = _f("Date of the last status change.")


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "po_transfers": PoTransfer,
    "youth_care_waitlist": YouthCareWaitlist,
    "vo_enrolment": VoEnrolment,
    "vo_absence": VoAbsence,
    "mbo_outflow": MboOutflow,
}

PROVENANCE_COLUMNS = tuple(Provenance.to_schema().columns)


def canonical_fields(dataset: str) -> dict[str, pa.Column]:
    """The mappable fields of a dataset (everything except provenance), in declaration order."""
    columns = MODELS[dataset].to_schema().columns
    return {name: col for name, col in columns.items() if name not in PROVENANCE_COLUMNS}


def personal_fields(dataset: str) -> set[str]:
    return {n for n, c in MODELS[dataset].to_schema().columns.items() if (c.metadata or {}).get("personal")}


def consent_gated_fields(dataset: str) -> set[str]:
    return {n for n, c in MODELS[dataset].to_schema().columns.items() if (c.metadata or {}).get("consent_gated")}
