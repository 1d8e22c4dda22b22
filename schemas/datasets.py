"""Canonical datasets: the contract every delivery is mapped onto.

One Pandera ``DataFrameModel`` per canonical source. The region YAML maps each partner's column
names onto these fields; parsing turns the delivered text into the dtypes below; validation checks
the rules in ``schemas.checks``. Each field says what it means (``description``) and, in
``metadata``, whether it is personal data (never in logs, metadata or previews) and whether it may
only be shared with the parents' consent (docs/domain.md §2.4, §7).

Column rules sit on the fields (``bsn_elfproef=()``); cross-field rules depend on the evaluation
date and the school-year start, so ``dataset_schema`` adds them to the model's schema for one night.

Provenance columns (which delivery, which row) are added by the connectors to every dataset.
"""

from __future__ import annotations

import copy
import datetime as dt

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

import schemas.checks  # noqa: F401  (registers the rule checks used in the fields below)
from settings.datasets import DATASETS

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

    bsn: Series[str] = _f("Burgerservicenummer, 9 digits, elfproef (domain.md §3).", metadata=PERSONAL, bsn_elfproef=())
    onderwijsnummer: Series[str] = _f(
        "Onderwijsnummer for pupils without BSN: 9 digits starting 10 (domain.md §3).",
        metadata=PERSONAL, onderwijsnummer_valid=(),
    )
    geboortedatum: Series[Date] = _f("Date of birth.", metadata=PERSONAL)

    class Config:
        strict = False
        coerce = False


class Naw(pa.DataFrameModel):
    voornaam: Series[str] = _f("First name.", metadata=PERSONAL, mojibake=())
    tussenvoegsel: Series[str] = _f("Surname prefix (van, de, ...).", metadata=PERSONAL, mojibake=())
    achternaam: Series[str] = _f("Surname.", metadata=PERSONAL, mojibake=())
    postcode: Series[str] = _f(
        "Postcode of the home address, normalised 1234AB (domain.md §3).", metadata=PERSONAL, postcode_format=()
    )
    woongemeente_code: Series[str] = _f("CBS code of the municipality of residence (GMxxxx).", gemeentecode_format=())


class PoTransfer(Provenance, PupilIdentity, Naw):
    """PO → VO transfer (OSO/LAS export of a PO school board): one row per groep-8 pupil."""

    ouder_email: Series[str] = _f("Parent/guardian e-mail for the receiving school.", metadata=PERSONAL)
    ouder_telefoon: Series[str] = _f("Parent/guardian phone number.", metadata=PERSONAL)
    po_brin6: Series[str] = _f(
        "Sending PO school location, BRIN + vestiging (6 chars).", brin6_format=(), known_school=()
    )
    vo_brin6: Series[str] = _f(
        "VO school location where the pupil is aangemeld; empty before aanmelding.", brin6_format=(), known_school=()
    )
    aanmelddatum: Series[Date] = _f("Date of aanmelding at the VO school (domain.md §2.1: no dossier before it).")
    schooljaar: Series[str] = _f(
        "School year the pupil enters VO, e.g. 2026-2027.", nullable=False, schooljaar_format=()
    )
    voorlopig_advies: Series[str] = _f(
        "Provisional schooladvies, canonical code (domain.md §2.2).", unknown_code={"codelist": "schooladvies"}
    )
    toets_advies: Series[str] = _f(
        "Doorstroomtoets advice, canonical code (domain.md §2.2).", unknown_code={"codelist": "schooladvies"}
    )
    definitief_advies: Series[str] = _f(
        "Definitive schooladvies, canonical code; never lower than provisional (domain.md §2.3).",
        unknown_code={"codelist": "schooladvies"},
    )
    ondersteuningsbehoefte: Series[pd.BooleanDtype] = _f("Pupil needs extra support.")
    opp: Series[pd.BooleanDtype] = _f("Has an ontwikkelingsperspectiefplan (domain.md §2.4).")
    opp_instemming_datum: Series[Date] = _f("Date parents agreed to the OPP handelingsdeel (domain.md §2.4).")
    opp_instemming: Series[pd.BooleanDtype] = _f(
        "Parents agreed to the OPP handelingsdeel, for deliveries with yes/no instead of a date (domain.md §2.4)."
    )
    arrangement: Series[str] = _f("Support arrangement code (e.g. OZA) or empty.")
    tlv_soort: Series[str] = _f(
        "Toelaatbaarheidsverklaring issued: pro, vso or empty (domain.md §2.4).", unknown_code={"codelist": "tlv_soort"}
    )
    tlv_datum: Series[Date] = _f("Date the TLV was issued.")
    cluster: Series[str] = _f("Cluster 1 or 2 indication (national institutions, domain.md §2.4) or empty.")
    toestemming_ouders: Series[pd.BooleanDtype] = _f("Parents consented to sharing support details with the VO school.")
    toestemming_datum: Series[Date] = _f("Date the consent was recorded.")
    ondersteuning_details: Series[str] = _f(
        "Support details for the receiving school (free text).", metadata=CONSENT, mojibake=()
    )
    jeugdhulp_betrokken: Series[pd.BooleanDtype] = _f("Youth care is involved.", metadata=CONSENT)


