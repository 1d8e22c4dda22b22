"""A starting region file for any SWV, from the public tables in ``reference/`` (``swv init``).

- **Municipalities** from the regeling's postcode table (BWBR0032324, version of 2015-04-23; docs/domain.md
  §1), mapped onto today's municipalities (``reference/gemeenten_2025.csv``). Municipalities have merged
  since (Groesbeek into Berg en Dal, Boxmeer and four others into Land van Cuijk, ...); the table names
  only those that still exist. A postcode area of a merged municipality is placed through the schools
  that stand in it: the national registry gives each school its municipality of 2025. An area
  without a school follows the other areas of its former municipality (``pc4_municipalities``).
- **Holiday region** from the province, with the known exceptions (docs/domain.md §2.5).
- **Schools** from the national registry: the VO and PO locations in the SWV's municipalities.
- **Sources**: one block per expected delivery, each a CSV file in the canonical layout, so the file
  validates at once; the steward then maps each partner's real columns (docs/onboarding.md).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import pandas as pd

from schemas.codelists import NATIONAL_SCHOOL_REGISTRY, REFERENCE_DIR
from schemas.datasets import canonical_fields

REGELING_PC4 = REFERENCE_DIR / "swv_passend_onderwijs_pc4_2015.csv"
MUNICIPALITIES_2025 = REFERENCE_DIR / "gemeenten_2025.csv"
REGELING_URL = "https://wetten.overheid.nl/BWBR0032324"
HOLIDAYS_URL = "https://www.rijksoverheid.nl/onderwerpen/schoolvakanties"

# Holiday region per province, and the municipalities known to differ from their province (docs/domain.md §2.5).
PROVINCE_HOLIDAY_REGION = {
    "Groningen": "noord", "Fryslân": "noord", "Drenthe": "noord", "Overijssel": "noord", "Noord-Holland": "noord",
    "Flevoland": "noord", "Utrecht": "midden", "Zuid-Holland": "midden", "Gelderland": "midden",
    "Zeeland": "zuid", "Noord-Brabant": "zuid", "Limburg": "zuid",
}
HOLIDAY_REGION_EXCEPTIONS = {"GM0244": "noord", "GM0202": "zuid", "GM0268": "zuid"}  # Hattem; Arnhem, Nijmegen
SPLIT_PROVINCES = ("Flevoland", "Gelderland", "Noord-Brabant", "Utrecht")  # their municipalities are not all alike

# What a first delivery schedule looks like: the cadence the demo region uses (docs/configuration.md).
CADENCE_HOURS = {"po_transfers": 192, "youth_care_waitlist": 36, "vo_enrolment": 36, "vo_absence": 192,
                 "mbo_outflow": 36}


class UnknownSwvError(ValueError):
    """The code is not an SWV VO of the regeling; the message lists the SWVs of its region."""


@dataclass(frozen=True)
class Municipality:
    code: str
    naam: str
    provincie: str
    merged_from: tuple[str, ...]  # 2015 names of municipalities since merged into this one
    areas: int  # postcode areas (PC4) of the SWV in it
    all_areas: int  # postcode areas in it altogether
    other_swvs: tuple[str, ...]  # the SWVs its other areas belong to

    @property
    def partial(self) -> bool:
        return self.areas < self.all_areas


@dataclass(frozen=True)
class SwvArea:
    """What the public tables say about one SWV VO."""

    code: str
    municipalities: tuple[Municipality, ...]
    holiday_region: str
    holiday_note: str
    schools: pd.DataFrame  # vestigingscode, vestigingsnaam, sector, gemeentecode, gemeentenaam

    @property
    def name(self) -> str:
        return f"Samenwerkingsverband VO {self.code[2:4]}.{self.code[4:]}"


def _fold(name: str) -> str:
    """A municipality's name without diacritics, case, spaces or punctuation ('Súdwest-Fryslân' ~ 'Sudwest Fryslan')."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", ascii_name.lower())


@cache
def _schools() -> pd.DataFrame:
    return pd.read_csv(NATIONAL_SCHOOL_REGISTRY, dtype="str", keep_default_na=False)


