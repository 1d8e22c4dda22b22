"""The Dutch words every output uses: one vocabulary for codes, statuses and names.

Handover files, signal lists, digests and exports show the same status in the same words: the VVA
status ``niet_tot_inschrijving`` reads "aanmelding leidt niet tot inschrijving" in the VO→MBO file,
in the monitoring export's ``mbo_status_omschrijving`` and in a signal's toelichting alike. Each
label is written here once; the codes themselves stay what the canonical datasets hold
(``schemas.codelists``), and names of schools and institutions come from the registry there.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping

import pandas as pd

from schemas.codelists import school_names

# Canonical schooladvies code -> DUO label (docs/domain.md §2.2).
ADVICE_LABELS = {
    "pro": "PRO", "vso": "VSO", "vmbo_b": "VMBO BL", "vmbo_b_k": "VMBO BL-KL", "vmbo_k": "VMBO KL",
    "vmbo_k_gt": "VMBO KL-GT", "vmbo_gt": "VMBO GT", "vmbo_gt_havo": "VMBO GT-HAVO", "havo": "HAVO",
    "havo_vwo": "HAVO/VWO", "vwo": "VWO",
}
TLV_LABELS = {"pro": "TLV PrO", "vso": "TLV VSO"}

# Canonical VVA status -> the wording of the VVA (docs/domain.md §6), and the state of a leaver without
# any application (the exports' mbo_status ``geen_aanmelding``).
GEEN_AANMELDING = "geen_aanmelding"
VVA_LABELS = {
    "aanmelding_ontvangen": "aanmelding ontvangen",
    "onderwijsovereenkomst_aangeboden": "onderwijsovereenkomst aangeboden",
    "niet_tot_inschrijving": "aanmelding leidt niet tot inschrijving",
    "ingetrokken": "aanmelding ingetrokken",
    "ingeschreven": "ingeschreven",
    GEEN_AANMELDING: "geen mbo-aanmelding",
}

# A signal's status from night to night (docs/signalen.md "Status").
ALERT_STATUS_LABELS = {"new": "nieuw", "open": "open", "reopened": "heropend", "resolved": "opgelost"}

# Why the support cells of a handover row are empty (docs/handover.md "Reden leeg"): the real reason,
# never "no consent" where parents were never asked because there was nothing to share.
GEEN_ONDERSTEUNINGSBEHOEFTE = "geen ondersteuningsbehoefte"
GEEN_TOESTEMMING = "geen toestemming"
NIET_GELEVERD = "niet geleverd"

# A pupil's situation on the peildatum and its PO→VO transfer, as the exports and lists show them.
INGESCHREVEN_VO = "ingeschreven VO"
AANGEMELD_VO = "aangemeld VO"
ONDERWIJSSTATUS = (INGESCHREVEN_VO, "uitgestroomd naar MBO", "uitgestroomd VO zonder MBO-inschrijving",
                   AANGEMELD_VO, "niet ingeschreven")
OVERDRACHT_STATUS = (INGESCHREVEN_VO, AANGEMELD_VO, "niet aangemeld")
WACHTLIJST_STATUS = ("wacht", "in zorg", "geen")

NAAM_ONBEKEND = "(naam onbekend)"


def labelled(codes: pd.Series, labels: Mapping[str, str]) -> pd.Series:
    """The label of each code; a code without a label stays as delivered (it is still a fact), missing stays missing."""
    return codes.map(labels).fillna(codes).astype("str")


def named(codes: pd.Series, names: Mapping[str, str]) -> pd.Series:
    """The name of each code; ``(naam onbekend)`` for a code without one, missing stays missing.

    Only the distinct codes are looked up: a municipality's table names a few dozen schools, and
    handing pandas the whole registry (thousands of names) to map them cost more than the table.
    """
    found = codes.map({code: names[code] for code in codes.dropna().unique() if code in names}).astype("str")
    return found.where(found.notna() | codes.isna(), NAAM_ONBEKEND)


def names_of(codes: pd.Series, institutions: Mapping[str, str] | None = None) -> pd.Series:
    """The name of each school location (DUO registry, ``schemas.codelists.school_names``) or MBO
    institution (``institutions``: the region file's ``mbo_instellingen``, which win over the registry);
    ``(naam onbekend)`` otherwise."""
    return named(codes, ChainMap(dict(institutions or {}), school_names()))
