"""Canonical code lists and the school registry: the only values a validated code field may hold.

The small lists are written out here, each with its source in ``docs/domain.md``; the iJw lists
and the national school registry are read from the reference CSV files in ``reference/`` (see
``reference/README.md`` for where they come from); a region may name its own DUO school file
instead (``school_registry``). Files are read once per process.

A partner's own labels ("VMBO KL", "Jeugdhulp ambulant") are mapped onto these codes by the region
YAML (``codelists`` and ``sources.<id>.codes``), never by code: see ``schemas.parse``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pandas as pd

from settings.paths import PROJECT_ROOT

REFERENCE_DIR = PROJECT_ROOT / "reference"
NATIONAL_SCHOOL_REGISTRY = REFERENCE_DIR / "duo_schoolvestigingen_nl_2024.csv"  # DUO, November 2024

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

# Yes/no fields take labels through one code list of their own, onto these two values
# (docs/configuration.md: support levels "geen/basis/extra", consent "akkoord/geweigerd").
BOOLEAN_CODELIST = "ja_nee"
BOOLEAN_CODES = ("ja", "nee")

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


class SchoolRegistryError(ValueError):
    """A school registry file cannot be used; the message names the file and the problem."""


def registry_files(registry: Iterable[str | Path] | str | Path | None = None) -> tuple[str, ...]:
    """The files of a school registry: the region's ``school_registry``, or the national default."""
    if registry is None:
        return (str(NATIONAL_SCHOOL_REGISTRY),)
    if isinstance(registry, (str, Path)):
        return (str(registry),)
    return tuple(str(path) for path in registry) or (str(NATIONAL_SCHOOL_REGISTRY),)


def known_schools(registry: Iterable[str | Path] | str | Path | None = None) -> frozenset[str]:
    """Every school location (BRIN6 vestigingscode) in the registry (default: the national DUO file).

    ``registry`` is the region's ``school_registry`` (docs/configuration.md): an SWV with a newer
    DUO export uses that instead of the project's copy of November 2024 (reference/README.md).
    """
    return _known_schools(registry_files(registry))


def school_names(registry: Iterable[str | Path] | str | Path | None = None) -> dict[str, str]:
    """School name by code, for showing a code to a person: BRIN6 (a location) -> its DUO name, and
    BRIN4 (an institution) -> the name of its main location (vestiging ``00``, else its first).

    ``registry`` as for ``known_schools``. A code outside the registry (an MBO institution, a typo)
    has no entry: callers show the code alone. A fresh dict per call, so callers may change it.
    """
    return dict(_school_names(registry_files(registry)))


def school_registry(registry: Iterable[str | Path] | str | Path | None = None) -> pd.DataFrame:
    """The registry as one table, one row per location: ``vestigingscode``, ``brin`` (its first four
    characters), ``vestigingsnaam``, ``sector`` (``BAO``, ``SBAO``, ``(V)SO``, ``VO``) and ``gemeentecode``;
    a column the file does not have is empty."""
    return _registry(registry_files(registry)).copy()


def read_school_registry(path: str | Path) -> pd.DataFrame:
    """One school file: the project's layout (reference/README.md) or DUO's own export.

    DUO's open-data files ("alle vestigingen", UTF-8 or Windows-1252, ',' or ';') name the columns
    ``VESTIGINGSCODE`` and ``VESTIGINGSNAAM``; older ones ``BRIN NUMMER`` with a two-digit
    ``VESTIGINGSNUMMER``. Column names are matched without regard to case, spaces or underscores.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SchoolRegistryError(f"{path}: cannot read the school registry ({exc.strerror})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    header = text.split("\n", 1)[0]
    separator = ";" if header.count(";") > header.count(",") else ","
    table = pd.read_csv(io.StringIO(text), sep=separator, dtype="str", keep_default_na=False)
    columns = {re.sub(r"[\s_]", "", str(name)).lower(): name for name in table.columns}
    code = table[columns["vestigingscode"]] if "vestigingscode" in columns else None
    if code is None and "vestigingsnummer" in columns:
        code = table[columns["vestigingsnummer"]].str.strip()
        brin = next((columns[name] for name in ("brinnummer", "brin", "instellingscode") if name in columns), None)
        if brin is not None:
            code = code.where(code.str.len() != 2, table[brin].str.strip() + code)
    if code is None:
        raise SchoolRegistryError(
            f"{path}: no column vestigingscode (or VESTIGINGSCODE, VESTIGINGSNUMMER) in the header "
            f"({', '.join(map(str, table.columns[:8]))}{', ...' if len(table.columns) > 8 else ''})"
        )
    code = code.str.replace(r"[\s.\-]", "", regex=True).str.upper()
    def column(name: str) -> pd.Series:
        return table[columns[name]].str.strip() if name in columns else pd.Series("", index=table.index)

    registry = pd.DataFrame({"vestigingscode": code, "brin": code.str.slice(0, 4),
                             "vestigingsnaam": column("vestigingsnaam"), "sector": column("sector"),
                             "gemeentecode": column("gemeentecode")}, dtype="str")
    return registry.loc[registry["vestigingscode"] != ""].reset_index(drop=True)


@cache
def _registry(files: tuple[str, ...]) -> pd.DataFrame:
    tables = [read_school_registry(path) for path in files]
    return pd.concat(tables, ignore_index=True).drop_duplicates("vestigingscode", ignore_index=True)


@cache
def _known_schools(files: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_registry(files)["vestigingscode"])


@cache
def _school_names(files: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    named = _registry(files).loc[lambda table: table["vestigingsnaam"] != ""]
    by_location = dict(zip(named["vestigingscode"], named["vestigingsnaam"]))
    # An institution's name is that of its main location: vestiging 00 where it exists, else the lowest.
    main = named.assign(brin=named["vestigingscode"].str.slice(0, 4)).sort_values("vestigingscode")
    main = main.loc[main["vestigingscode"].str.fullmatch(r"\d{2}[A-Z]{2}\d{2}")].drop_duplicates("brin")
    return tuple({**dict(zip(main["brin"], main["vestigingsnaam"])), **by_location}.items())


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
def cluster_institutions() -> dict[str, tuple[str, ...]]:
    """BRIN of the national cluster 1 and 2 institutions (domain.md §2.4; reference/cluster_instellingen.csv)."""
    table = pd.read_csv(REFERENCE_DIR / "cluster_instellingen.csv", dtype="str", encoding="utf-8")
    return {cluster: tuple(group["brin"]) for cluster, group in table.groupby("cluster", sort=True)}


@cache
def _ijw_table() -> pd.DataFrame:
    path = REFERENCE_DIR / "ijw_codelijsten_release_3_2.csv"
    return pd.read_csv(path, dtype="str", usecols=["lijstcode", "code", "waarde"], encoding="utf-8")