@cache
def _municipalities() -> pd.DataFrame:
    return pd.read_csv(MUNICIPALITIES_2025, dtype="str", keep_default_na=False).set_index("gemeentecode")


@cache
def pc4_municipalities() -> pd.DataFrame:
    """The regeling's postcode table with each area's municipality of 1 January 2025 (``gemeentecode``).

    Columns ``pc4``, ``gemeentenaam_2015``, ``swv_po``, ``swv_vo``, ``gemeentecode``, ``merged``
    (the area's 2015 municipality no longer exists). Areas whose municipality cannot be placed are
    left out (none in the 2015 table).
    """
    table = pd.read_csv(REGELING_PC4, dtype="str", keep_default_na=False)
    schools = _schools().assign(pc4=lambda s: s["postcode"].str.slice(0, 4))
    # The municipality most of an area's schools stand in (areas rarely straddle a border).
    by_schools = (schools.groupby(["pc4", "gemeentecode"]).size().rename("n").reset_index()
                  .sort_values(["pc4", "n", "gemeentecode"], ascending=[True, False, True])
                  .drop_duplicates("pc4").set_index("pc4")["gemeentecode"])
    merged = table["gemeentecode_2025"] == ""
    code = table["gemeentecode_2025"].where(~merged, table["pc4"].map(by_schools))
    # An area without a school goes where most of its former municipality's areas went.
    majority = (pd.DataFrame({"naam": table["gemeentenaam_2015"], "code": code}).dropna()
                .groupby("naam")["code"].agg(lambda codes: codes.value_counts().index[0]))
    code = code.fillna(table["gemeentenaam_2015"].map(majority))
    placed = table.assign(gemeentecode=code, merged=merged).dropna(subset=["gemeentecode"])
    return placed.loc[:, ["pc4", "gemeentenaam_2015", "swv_po", "swv_vo", "gemeentecode", "merged"]].reset_index(
        drop=True)


def swv_codes() -> list[str]:
    """Every SWV VO code of the regeling's postcode table."""
    return sorted(code for code in pc4_municipalities()["swv_vo"].unique() if code)


def swv_area(code: str) -> SwvArea:
    """Municipalities, holiday region and schools of one SWV VO (``VO2507``)."""
    code = code.strip().upper().replace(" ", "").replace(".", "")
    areas = pc4_municipalities()
    mine = areas.loc[areas["swv_vo"] == code]
    if mine.empty:
        same_region = [c for c in swv_codes() if c[:4] == code[:4]]
        where = f" in region {code[2:4]}" if same_region else ""
        raise UnknownSwvError(f"{code} is not an SWV VO in the regeling ({REGELING_URL}, postcode table of 2015); "
                              f"known codes{where}: {', '.join(same_region or swv_codes())}")
    register = _municipalities()
    municipalities = []
    for gemeente, rows in mine.groupby("gemeentecode", sort=False):
        everywhere = areas.loc[areas["gemeentecode"] == gemeente]
        naam = register.at[gemeente, "gemeentenaam"]
        former = sorted({n for n in rows.loc[rows["merged"], "gemeentenaam_2015"] if _fold(n) != _fold(naam)})
        others = sorted(set(everywhere["swv_vo"]) - {code, ""})
        municipalities.append(Municipality(gemeente, naam, register.at[gemeente, "provincienaam"], tuple(former),
                                           len(rows), len(everywhere), tuple(others)))
    municipalities.sort(key=lambda m: _fold(m.naam))
    region, note = holiday_region(municipalities)
    codes = [m.code for m in municipalities]
    schools = _schools().loc[lambda s: s["gemeentecode"].isin(codes),
                             ["vestigingscode", "vestigingsnaam", "sector", "gemeentecode", "gemeentenaam"]]
    return SwvArea(code, tuple(municipalities), region, note, schools.reset_index(drop=True))