class YouthCareWaitlist(Provenance):
    """Youth-care (jeugdhulp) waitlist entry of one municipality (iJw fields, domain.md §5.4)."""

    bsn: Series[str] = _f(
        "Client BSN (iJw identifies clients by BSN, domain.md §5.1).", metadata=PERSONAL, bsn_elfproef=()
    )
    geboortedatum: Series[Date] = _f("Client date of birth.", metadata=PERSONAL)
    woongemeente_code: Series[str] = _f(
        "CBS code of the responsible municipality (woonplaatsbeginsel); where a source delivers it, every row "
        "must have it (rule required).", gemeentecode_format=()
    )
    verwijzer: Series[str] = _f("Referrer, code list COD327 (domain.md §5.2).", unknown_code={"codelist": "verwijzer"})
    productcategorie: Series[str] = _f(
        "Product category, code list JZ020 (domain.md §5.2).", unknown_code={"codelist": "productcategorie"}
    )
    zorgaanbieder_agb: Series[str] = _f("AGB code of the care provider, 8 digits (domain.md §3).", agb_format=())
    aanmelddatum: Series[Date] = _f("Date of registration/referral.", nullable=False)
    besluitdatum: Series[Date] = _f("Date of the municipal decision (toewijzing, JW301).")
    intakedatum: Series[Date] = _f("Date of intake.")
    startdatum: Series[Date] = _f("Start of care (JW305).")
    einddatum: Series[Date] = _f("End of care (JW307).")
    reden_beeindiging: Series[str] = _f(
        "Reason for ending, code list JZ588 (domain.md §5.2).", unknown_code={"codelist": "reden_beeindiging"}
    )


class VoEnrolment(Provenance, PupilIdentity, Naw):
    """VO enrolment (inschrijving) per school location, from each VO school's LAS export."""

    vo_brin6: Series[str] = _f(
        "VO school location, BRIN + vestiging.", nullable=False, brin6_format=(), known_school=()
    )
    leerjaar: Series[pd.Int64Dtype] = _f("Year of study (1-6).")
    onderwijsniveau: Series[str] = _f(
        "Level/stream, canonical schooladvies code (pro, vmbo_b, ..., vwo, vso).",
        unknown_code={"codelist": "schooladvies"},
    )
    inschrijfdatum: Series[Date] = _f("Date of enrolment.", nullable=False)
    uitschrijfdatum: Series[Date] = _f("Date of de-registration; empty while enrolled.")
    vrijstelling: Series[str] = _f(
        "Leerplicht exemption article (5a, 5b, 5c, 15, 3a, 3b; domain.md §4.4) or empty.",
        unknown_code={"codelist": "vrijstelling"},
    )
    # What the VO school knows of the pupil's support, for the VO -> MBO handover (docs/handover.md).
    ondersteuningsbehoefte: Series[pd.BooleanDtype] = _f("Pupil needs extra support (the VO school's record).")
    opp: Series[pd.BooleanDtype] = _f("Has an ontwikkelingsperspectiefplan at the VO school (domain.md §2.4).")
    toestemming_ouders: Series[pd.BooleanDtype] = _f(
        "Parents (or the pupil of 16+) consented to passing support details to the MBO institution."
    )
    toestemming_datum: Series[Date] = _f("Date that consent was recorded.")
    ondersteuning_details: Series[str] = _f(
        "Support details for the MBO institution (free text).", metadata=CONSENT, mojibake=()
    )


