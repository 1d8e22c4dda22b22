"""``swv night``: one whole night of a region, as the schedules and the export sensor run it.

    swv night [--region FILE] [--date YYYY-MM-DD] [--gemeente GMxxxx]...

Through ``pipelines.night.run_night``, the code ``make demo`` uses: every municipality's waitlist as
its own partition run, the ``nightly`` job, then one export run per municipality once the night
succeeded. The code location is loaded once for the whole night, every run is recorded in the
Dagster instance (``DAGSTER_HOME``; the UI shows them afterwards), and the exit code is 1 when any
run failed. A missing ``DAGSTER_HOME`` is created with the embedded default instance settings.
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
        prog="swv night", description="Run a whole night: every municipality's waitlist, the nightly job (ingest, "
        "validation, linkage, handovers, alerts), then every municipality's export. Runs are recorded in the "
        "Dagster instance at $DAGSTER_HOME (created when missing); exit code 1 when any run failed.")
    add_region_argument(parser)
    parser.add_argument("--date", type=_date, metavar="YYYY-MM-DD",
                        help="evaluation date, to replay a night (default: the region's reference_date, else today "
                             "in Europe/Amsterdam)")
    parser.add_argument("--gemeente", action="append", metavar="GMxxxx",
                        help="only this municipality's waitlist and export runs (repeatable); the nightly job always "
                             "covers the whole region")
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
    say(f"night of {evaluation} for {region.swv.code} ({region_path}): {len(gemeenten)} waitlist run(s), the nightly "
        f"job, then {len(gemeenten)} export run(s); instance {home}")
    defs = night_definitions(region_path)
    with dg.DagsterInstance.get() as instance:
        result = run_night(defs, instance, args.date, progress=say, gemeenten=args.gemeente)
    outcomes = night_outcomes(result)
    print(summary(outcomes, region.swv.code, evaluation))
    return 0 if all(ok for _, _, ok, _ in outcomes) else 1


def night_outcomes(result) -> list[tuple[str, str, bool, str]]:
    """(job, partition, succeeded, note) per run of a ``NightResult``, in the order they ran."""
    outcomes = [("waitlist_ingest", gemeente, ok, "" if ok else "last good snapshot kept")
                for gemeente, ok in result.waitlist_runs.items()]
    outcomes.append(("nightly", "", result.nightly.success, f"run {result.nightly.run_id}"))
    if result.nightly.success:
        outcomes += [("municipality_exports", gemeente, ok, "") for gemeente, ok in result.export_runs.items()]
    else:
        outcomes.append(("municipality_exports", "", False, "not run: the nightly job failed"))
    return outcomes


def summary(outcomes: list[tuple[str, str, bool, str]], swv: str, evaluation: dt.date) -> str:
    failed = sum(not ok for _, _, ok, _ in outcomes)
    var = var_layout()
    lines = [f"\nNight of {evaluation} for {swv}: {'succeeded' if not failed else f'{failed} run(s) FAILED'}."]
    lines += [f"  {job:<22} {partition:<8} {'ok' if ok else 'FAILED':<7} {note}".rstrip()
              for job, partition, ok, note in outcomes]
    lines += [
        f"Outputs: {var.outbox}; the deliveries' snapshots: {var.lake / 'raw'}.",
        "Runs, checks and quarantine counts: the Dagster UI on this instance "
        "(`dagster dev -w workspace.yaml`, or `make ui`), under Runs.",
    ]
    if failed:
        lines.append("A failed run: open it in the UI and read the red step; docs/runbook.md, 'A run failed'.")
    return "\n".join(lines)