def holiday_region(municipalities: list[Municipality]) -> tuple[str, str]:
    """The holiday region of most of the municipalities, and what to check about it (docs/domain.md §2.5).

    A municipality in a province split between regions (Gelderland, ...) gets the province's usual
    region, which may be wrong; so the region is the majority of the municipalities whose region is
    certain, where there are any.
    """
    def certain(m: Municipality) -> bool:
        return m.code in HOLIDAY_REGION_EXCEPTIONS or m.provincie not in SPLIT_PROVINCES

    regions = {m.code: HOLIDAY_REGION_EXCEPTIONS.get(m.code, PROVINCE_HOLIDAY_REGION[m.provincie])
               for m in municipalities}
    votes = [regions[m.code] for m in municipalities if certain(m)] or list(regions.values())
    region = max(sorted(set(votes)), key=votes.count)
    notes = []
    uncertain = sorted({m.provincie for m in municipalities if not certain(m)})
    if uncertain:
        notes.append(f"{' and '.join(uncertain)} {'is' if len(uncertain) == 1 else 'are'} split between regions")
    if len(set(regions.values())) > 1:
        notes.append("the municipalities seem to be in " + " and ".join(sorted(set(regions.values()))))
    return region, "; ".join(notes)


# --------------------------------------------------------------------------- the region file


def _quoted(text: str) -> str:
    """A YAML scalar in double quotes (JSON strings are valid YAML): names such as 's-Hertogenbosch."""
    return json.dumps(text, ensure_ascii=False)


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", ascii_name).strip("_")


def _columns(dataset: str, indent: str) -> list[str]:
    """Every canonical field mapped from a column of the same name: the canonical layout."""
    return [f"{indent}{field}: {field}" for field in canonical_fields(dataset)]


# Every file from another board or school: each gets its own list of rejected rows (docs/validation.md).
PER_FILE_FEEDBACK = "    feedback_per: file"


def _source(source_id: str, dataset: str, partner: str, path: str, comment: list[str], *,
            gemeente: str | None = None, extra: list[str] = ()) -> list[str]:
    lines = ["", *(f"  # {line}" for line in comment), f"  {source_id}:", f"    dataset: {dataset}"]
    if gemeente:
        lines.append(f"    gemeente: {gemeente}")
    lines += [f"    partner: {_quoted(partner)}", "    location:", "      kind: file", f"      path: {path}",
              "      format: {type: csv}", *extra, "    columns:", *_columns(dataset, "      "),
              f"    cadence: {{max_age_hours: {CADENCE_HOURS[dataset]}}}"]
    return lines