class VoAbsence(Provenance):
    """Weekly absence per pupil from each VO school's LAS (lesson hours, domain.md §4.3)."""

    bsn: Series[str] = _f("BSN of the pupil.", metadata=PERSONAL, bsn_elfproef=())
    onderwijsnummer: Series[str] = _f("Onderwijsnummer of the pupil.", metadata=PERSONAL, onderwijsnummer_valid=())
    vo_brin6: Series[str] = _f("VO school location.", nullable=False, brin6_format=(), known_school=())
    week_start: Series[Date] = _f("Monday of the school week.", nullable=False)
    uren_ongeoorloofd: Series[float] = _f(
        "Unexcused absence in lesson hours that week.", nullable=False, hours_range=()
    )
    uren_geoorloofd: Series[float] = _f(
        "Excused absence (illness, schorsing) in lesson hours that week.", hours_range=()
    )
    uren_rooster: Series[float] = _f(
        "Scheduled lesson hours of the pupil that week (rooster); optional, used by LRV (docs/alerts.md).",
        hours_range=(),
    )


class MboOutflow(Provenance):
    """VO leavers and their MBO application status (VVA, domain.md §6)."""

    bsn: Series[str] = _f("BSN of the leaver.", metadata=PERSONAL, bsn_elfproef=())
    onderwijsnummer: Series[str] = _f("Onderwijsnummer of the leaver.", metadata=PERSONAL, onderwijsnummer_valid=())
    geboortedatum: Series[Date] = _f("Date of birth.", metadata=PERSONAL)
    woongemeente_code: Series[str] = _f("CBS code of the municipality of residence.", gemeentecode_format=())
    vo_brin6: Series[str] = _f(
        "VO school location the pupil leaves.", nullable=False, brin6_format=(), known_school=()
    )
    vo_niveau: Series[str] = _f("VO level, canonical schooladvies code.", unknown_code={"codelist": "schooladvies"})
    vo_diploma: Series[pd.BooleanDtype] = _f("Left with a VO diploma.")
    uitstroomdatum: Series[Date] = _f("Date the pupil leaves VO.")
    mbo_brin: Series[str] = _f("BRIN (4 chars) of the MBO institution applied to.", brin4_format=())
    crebo: Series[str] = _f("Crebo code of the MBO programme, 5 digits.", crebo_format=())
    mbo_niveau: Series[pd.Int64Dtype] = _f("MBO level 1-4.")
    aanmelddatum: Series[Date] = _f("Date of the MBO application.")
    vva_status: Series[str] = _f(
        "VVA application status, canonical code (domain.md §6).", unknown_code={"codelist": "vva_status"}
    )
    status_datum: Series[Date] = _f("Date of the last status change.")


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "po_transfers": PoTransfer,
    "youth_care_waitlist": YouthCareWaitlist,
    "vo_enrolment": VoEnrolment,
    "vo_absence": VoAbsence,
    "mbo_outflow": MboOutflow,
}
assert tuple(MODELS) == DATASETS, "one model per dataset of settings.datasets, in its order"

PROVENANCE_COLUMNS = tuple(Provenance.to_schema().columns)


def canonical_fields(dataset: str) -> dict[str, pa.Column]:
    """The mappable fields of a dataset (everything except provenance), in declaration order."""
    columns = MODELS[dataset].to_schema().columns
    return {name: col for name, col in columns.items() if name not in PROVENANCE_COLUMNS}


def personal_fields(dataset: str) -> set[str]:
    return {n for n, c in MODELS[dataset].to_schema().columns.items() if (c.metadata or {}).get("personal")}


def boolean_fields(dataset: str) -> set[str]:
    """The yes/no fields of a dataset (parsed from ja/nee words and the ``ja_nee`` labels)."""
    return {n for n, c in canonical_fields(dataset).items() if str(c.dtype) == "boolean"}


def consent_gated_fields(dataset: str) -> set[str]:
    return {n for n, c in MODELS[dataset].to_schema().columns.items() if (c.metadata or {}).get("consent_gated")}


# --- cross-field rules per dataset (docs/domain.md sections cited per rule in schemas.checks) ---

# Pupil identifiers: exactly one per row (domain.md §3); iJw waitlists identify clients by BSN (§5.1).
IDENTIFIERS = {
    "po_transfers": ("bsn", "onderwijsnummer"),
    "youth_care_waitlist": ("bsn",),
    "vo_enrolment": ("bsn", "onderwijsnummer"),
    "vo_absence": ("bsn", "onderwijsnummer"),
    "mbo_outflow": ("bsn", "onderwijsnummer"),
}

