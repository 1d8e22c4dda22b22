"""Canonical code lists and the school registry: the only values a validated code field may hold.

The small lists are written out here, each with its source in ``docs/domain.md``; the iJw lists
and the school registry are read from the reference CSV files in ``reference/`` (see
``reference/README.md`` for where they come from). Files are read once per process.

A partner's own labels ("VMBO KL", "Jeugdhulp ambulant") are mapped onto these codes by the region
YAML (``codelists`` and ``sources.<id>.codes``), never by code: see ``schemas.parse``.
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from settings.paths import PROJECT_ROOT

REFERENCE_DIR = PROJECT_ROOT / "reference"

# Schooladvies, lowest to highest (domain.md §2.2). pro and vso are different routes, not a ranking
# between them, so both are the lowest rank; a combined advice ranks between its two parts.
SCHOOLADVIES = (
    "pro", "vso", "vmbo_b", "vmbo_b_k", "vmbo_k", "vmbo_k_gt", "vmbo_gt", "vmbo_gt_havo", "havo", "havo_vwo", "vwo",
)
ADVICE_RANK = {"pro": 0, "vso": 0} | {code: rank for rank, code in enumerate(SCHOOLADVIES[2:], start=1)}

# VVA application statuses (domain.md §6: mbovoorzieningen.nl), plus the status before a decision.
VVA_STATUS = (
    "aanmelding_ontvangen", "onderwijsovereenkomst_aangeboden", "niet_tot_inschrijving", "ingetrokken", "ingeschreven",
)
TLV_SOORT = ("pro", "vso")  # domain.md §2.4: a TLV is issued for praktijkonderwijs or (v)so
VRIJSTELLING = ("5a", "5b", "5c", "15", "3a", "3b")  # Leerplichtwet articles, domain.md §4.4

_FIXED = {
    "schooladvies": SCHOOLADVIES,
    "vva_status": VVA_STATUS,
    "tlv_soort": TLV_SOORT,
    "vrijstelling": VRIJSTELLING,
}
# iJw code lists (domain.md §5.2), read from reference/ijw_codelijsten_release_3_2.csv by their list code.
IJW_LISTS = {"productcategorie": "JZ020", "verwijzer": "COD327", "reden_beeindiging": "JZ588"}

# Which code list each canonical code field takes its values from; the list names are also the keys
# of ``codelists`` in the region YAML (docs/configuration.md).
CODELIST_OF_FIELD = {
    "voorlopig_advies": "schooladvies",
    "toets_advies": "schooladvies",
    "definitief_advies": "schooladvies",
    "onderwijsniveau": "schooladvies",
    "vo_niveau": "schooladvies",
    "vva_status": "vva_status",
    "tlv_soort": "tlv_soort",
    "vrijstelling": "vrijstelling",
    "productcategorie": "productcategorie",
    "verwijzer": "verwijzer",
    "reden_beeindiging": "reden_beeindiging",
}


@cache
def canonical_codes(codelist: str) -> frozenset[str]:
    """The canonical codes of one code list (``schooladvies``, ``productcategorie``, ...)."""
    if codelist in _FIXED:
        return frozenset(_FIXED[codelist])
    if codelist in IJW_LISTS:
        table = _ijw_table()
        return frozenset(table.loc[table["lijstcode"] == IJW_LISTS[codelist], "code"])
    raise KeyError(f"unknown code list {codelist!r}; known: {sorted([*_FIXED, *IJW_LISTS])}")


SCHOOL_REGISTRY = REFERENCE_DIR / "duo_schoolvestigingen_drenthe_overijssel_2024.csv"


@cache
def known_schools() -> frozenset[str]:
    """Every school location (BRIN6 vestigingscode) in the DUO registry for Drenthe and Overijssel.

    The registry covers the two provinces around the region (reference/README.md); a pupil from a
    school elsewhere fails ``known_school`` until the registry file is extended.
    """
    codes = pd.read_csv(SCHOOL_REGISTRY, dtype="str", usecols=["vestigingscode"], encoding="utf-8")["vestigingscode"]
    return frozenset(codes.dropna().str.strip())


@cache
def school_names() -> dict[str, str]:
    """School location (BRIN6 vestigingscode) -> its DUO name, from the same registry as ``known_schools``.

    The one place outputs read school names from: a code shown to a person gets its name beside it.
    """
    table = pd.read_csv(SCHOOL_REGISTRY, dtype="str", usecols=["vestigingscode", "vestigingsnaam"], encoding="utf-8")
    table = table.dropna().drop_duplicates("vestigingscode")
    return dict(zip(table["vestigingscode"].str.strip(), table["vestigingsnaam"].str.strip(), strict=True))


@cache
def code_labels(codelist: str) -> dict[str, str]:
    """Canonical code -> its official Dutch label, for the iJw lists (``productcategorie`` -> JZ020 ``waarde``)."""
    if codelist not in IJW_LISTS:
        raise KeyError(f"no labels for code list {codelist!r}; labelled lists: {sorted(IJW_LISTS)}")
    table = _ijw_table()
    rows = table.loc[table["lijstcode"] == IJW_LISTS[codelist]]
    return dict(zip(rows["code"], rows["waarde"], strict=True))


@cache
def qualification_names() -> dict[str, str]:
    """Crebo code -> qualification name, from the 2015 qualification list (reference/README.md: a list
    of realistic codes, not the current register; codes introduced later have no name here)."""
    table = pd.read_csv(REFERENCE_DIR / "mbo_kwalificaties_crebo_2015.csv", dtype="str",
                        usecols=["crebo", "kwalificatie"], encoding="utf-8").dropna()
    table = table.loc[table["crebo"].str.fullmatch(r"\d{5}")].drop_duplicates("crebo")
    return dict(zip(table["crebo"], table["kwalificatie"], strict=True))


@cache
def _ijw_table() -> pd.DataFrame:
    path = REFERENCE_DIR / "ijw_codelijsten_release_3_2.csv"
    return pd.read_csv(path, dtype="str", usecols=["lijstcode", "code", "waarde"], encoding="utf-8")
