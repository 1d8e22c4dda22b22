"""``swv monitor backfill``: recompute the support-plan monitor for past nights.

    swv monitor backfill [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--every night|week]
                                         [--missing-only] [--no-report] [--region FILE]

Recomputes the indicators of every night from ``--from`` to ``--to`` (both included; ``--every week``:
the Mondays in between and ``--to``) into the warehouse's ``monitor_indicators``, from the pupil and
alert history where the pipeline ran and from the latest validated deliveries in the lake as they
were known on each night otherwise (``assets.monitor.history``), then renders the report of the
latest night in the history again, so its charts show the recomputed trend. Defaults: ``--to`` the
last night the pipeline ran, ``--from`` the first day of that night's school year. Safe to repeat:
a night whose figures do not change is left as it is. Settings as for the pipeline (``SWV_VAR_DIR``,
``SWV_REGION_FILE``, ``SWV_WAREHOUSE_URL``, ``SWV_LAKE_URL``); see docs/monitor.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from assets.monitor.history import DATASETS, FIELDS, SmallCountsVisible, backfill, write_report
from assets.monitor.indicators import school_year_start
from connectors.alert_store import AlertStore
from connectors.lake import read_asset
from connectors.monitor_store import MonitorStore
from connectors.outbox import Outbox
from connectors.warehouse import WAREHOUSE_URL_ENV, create_engine
from schemas.region_contract import load_checked_region
from settings.paths import region_file, var_layout
from settings.region import RegionConfigError


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def nights_between(first: dt.date, last: dt.date, every: str) -> list[dt.date]:
    """Every night from ``first`` to ``last``; with ``every="week"`` the Mondays in between and ``last``."""
    nights = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    if every == "week":
        nights = [night for night in nights if night.weekday() == 0 or night == last]
    return nights


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-10-05") from None


def _last_night(engine: sa.Engine) -> dt.date | None:
    """The last night the pipeline recorded (its alerts), else the monitor history's last night."""
    inspector = sa.inspect(engine)
    if inspector.has_table("alert_nights"):
        last = AlertStore(engine).last_night()
        if last is not None:
            return last
    if inspector.has_table("monitor_indicators"):
        nights = MonitorStore(engine).nights()
        return nights[-1] if nights else None
    return None


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(prog="swv monitor backfill", description=__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--from", dest="first", type=_date, help="first night (default: start of the school year)")
    command.add_argument("--to", dest="last", type=_date, help="last night (default: the last night that ran)")
    command.add_argument("--every", choices=("night", "week"), default="night",
                         help="every night (default), or the Mondays and the last night")
    command.add_argument("--missing-only", action="store_true", help="skip nights already in the history")
    command.add_argument("--no-report", action="store_true", help="do not render the latest report again")
    command.add_argument("--region", type=Path, help="region file (default: SWV_REGION_FILE or the demo region)")
    return command


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        region = load_checked_region(args.region or region_file())
    except RegionConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    var = var_layout()
    engine = create_engine(os.environ.get(WAREHOUSE_URL_ENV) or var.warehouse_url)
    try:
        last = args.last or _last_night(engine)
        if last is None:
            print("error: no night has run yet in this warehouse; run a night first or give --to", file=sys.stderr)
            return 1
        first = args.first or school_year_start(last, region.calendar)
        if first > last:
            print(f"error: --from {first} is after --to {last}", file=sys.stderr)
            return 1
        lake = os.environ.get("SWV_LAKE_URL") or str(var.lake)
        try:
            datasets = {name: read_asset(lake, name, FIELDS[name]) for name in DATASETS}
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        nights = nights_between(first, last, args.every)
        _say(f"monitor backfill of {region.swv.code}: {len(nights)} night(s) from {first} to {last}")
        done = backfill(nights, datasets=datasets, region=region, engine=engine, missing_only=args.missing_only,
                        progress=_say)
        _say(f"{sum(n.changed for n in done)} of {len(done)} night(s) recomputed with other figures; "
             f"{sum(n.from_history for n in done)} from the pupil and alert history")
        if not args.no_report:
            latest = MonitorStore(engine).nights()[-1]
            try:
                written = write_report(MonitorStore(engine), Outbox(root=str(var.outbox)), latest, region)
            except SmallCountsVisible as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            _say(f"report of {latest}: {written.folder / 'monitor.html'} "
                 f"({'written' if written.changed else 'unchanged'})")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