def starter_region_yaml(area: SwvArea, today: dt.date | None = None) -> str:
    """The text of a region file for ``area`` that validates as it is; every guess is marked CHECK."""
    today = today or dt.date.today()
    vo = area.schools.loc[area.schools["sector"] == "VO"].sort_values(["gemeentenaam", "vestigingscode"])
    po = area.schools.loc[area.schools["sector"].isin(["BAO", "SBAO"])]
    so = area.schools.loc[area.schools["sector"] == "(V)SO"]
    lines = [
        f"# Region file of SWV {area.code}, written by `swv init --swv {area.code}` on {today.isoformat()} from the",
        "# public tables in reference/ (reference/README.md). Review every line marked CHECK, adapt each source to",
        "# what the partner really delivers, then run `swv check`. Every key: docs/configuration.md; every field:",
        "# docs/sources.md; the steps: docs/onboarding.md.",
        "",
        "swv:",
        f"  code: {area.code}",
        f"  naam: {_quoted(area.name)}  # CHECK: the official name is not in the public tables",
        "",
        "# reference_date: 2026-10-05  # a fixed evaluation date, for replays and tests only; without it the night",
        "#                              # evaluates on today in Europe/Amsterdam",
        "",
        "gemeenten:",
        "  # The regeling's postcode table (BWBR0032324, 2015-04-23) mapped onto the municipalities of 1 January",
        "  # 2025 (reference/gemeenten_2025.csv); a municipality merged since is placed through the schools in its",
        "  # postcode areas (national school registry). CHECK against the current regeling:",
        f"  # {REGELING_URL}",
    ]
    for m in area.municipalities:
        notes = []
        if m.merged_from:
            notes.append(f"2015: {', '.join(m.merged_from)} (merged since)")
        if m.partial:
            notes.append(f"CHECK: only {m.areas} of its {m.all_areas} postcode areas are in {area.code}"
                         + (f", the others in {', '.join(m.other_swvs)}" if m.other_swvs else ""))
        comment = f"  # {'; '.join(notes)}" if notes else ""
        lines.append(f"  - {{code: {m.code}, naam: {_quoted(m.naam)}}}{comment}")
    lines += [
        "",
        "calendar:",
        f"  holiday_region: {area.holiday_region}  # from the provinces (docs/domain.md §2.5)"
        + (f"; CHECK: {area.holiday_note}" if area.holiday_note else ""),
        f"  # CHECK: the school holidays of regio {area.holiday_region}: {HOLIDAYS_URL}. Weeks inside a",
        "  # holiday are no school weeks for the 16-hour and LRV rules; without them every week counts. E.g.",
        "  #   - {name: herfstvakantie 2026, start: 2026-10-17, end: 2026-10-25}",
        "  holidays: []",
        "",
        "# Delivered label -> canonical code, per code list (docs/configuration.md); your partners' labels go here.",
        "codelists: {}",
        "",
        "# school_registry: duo/02-alle-vestigingen-vo.csv  # your own, newer DUO export; default: the national",
        "#                                                  # registry of November 2024 (reference/README.md)",
        "",
        f"# Schools in the region (national registry, DUO November 2024): {len(vo)} VO, {len(po)} PO and "
        f"{len(so)} (V)SO locations.",
        "# VO locations, each of which delivers enrolment and absence:",
        *(f"#   {row.vestigingscode}  {row.vestigingsnaam} ({row.gemeentenaam})" for row in vo.itertuples()),
        "",
        "sources:",
        "  # One block per expected delivery, each a CSV file (',' or ';', UTF-8 or Windows-1252, ISO dates) in the",
        "  # canonical layout: the header names the canonical fields. Change location, format and columns to what",
        "  # the partner delivers: `columns` maps the partner's column names onto the fields (docs/sources.md).",
    ]
    lines += _source("po_overdracht", "po_transfers", "PO-schoolbesturen (LAS-export)", "po/*.csv",
                     [f"PO -> VO transfers: one LAS export per PO school board ({len(po)} PO locations in the "
                      "region)."], extra=[PER_FILE_FEEDBACK])
    for m in area.municipalities:
        source_id = f"wachtlijst_{_slug(m.naam)}"
        lines += _source(source_id, "youth_care_waitlist", f"Gemeente {m.naam}", f"jeugdhulp/{_slug(m.naam)}/*.csv",
                         [f"Youth-care waitlist of {m.naam} (iJw fields). An API instead of a file:",
                          "  location: {kind: http, url: https://..., pagination: {type: page},",
                          f"             auth: {{type: bearer, token_env: SWV_TOKEN_{_slug(m.naam).upper()}}}}}"],
                         gemeente=m.code)
    lines += _source("vo_inschrijvingen", "vo_enrolment", "VO-scholen (LAS-export)", "vo/inschrijvingen_*.csv",
                     [f"VO enrolment: one LAS export per VO school location ({len(vo)} listed above)."],
                     extra=[PER_FILE_FEEDBACK])
    lines += _source("vo_verzuim", "vo_absence", "VO-scholen (LAS-export)", "vo/verzuim_*.csv",
                     ["Weekly absence per pupil from each VO school; uren_rooster (the week's scheduled hours) is",
                      "optional: leave it out of columns when the LAS does not export it (docs/alerts.md, LRV)."],
                     extra=[PER_FILE_FEEDBACK])
    lines += _source("mbo_vva", "mbo_outflow", "VVA-koppelpunt MBO", "vva/*.csv",
                     ["VO -> MBO: application statuses of VO leavers (VVA koppelpunt), usually an API:",
                      "  location: {kind: http, url: https://..., pagination: {type: page},",
                      "             auth: {type: api_key, token_env: SWV_TOKEN_VVA, header: X-API-Key}}",
                      "A status history without an application date: derive: {aanmelddatum: first_status_date}."])
    return "\n".join(lines) + "\n"
