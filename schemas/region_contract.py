"""Does a region file fit the canonical datasets? Its mappings checked against the contract.

``settings.region`` reads the file on its own terms (keys, types, municipalities); what a source may
map onto (canonical fields, their code lists, derivations) and which schools exist is known here,
in ``schemas``, so the settings never import the schemas (tests/test_architecture.py). The code
location and the ``swv`` commands load a region with ``load_checked_region``: both checks, one error
naming the file and every problem (docs/configuration.md).
"""

from __future__ import annotations

import os

from schemas.codelists import (BOOLEAN_CODELIST, BOOLEAN_CODES, CODELIST_OF_FIELD, SchoolRegistryError,
                               canonical_codes, known_schools)
from schemas.datasets import boolean_fields, canonical_fields
from schemas.parse import DERIVATIONS
from settings.region import Region, RegionConfigError, Source, load_region


def load_checked_region(path: str | os.PathLike[str]) -> Region:
    """The region file, valid on its own and against the contract; RegionConfigError naming every problem."""
    region = load_region(path)
    problems = contract_problems(region)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise RegionConfigError(f"{path}: invalid region configuration:\n{listed}")
    return region


def contract_problems(region: Region) -> list[str]:
    """Every way the region's sources, code lists and school files do not fit the canonical datasets."""
    problems = []
    for name, source in region.sources.items():
        for check in (_check_columns, _check_source_codes, _check_derivations):
            try:
                check(name, source)
            except ValueError as problem:
                problems.append(str(problem))
    try:
        _check_codelists(region.codelists)
    except ValueError as problem:
        problems.append(str(problem))
    if region.school_registry:
        try:
            known_schools(region.school_registry)
        except SchoolRegistryError as problem:
            problems.append(f"school_registry: {problem}")
    return problems


def _check_source_codes(name: str, source: Source) -> None:
    _check_codes(f"sources.{name}.codes", source.dataset, source.codes)


def _check_columns(name: str, source: Source) -> None:
    """Mapped targets must be canonical fields; required canonical fields must be delivered."""
    fields = canonical_fields(source.dataset)
    for column, target in source.columns.items():
        if target not in fields:
            raise ValueError(
                f"sources.{name}.columns.{column}: {target!r} is not a field of {source.dataset} "
                f"(one of: {', '.join(fields)}; see docs/sources.md)"
            )
    missing = [f for f, col in fields.items() if not col.nullable and f not in source.columns.values()]
    if missing:
        raise ValueError(f"sources.{name}.columns: required field(s) {missing} of {source.dataset} are not mapped")


def _check_codes(key: str, dataset: str, codes: dict[str, dict[str, str]]) -> None:
    """A source's own labels: each on a code or yes/no field of its dataset, onto a canonical value."""
    fields = canonical_fields(dataset)
    for field, labels in codes.items():
        if field in CODELIST_OF_FIELD and field in fields:
            allowed = canonical_codes(CODELIST_OF_FIELD[field])
        elif field in boolean_fields(dataset):
            allowed = frozenset(BOOLEAN_CODES)
        else:
            raise ValueError(f"{key}.{field}: not a code or yes/no field of {dataset} (docs/configuration.md)")
        _check_targets(f"{key}.{field}", labels, allowed)


def _check_codelists(codelists: dict[str, dict[str, str]]) -> None:
    """The region's code lists: known list names, labels onto canonical codes (``ja_nee``: ja or nee)."""
    known = sorted({*CODELIST_OF_FIELD.values(), BOOLEAN_CODELIST})
    for name, labels in codelists.items():
        if name not in known:
            raise ValueError(f"codelists.{name}: not a code list (one of: {', '.join(known)})")
        allowed = frozenset(BOOLEAN_CODES) if name == BOOLEAN_CODELIST else canonical_codes(name)
        _check_targets(f"codelists.{name}", labels, allowed)


def _check_targets(key: str, labels: dict[str, str], allowed: frozenset[str]) -> None:
    wrong = sorted({code for code in labels.values() if code not in allowed})
    if wrong:
        raise ValueError(f"{key}: {wrong} not among the canonical values ({', '.join(sorted(allowed))})")


def _check_derivations(name: str, source: Source) -> None:
    """Each derivation is one the dataset knows, and the fields it derives from are mapped."""
    mapped = set(source.columns.values())
    for field, how in source.derive.items():
        known = DERIVATIONS.get(source.dataset, {}).get(field, {})
        if how not in known:
            offered = [f"{f}: {h}" for f, ways in DERIVATIONS.get(source.dataset, {}).items() for h in ways]
            raise ValueError(f"sources.{name}.derive.{field}: {how!r} is not a derivation of {source.dataset} "
                             f"(known: {', '.join(offered) or 'none'})")
        missing = [needed for needed in known[how] if needed not in mapped]
        if missing:
            raise ValueError(f"sources.{name}.derive.{field}: {how} needs the field(s) {missing} mapped in columns")
