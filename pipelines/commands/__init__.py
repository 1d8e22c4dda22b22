"""The commands of ``swv`` (``pipelines.cli``), one module each with ``main(argv) -> int``, and what they share."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from schemas.region_contract import load_checked_region
from settings.paths import region_file
from settings.region import Region, RegionConfigError


def say(message: str) -> None:
    """A progress line with the time, flushed at once (a night takes minutes)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def add_region_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", type=Path, metavar="FILE",
                        help="the region file (default: $SWV_REGION_FILE, else regions/vo2203.yaml, the demo region)")


def region_or_report(path: Path | None) -> tuple[Path, Region | None]:
    """The region file given (or the default) and its validated contents; None after printing why not."""
    path = Path(path or region_file())
    try:
        return path, load_checked_region(path)
    except RegionConfigError as error:
        print(f"The region file is not valid.\n{error}", file=sys.stderr)
        return path, None
