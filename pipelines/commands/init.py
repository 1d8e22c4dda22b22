"""``swv init``: a starting region file for any SWV VO, from the public tables in ``reference/``.

    swv init --swv VO2501 [--output FILE] [--force]

Its municipalities from the regeling (merged ones mapped onto today's), its holiday region, its
schools from the national registry and one source block per expected delivery, so a new SWV starts
from a file that validates (``schemas.onboarding``). What it had to guess is marked CHECK.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from schemas.region_contract import load_checked_region
from settings.paths import PROJECT_ROOT
from settings.region import RegionConfigError


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swv init", description="Write a starting region file for an SWV VO from the public tables: its "
        "municipalities (from the regeling, merged municipalities mapped onto today's), its holiday region, its "
        "schools and one source block per expected delivery. Lines to review are marked CHECK.")
    parser.add_argument("--swv", required=True, metavar="VOxxxx", help="the SWV's code in the regeling, e.g. VO2501")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="where to write it (default: regions/<code>.yaml in the project)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    return parser


def main(argv: list[str]) -> int:
    from schemas.onboarding import UnknownSwvError, starter_region_yaml, swv_area

    args = parser().parse_args(argv)
    try:
        area = swv_area(args.swv)
    except UnknownSwvError as error:
        print(f"swv init: {error}", file=sys.stderr)
        return 2
    output = args.output or PROJECT_ROOT / "regions" / f"{area.code.lower()}.yaml"
    if output.exists() and not args.force:
        print(f"swv init: {output} exists; choose another --output, or --force to overwrite it", file=sys.stderr)
        return 2
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(starter_region_yaml(area), encoding="utf-8")
    try:
        region = load_checked_region(output)
    except RegionConfigError as error:  # the tables produced something the model refuses: a bug, say so plainly
        print(f"swv init: the written file does not validate (please report this):\n{error}", file=sys.stderr)
        return 1
    print(describe(area, output, len(region.sources)))
    return 0


def describe(area, output: Path, sources: int) -> str:
    """What was written and what the steward has to check, in the order of the file."""
    lines = [f"Wrote {output}: {area.code} with {len(area.municipalities)} municipalities and {sources} sources.",
             "",
             "Municipalities, from the regeling's postcode table (2015) mapped onto those of 1 January 2025:"]
    for m in area.municipalities:
        notes = []
        if m.merged_from:
            notes.append(f"formed from {', '.join(m.merged_from)} (merged since 2015; placed through the schools "
                         "in their postcode areas)")
        if m.partial:
            notes.append(f"only {m.areas} of {m.all_areas} postcode areas"
                         + (f", the rest in {', '.join(m.other_swvs)}" if m.other_swvs else ""))
        lines.append(f"  {m.code} {m.naam} ({m.provincie}){': ' + '; '.join(notes) if notes else ''}")
    vo = int((area.schools["sector"] == "VO").sum())
    lines += [
        f"Holiday region: {area.holiday_region}" + (f" (CHECK: {area.holiday_note})" if area.holiday_note else ""),
        f"Schools (national registry, November 2024): {vo} VO and {len(area.schools) - vo} other locations.",
        "",
        "Next: review the lines marked CHECK (the official name, the holidays, partial municipalities), adapt each",
        "source to what the partner delivers, put the deliveries under $SWV_VAR_DIR/sources, then run",
        f"  swv check --region {output}",
        "The steps: docs/onboarding.md.",
    ]
    return "\n".join(lines)
