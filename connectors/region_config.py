"""The region YAML as a Dagster resource, with the evaluation date of the night.

The evaluation date is run configuration (``resources.region.config.evaluation_date``) so a night
can be replayed and a sequence of nights simulated; without it the region's ``reference_date``
applies, and without that, today in Europe/Amsterdam. The file's fit to the canonical datasets was
checked when the code location loaded it (``schemas.region_contract``, in ``pipelines.definitions``).
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property

import dagster as dg

from settings.paths import region_file
from settings.region import Region, load_region


class RegionConfig(dg.ConfigurableResource):
    path: str | None = None
    evaluation_date: str | None = None

    @cached_property
    def region(self) -> Region:
        return load_region(self.path or region_file())

    def evaluation(self) -> dt.date:
        if self.evaluation_date:
            return dt.date.fromisoformat(self.evaluation_date)
        return self.region.evaluation_date()
