"""Regions of any number of municipalities with the same pupils: the benchmark's municipality dimension.

Issue 23 asks whether the night's fixed cost grows with the municipalities of an SWV. No real SWV VO
has more than thirteen (``schemas.onboarding.swv_area`` over the regeling's postcode table), so the
regions are built from the demo region (VO2203, five municipalities, itself real): its municipalities
first, then real neighbours from ``reference/`` (municipalities of 1 January 2025 in the same
holiday region, nearest by postcode), each with its own waitlist partner in one of the demo's five
delivery styles, taken in turn. Everything else (the school partners, the VVA feed, the calendar)
is the demo region's, and the generator is asked for the demo region's schools
(``school_gemeenten``), so only the municipal partners and exports change with the count, not the
number of schools, their files or their handovers.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pandas as pd
import yaml

from settings.paths import DEFAULT_REGION_FILE

WAITLIST = "youth_care_waitlist"


def _slug(name: str) -> str:
    """'Súdwest-Fryslân' -> 'sudwest_fryslan': for source ids, folders and URL paths."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", ascii_name).strip("_")


def neighbours(codes: list[str], holiday_region: str) -> list[tuple[str, str]]:
    """(code, name) of the municipalities outside ``codes`` in the same holiday region, nearest first.

    Near = the median of a municipality's postcode areas closest to that of ``codes`` (Dutch postcodes
    run by area); ties by code, so the order is fixed.
    """
    from schemas.onboarding import HOLIDAY_REGION_EXCEPTIONS, MUNICIPALITIES_2025, PROVINCE_HOLIDAY_REGION, \
        pc4_municipalities

    areas = pc4_municipalities()
    median = areas.assign(pc4=areas.pc4.astype(int)).groupby("gemeentecode").pc4.median()
    municipalities = pd.read_csv(MUNICIPALITIES_2025, dtype=str, keep_default_na=False).set_index("gemeentecode")
    centre = median.reindex(codes).median()
    found = []
    for code, pc4 in median.items():
        if code in codes or code not in municipalities.index:
            continue
        region = HOLIDAY_REGION_EXCEPTIONS.get(code, PROVINCE_HOLIDAY_REGION[municipalities.at[code, "provincienaam"]])
        if region == holiday_region:
            found.append((abs(pc4 - centre), code, municipalities.at[code, "gemeentenaam"]))
    return [(code, name) for _, code, name in sorted(found)]


def _waitlist_for(template: dict, code: str, name: str) -> dict:
    """A template waitlist source delivered by another municipality: its own folder, URL path and token."""
    source = yaml.safe_load(yaml.safe_dump(template))  # a deep copy
    slug = _slug(name)
    source.update(gemeente=code, partner=f"Gemeente {name}")
    location = source["location"]
    if location["kind"] == "file":
        folder, pattern = location["path"].rsplit("/", 1)
        location["path"] = f"{folder.rsplit('/', 1)[0]}/{slug}/{pattern}"
    else:
        base, path = location["url"].split("}", 1)  # ${SWV_DEMO_API:-...}/<municipality>/...
        location["url"] = f"{base}}}/{slug.replace('_', '')}/{path.lstrip('/').split('/', 1)[1]}"
        location["auth"]["token_env"] = f"SWV_TOKEN_{slug.upper()}"
    return source


def region_yaml(municipalities: int, template: Path = DEFAULT_REGION_FILE) -> str:
    """The template region with ``municipalities`` municipalities (fewer: its first ones; more: neighbours)."""
    raw = yaml.safe_load(Path(template).read_text(encoding="utf-8"))
    own = [(g["code"], g["naam"]) for g in raw["gemeenten"]]
    waitlists = {sid: s for sid, s in raw["sources"].items() if s["dataset"] == WAITLIST}
    styles = list(waitlists.values())
    chosen = own[:municipalities]
    chosen += neighbours([code for code, _ in own], raw["calendar"]["holiday_region"])[:municipalities - len(chosen)]
    if len(chosen) < municipalities:
        raise ValueError(f"only {len(chosen)} municipalities in the holiday region of {template}")
    kept = {code for code, _ in chosen}
    sources = {sid: s for sid, s in raw["sources"].items() if s["dataset"] != WAITLIST or s.get("gemeente") in kept}
    for i, (code, name) in enumerate(chosen[len(own):]):
        sources[f"wachtlijst_{_slug(name)}"] = _waitlist_for(styles[i % len(styles)], code, name)
    raw["gemeenten"] = [{"code": code, "naam": name} for code, name in chosen]
    raw["sources"] = sources
    raw["swv"]["naam"] = f"{raw['swv']['naam']} (benchmark: {municipalities} municipalities)"
    header = (f"# Benchmark region: {template.name} with {municipalities} municipalities (bench/regions.py).\n"
              "# Written by the benchmark; not a real SWV.\n")
    return header + yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)


def write_region(municipalities: int, folder: Path, template: Path = DEFAULT_REGION_FILE) -> Path:
    """Write ``region-<N>.yaml`` into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"region-{municipalities}.yaml"
    path.write_text(region_yaml(municipalities, template), encoding="utf-8")
    return path


def template_gemeenten(template: Path = DEFAULT_REGION_FILE) -> list[str]:
    """The template's own municipalities: the schools of every benchmark region are theirs."""
    raw = yaml.safe_load(Path(template).read_text(encoding="utf-8"))
    return [g["code"] for g in raw["gemeenten"]]
