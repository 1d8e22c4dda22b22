"""Jobs and the schedule of a night.

A night is one run of ``nightly`` at 02:00 Europe/Amsterdam: every source (each municipality's
youth-care waitlist included), validation, linkage, handovers, alerts and every municipality's
export. What used to need a run per municipality is a check per municipality inside it: a partner
that is down turns only its own ``delivery_<source id>`` check red and its last good snapshot is
used; a municipality whose export fails turns only its own ``export_<GMcode>`` check red while the
others are delivered. One run costs a fixed start-up once, however many municipalities the SWV has
(docs/deploy.md, "One run per night").

Two smaller jobs re-run a part by hand or from the delivery sensor: ``waitlist_ingest`` (every
municipality's waitlist) and ``municipality_exports`` (the exports; run configuration
``gemeenten: [GM0118]`` re-runs one municipality's export alone).
"""

from __future__ import annotations

import dagster as dg

from settings.constants import TIMEZONE
from settings.datasets import raw_asset_name

NIGHTLY_CRON = "0 2 * * *"

WAITLIST_ASSET = dg.AssetKey(raw_asset_name("youth_care_waitlist"))
EXPORT_ASSET = dg.AssetKey("municipal_exports")
# The run queue starts one run with this tag at a time (deploy/dagster.*.yaml): never two nights at once.
EXCLUSIVE = {"swv/exclusive": "night"}
MONITOR_GROUP = "monitor"


def build_jobs_and_schedules(nightly_executor: dg.ExecutorDefinition):
    nightly = dg.define_asset_job(
        "nightly",
        # The monitor's group named on its own: whatever else the night selects, the monitor follows it.
        selection=dg.AssetSelection.all() | dg.AssetSelection.groups(MONITOR_GROUP),
        description="The night: ingest, validate, link, handovers, alerts, every municipality's export and the monitor.",
        executor_def=nightly_executor,
        tags=EXCLUSIVE,
    )
    # Its checks (the waitlist sources' delivery and freshness) are judged again with every re-pull.
    waitlist_ingest = dg.define_asset_job(
        "waitlist_ingest",
        selection=dg.AssetSelection.assets(WAITLIST_ASSET),
        description="Ingest every municipality's youth-care waitlist again (e.g. after a late delivery).",
        executor_def=dg.in_process_executor,
    )
    exports = dg.define_asset_job(
        "municipality_exports",
        selection=dg.AssetSelection.assets(EXPORT_ASSET),
        description=("Write and deliver the municipal exports again; run configuration "
                     "ops.municipal_exports.config.gemeenten = [GMcode] limits it to those municipalities."),
        executor_def=dg.in_process_executor,
    )
    nightly_schedule = dg.ScheduleDefinition(
        name="nightly_schedule",
        job=nightly,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone=TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="02:00 Europe/Amsterdam: the night, in one run.",
    )
    return [nightly, waitlist_ingest, exports], [nightly_schedule]
