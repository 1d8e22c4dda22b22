"""Constants every layer shares, named once: the region's time zone and who owns the assets.

Imports nothing of the project, so every layer may read it (tests/test_architecture.py).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

# The SWV's clock: schedules, evaluation dates and school weeks are Dutch local time, so summer
# time moves none of them (docs/domain.md §4.3).
TIMEZONE = "Europe/Amsterdam"
AMSTERDAM = ZoneInfo(TIMEZONE)

# Dagster asset owners, shown in the UI beside every asset.
DATA_STEWARDS = ["team:datastewards"]
THUISZITTER_COORDINATOR = ["team:thuiszittercoordinator"]
