"""``swv night``: one whole night of a region, as the 02:00 schedule runs it.

    swv night [--region FILE] [--date YYYY-MM-DD] [--gemeente GMxxxx]...

Through ``pipelines.night.run_night``, the code ``make demo`` uses: one ``nightly`` run with every
source (each municipality's waitlist included) and every municipality's export, each with its own
check. The code location is loaded once for the whole night, the run is recorded in the Dagster
instance (``DAGSTER_HOME``; the UI shows it afterwards), and the exit code is 1 when the run or a
municipality's export failed. A missing ``DAGSTER_HOME`` is created with the embedded default
instance settings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

from pipelines.commands import add_region_argument, region_or_report, say
from settings.paths import PROJECT_ROOT, var_layout

LOCAL_INSTANCE = PROJECT_ROOT / "deploy" / "dagster.local.yaml"  # SQLite under DAGSTER_HOME (docs/deploy.md)


def ensure_dagster_home(progress=say) -> Path:
    """``DAGSTER_HOME`` (default ``var/dagster`` under ``SWV_VAR_DIR``), set in this process's environment and
    given ``deploy/dagster.local.yaml`` as its ``dagster.yaml`` when it has none; an existing one is kept."""
    home = Path(os.environ.get("DAGSTER_HOME") or var_layout().dagster_home).resolve()
    os.environ["DAGSTER_HOME"] = str(home)  # Dagster refuses a relative DAGSTER_HOME
    settings = home / "dagster.yaml"
    if not settings.exists():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(LOCAL_INSTANCE, settings)
        progress(f"created the Dagster instance {home} (dagster.yaml from deploy/dagster.local.yaml: run history "
                 "in SQLite there)")
    return home


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swv night", description="Run a whole night: one nightly run with every source (each municipality's "
        "waitlist included), validation, linkage, handovers, alerts and every municipality's export. The run is "
        "recorded in the Dagster instance at $DAGSTER_HOME (created when missing); exit code 1 when the run or a "
        "municipality's export failed.")
    add_region_argument(parser)
    parser.add_argument("--date", type=_date, metavar="YYYY-MM-DD",
                        help="evaluation date, to replay a night (default: the region's reference_date, else today "
                             "in Europe/Amsterdam)")
    parser.add_argument("--gemeente", action="append", metavar="GMxxxx",
                        help="export only this municipality (repeatable); the other exports are left as they are, "
                             "everything else covers the whole region")
    return parser


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    region_path, region = region_or_report(args.region)
    if region is None:
        return 2
    unknown = sorted(set(args.gemeente or []) - set(region.gemeente_codes))
    if unknown:
        print(f"swv night: {', '.join(unknown)} not among the municipalities of {region_path} "
              f"({', '.join(region.gemeente_codes)})", file=sys.stderr)
        return 2
    home = ensure_dagster_home()

    import dagster as dg

    from pipelines.night import night_definitions, run_night

    gemeenten = args.gemeente or region.gemeente_codes
    evaluation = args.date or region.evaluation_date()
    say(f"night of {evaluation} for {region.swv.code} ({region_path}): one nightly run, {len(region.gemeente_codes)} "
        f"municipalities, {len(gemeenten)} export(s); instance {home}")
    defs = night_definitions(region_path)
    with dg.DagsterInstance.get() as instance:
        result = run_night(defs, instance, args.date, progress=say, gemeenten=args.gemeente)
    outcomes = night_outcomes(result)
    names = {g.code: g.naam for g in region.gemeenten}
    print(summary(outcomes, region.swv.code, evaluation, names))
    return 0 if all(ok for _, _, ok, _, counts in outcomes if counts) else 1


def night_outcomes(result) -> list[tuple[str, str, bool, str, bool]]:
    """(what, municipality, succeeded, note, counts) for the run and each municipality of a ``NightResult``.

    ``counts``: whether a failure makes the night fail (a rejected waitlist delivery does not: its last
    good snapshot was used, and its check and the notification say so).
    """
    outcomes = [("nightly", "", result.nightly.success, f"run {result.nightly.run_id}", True)]
    outcomes += [("waitlist", gemeente, ok, "" if ok else "delivery rejected: last good snapshot used", False)
                 for gemeente, ok in result.waitlists.items()]
    if result.nightly.success:
        outcomes += [("export", gemeente, ok, "" if ok else "see its export check in the UI", True)
                     for gemeente, ok in result.exports.items()]
    return outcomes


def summary(outcomes: list[tuple[str, str, bool, str, bool]], swv: str, evaluation: dt.date,
            names: dict[str, str] | None = None) -> str:
    """The night in a few lines for the operator, municipality names beside their codes."""
    names = names or {}
    failed = sum(not ok and counts for _, _, ok, _, counts in outcomes)
    attention = sum(not ok and not counts for _, _, ok, _, counts in outcomes)
    verdict = f"{failed} FAILED" if failed else "succeeded"
    if attention:
        verdict += f", {attention} delivery(ies) rejected"
    var = var_layout()
    lines = [f"\nNight of {evaluation} for {swv}: {verdict}."]
    width = max((len(_named(g, names)) for _, g, *_ in outcomes), default=0)
    lines += [f"  {what:<9} {_named(gemeente, names):<{width}} {'ok' if ok else ('FAILED' if counts else 'REJECTED'):<9} "
              f"{note}".rstrip() for what, gemeente, ok, note, counts in outcomes]
    lines += [
        f"Outputs: {var.outbox}; the deliveries' snapshots: {var.lake / 'raw'}.",
        "Runs, checks and quarantine counts: the Dagster UI on this instance "
        "(`dagster dev -w workspace.yaml`, or `make ui`), under Runs.",
    ]
    if failed:
        lines.append("A failure: open the run in the UI and read the red step or check; docs/runbook.md, 'A run failed'.")
    return "\n".join(lines)


def _named(gemeente: str, names: dict[str, str]) -> str:
    return f"{names[gemeente]} ({gemeente})" if gemeente in names else gemeente