# Fields that are optional in the contract (a partner may not deliver them at all) but that must be
# filled on every row where the source delivers them: a waitlist row without its municipality would
# silently drop out of every municipality's export.
REQUIRED_WHEN_MAPPED = {"youth_care_waitlist": ("woongemeente_code",)}

# (date, not before): a date column, or "schooljaar" with the years it may lie before that year starts.
DATE_ORDER: dict[str, list[tuple[str, str, int]]] = {
    "po_transfers": [("aanmelddatum", "schooljaar", 2), ("tlv_datum", "schooljaar", 2)],
    "youth_care_waitlist": [
        ("besluitdatum", "aanmelddatum", 0),
        ("intakedatum", "aanmelddatum", 0),
        ("startdatum", "aanmelddatum", 0),
        ("einddatum", "startdatum", 0),
    ],
    "vo_enrolment": [("uitschrijfdatum", "inschrijfdatum", 0)],
    "mbo_outflow": [("status_datum", "aanmelddatum", 0)],
}

# Plausible age (whole years) of the person on a date of the row: (on, minimum, maximum).
AGE_RANGE = {
    "po_transfers": ("schooljaar", 10, 14),
    "youth_care_waitlist": ("aanmelddatum", 0, 23),
    "vo_enrolment": ("inschrijfdatum", 10, 21),
    "mbo_outflow": ("uitstroomdatum", 14, 23),
}

# (definitive, provisional) schooladvies: the definitive one is never lower (domain.md §2.3).
ADVICE_PAIRS = {"po_transfers": ("definitief_advies", "voorlopig_advies")}

# (unexcused, excused, scheduled) hours of a week: absence never exceeds the scheduled lessons (§4.3).
SCHEDULED_HOURS = {"vo_absence": ("uren_ongeoorloofd", "uren_geoorloofd", "uren_rooster")}


def date_fields(dataset: str) -> list[str]:
    """The date fields of a dataset, in declaration order."""
    return [name for name, col in canonical_fields(dataset).items() if str(col.dtype).startswith("datetime64")]


def cross_field_checks(dataset: str, *, evaluation_date: dt.date, school_year_start: str = "08-01") -> list[pa.Check]:
    """The dataframe-level rules of a dataset for one evaluation date; each reports on its ``column``."""
    identifier, *alternatives = IDENTIFIERS[dataset]
    checks = [pa.Check.one_identifier(column=identifier, alternatives=tuple(alternatives))]
    checks += [pa.Check.not_in_future(column=name, evaluation_date=evaluation_date) for name in date_fields(dataset)]
    checks += [
        pa.Check.date_order(
            column=name, not_before=bound, years_before=years, school_year_start=school_year_start
        )
        for name, bound, years in DATE_ORDER.get(dataset, [])
    ]
    if dataset in AGE_RANGE:
        on, youngest, oldest = AGE_RANGE[dataset]
        checks.append(
            pa.Check.birthdate_plausible(
                column="geboortedatum", at=on, min_age=youngest, max_age=oldest, school_year_start=school_year_start
            )
        )
    if dataset in ADVICE_PAIRS:
        final, provisional = ADVICE_PAIRS[dataset]
        checks.append(pa.Check.advice_not_lowered(column=final, provisional=provisional))
    if dataset in SCHEDULED_HOURS:
        absent, excused, scheduled = SCHEDULED_HOURS[dataset]
        checks.append(pa.Check.absence_within_schedule(column=absent, excused=excused, scheduled=scheduled))
    return checks


def dataset_schema(dataset: str, *, evaluation_date: dt.date, school_year_start: str = "08-01",
                   school_registry: list[str] | None = None) -> pa.DataFrameSchema:
    """The whole contract of a dataset on one evaluation date: the model plus its cross-field rules.

    ``school_registry``: the region's own DUO files for ``known_school`` (None: the national registry).
    """
    schema = copy.deepcopy(MODELS[dataset].to_schema())
    schema.checks = [
        *schema.checks,
        *cross_field_checks(dataset, evaluation_date=evaluation_date, school_year_start=school_year_start),
    ]
    if school_registry:
        registry = tuple(school_registry)
        for column in schema.columns.values():
            column.checks = [pa.Check.known_school(registry=registry) if check.name == "known_school" else check
                             for check in column.checks]
    return schema
