"""Jobs and schedules of a night.

A night has two stages. First every municipality's youth-care waitlist is ingested as its own
partition run, so a partner that is down fails only its own run (and is retried) while the others
land. Then the ``nightly`` job runs everything else in one in-process run: the other sources,
validation, linkage and all outputs, with each municipality's last good waitlist snapshot.
"""

from __future__ import annotations

import dagster as dg

NIGHTLY_CRON = "0 2 * * *"
WAITLIST_CRON = "30 1 * * *"  # half an hour before the night, so partner APIs have time to answer and retry
TIMEZONE = "Europe/Amsterdam"

WAITLIST_ASSET = dg.AssetKey("youth_care_waitlist_raw")


def build_jobs_and_schedules(gemeenten: dg.StaticPartitionsDefinition):
    waitlist_ingest = dg.define_asset_job(
        "waitlist_ingest",
        selection=dg.AssetSelection.assets(WAITLIST_ASSET),
        description="Ingest one municipality's youth-care waitlist (one run per gemeente partition).",
        executor_def=dg.in_process_executor,
    )
    nightly = dg.define_asset_job(
        "nightly",
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets(WAITLIST_ASSET),
        description="The night: ingest, validate, link, and write handovers, alerts and municipal exports.",
        executor_def=dg.in_process_executor,
    )

    @dg.schedule(
        job=waitlist_ingest,
        cron_schedule=WAITLIST_CRON,
        execution_timezone=TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="01:30 Europe/Amsterdam: one waitlist run per municipality.",
    )
    def waitlist_schedule(context: dg.ScheduleEvaluationContext):
        night = context.scheduled_execution_time.date().isoformat()
        for gemeente in gemeenten.get_partition_keys():
            yield dg.RunRequest(run_key=f"{night}-{gemeente}", partition_key=gemeente, tags={"swv/night": night})

    nightly_schedule = dg.ScheduleDefinition(
        name="nightly_schedule",
        job=nightly,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone=TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="02:00 Europe/Amsterdam: the nightly job.",
    )
    return [waitlist_ingest, nightly], [waitlist_schedule, nightly_schedule]
