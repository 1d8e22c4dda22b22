"""``swv accept``: accept a delivery that was held back for its volume, when the drop is real.

    swv accept                                    list what is held back now
    swv accept SOURCE --reason TEXT [--delivery NAME] [--by NAME]

A delivery much smaller than the last good one (or empty) is held back and the night goes on with
the last good one (``assets.bronnen.ingest``). When the drop is real (a school closed, a waitlist was
cleared), the steward accepts it: the newest held-back delivery of SOURCE (of NAME, when given) is
marked accepted in the warehouse (``connectors.delivery_holds``), and the next run, or a re-run of
the night, takes exactly that delivery (the same content) as good. A delivery that changes again is
judged again. Who accepted it and why is kept with the hold (AVG accountability). docs/runbook.md,
"A delivery was held back", tells when to use it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys

from connectors.delivery_holds import DeliveryHolds, HoldNotFound
from connectors.warehouse import Warehouse
from settings.paths import var_layout


def _holds(warehouse: Warehouse) -> DeliveryHolds:
    return DeliveryHolds(warehouse.engine)


def list_holds(warehouse: Warehouse, out=None) -> int:
    """Print the deliveries held back and not accepted, newest first."""
    out = out or sys.stdout
    holds = _holds(warehouse).holds()
    if holds.empty:
        print("No delivery is held back.", file=out)
        return 0
    for hold in holds.itertuples():
        acceptable = "  (accept with: swv accept " + hold.source_id + \
            (f" --delivery '{hold.delivery}'" if hold.delivery != "*" else "") + " --reason '...')" \
            if hold.kind == "volume" else ""
        print(f"{hold.source_id}  {hold.delivery}  [{hold.kind}] last held {hold.last_held_at:%Y-%m-%d %H:%M} UTC",
              file=out)
        print(f"    {hold.reason}", file=out)
        print(f"    kept: {hold.kept}{acceptable}", file=out)
    return 0


def accept(warehouse: Warehouse, source_id: str, *, reason: str, delivery: str | None, by: str,
           out=None) -> int:
    """Accept the newest volume hold of ``source_id`` (of ``delivery``); 1 when there is none."""
    out = out or sys.stdout
    try:
        accepted = _holds(warehouse).accept(source_id, delivery=delivery, by=by, reason=reason,
                                            at=dt.datetime.now(dt.UTC))
    except HoldNotFound as error:
        print(f"Nothing accepted: {error}. `swv accept` lists what is held back.", file=out)
        return 1
    for hold in accepted.itertuples():
        print(f"Accepted {hold.source_id} {hold.delivery} ({hold.rows} rows where the last good delivery had "
              f"{hold.expected_rows}); the next run of the night uses it.", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swv accept", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", help="source id in the region file, e.g. vo_inschrijvingen")
    parser.add_argument("--delivery", help="the file name or URL, when the source has several deliveries")
    parser.add_argument("--reason", help="why the drop is real (kept with the acceptance), e.g. 'school gesloten'")
    parser.add_argument("--by", default=getpass.getuser(), help="who accepts it (default: the current user)")
    args = parser.parse_args(argv)
    warehouse = Warehouse.for_command(var_layout().warehouse_url)
    try:
        if args.source is None:
            return list_holds(warehouse)
        if not args.reason:
            parser.error("--reason is required to accept a delivery")
        return accept(warehouse, args.source, reason=args.reason, delivery=args.delivery, by=args.by)
    finally:
        warehouse.dispose()


if __name__ == "__main__":
    sys.exit(main())
