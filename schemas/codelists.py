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


@cache
def known_schools() -> frozenset[str]:
    """Every school location (BRIN6 vestigingscode) in the DUO registry for Drenthe and Overijssel.

    The registry covers the two provinces around the region (reference/README.md); a pupil from a
    school elsewhere fails ``known_school`` until the registry file is extended.
    """
    path = REFERENCE_DIR / "duo_schoolvestigingen_drenthe_overijssel_2024.csv"
    codes = pd.read_csv(path, dtype="str", usecols=["vestigingscode"], encoding="utf-8")["vestigingscode"]
    return frozenset(codes.dropna().str.strip())


SCHOOL_REGISTRY_FILE = REFERENCE_DIR / "duo_schoolvestigingen_drenthe_overijssel_2024.csv"


@cache
def school_registry() -> pd.DataFrame:
    """The DUO registry's school locations: ``vestigingscode``, ``brin``, ``vestigingsnaam``, ``sector``
    (``BAO``, ``SBAO``, ``(V)SO``, ``VO``) and ``gemeentecode``, one row per location (reference/README.md)."""
    columns = ["vestigingscode", "brin", "vestigingsnaam", "sector", "gemeentecode"]
    table = pd.read_csv(SCHOOL_REGISTRY_FILE, dtype="str", usecols=columns, encoding="utf-8", keep_default_na=False)
    return table.loc[:, columns].drop_duplicates("vestigingscode").reset_index(drop=True)


@cache
def cluster_institutions() -> dict[str, tuple[str, ...]]:
    """BRIN of the national cluster 1 and 2 institutions (domain.md §2.4; reference/cluster_instellingen.csv)."""
    table = pd.read_csv(REFERENCE_DIR / "cluster_instellingen.csv", dtype="str", encoding="utf-8")
    return {cluster: tuple(group["brin"]) for cluster, group in table.groupby("cluster", sort=True)}


@cache
def ijw_labels(codelist: str) -> dict[str, str]:
    """Code -> label of an iJw code list (``productcategorie``: "45" -> "Jeugdhulp ambulant")."""
    table = pd.read_csv(REFERENCE_DIR / "ijw_codelijsten_release_3_2.csv", dtype="str", encoding="utf-8")
    rows = table.loc[table["lijstcode"] == IJW_LISTS[codelist]]
    return dict(zip(rows["code"], rows["waarde"], strict=True))


@cache
def _ijw_table() -> pd.DataFrame:
    path = REFERENCE_DIR / "ijw_codelijsten_release_3_2.csv"
    return pd.read_csv(path, dtype="str", usecols=["lijstcode", "code"], encoding="utf-8")
