"""A whole night in a process of its own, for the tests that kill it or run two at once (test_night_runner.py).

    python -m tests.night_process [--kill-at POINT] [--pause-at POINT --gate FOLDER] [--wait-s SECONDS]

The environment says where the night runs (``SWV_VAR_DIR``, ``DAGSTER_HOME``, ``SWV_DEMO_API``, ...).
``--kill-at``: the process sends itself SIGKILL when the night reaches POINT, the way ``kill -9`` or a
lost machine ends it, with whatever it was writing half done. ``--pause-at``: it writes
``FOLDER/paused`` there and waits until ``FOLDER/go`` exists. The points are reached by wrapping
functions of the pipeline in this process only; the pipeline's code has no hooks for tests.

Exit code 0 when the night succeeded, 1 when it failed, 3 when another night held the instance
(the message on stderr).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

# Where a write is about to become visible (connectors.atomic renames the temporary file over it):
# the point, and which of its writes (1 = the first).
RENAMES = {
    "ingest": ("/lake/raw/", 2),  # a raw snapshot of a delivery
    "handovers": ("/outbox/overdracht/", 3),  # a school's handover file, some written before
    "signal-lists": ("/outbox/signalen/", 2),
    "exports": ("/outbox/gemeenten/", 4),  # a municipality's export, some files written
}
# Inside a warehouse transaction, after its rows were sent and before the commit.
TRANSACTIONS = {
    "validation": "connectors.warehouse",  # the quarantine entries of the first validated dataset
    "warehouse-commit": "connectors.pupil_store",  # the pupil history
}


def _stop(point: str, pause: str | None, gate: Path | None) -> None:
    if point == pause:
        (gate / "paused").write_text(str(os.getpid()))
        while not (gate / "go").exists():
            time.sleep(0.1)
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, pause: str | None = None, gate: Path | None = None) -> None:
    """Make the night stop at ``point``: killed, or paused when ``pause`` names it."""
    if point in RENAMES:
        import connectors.atomic as atomic

        fragment, nth = RENAMES[point]
        replace, seen = atomic.os.replace, []

        def replace_then_stop(source, target, *args, **kwargs):
            if fragment in str(target):
                seen.append(target)
                if len(seen) == nth:
                    _stop(point, pause, gate)
            return replace(source, target, *args, **kwargs)

        atomic.os.replace = replace_then_stop
    elif point in TRANSACTIONS:
        import importlib

        module = importlib.import_module(TRANSACTIONS[point])
        insert = module.bulk_insert

        def insert_then_stop(connection, table, frame):
            rows = insert(connection, table, frame)
            _stop(point, pause, gate)
            return rows

        module.bulk_insert = insert_then_stop
    else:
        raise SystemExit(f"unknown point {point!r}; one of {sorted({**RENAMES, **TRANSACTIONS})}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at")
    parser.add_argument("--pause-at")
    parser.add_argument("--gate", type=Path)
    parser.add_argument("--wait-s", type=float, default=0)
    args = parser.parse_args(argv)
    if args.kill_at:
        install(args.kill_at)
    if args.pause_at:
        install(args.pause_at, pause=args.pause_at, gate=args.gate)

    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.night import NightAlreadyRunning, run_night

    defs = build_definitions()
    with dg.DagsterInstance.get() as instance:
        try:
            result = run_night(defs, instance, wait_s=args.wait_s)
        except NightAlreadyRunning as error:
            print(error, file=sys.stderr)
            return 3
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
