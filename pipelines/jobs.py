"""Jobs, schedules and the sensor that chain the three stages of a night.

1. 01:30 Europe/Amsterdam: every municipality's youth-care waitlist is ingested as its own
   partition run, so a partner that is down fails only its own run (and is retried) while the
   others land.
2. 02:00: the ``nightly`` job runs everything that is not per municipality in one in-process run:
   the other sources, validation, linkage, handovers and alerts, with each municipality's last good
   waitlist snapshot.
3. When ``nightly`` succeeds, a sensor launches the per-municipality exports, one partition run per
   gemeente (each municipality's delivery succeeds or fails on its own).
"""

from __future__ import annotations

import dagster as dg

NIGHTLY_CRON = "0 2 * * *"
WAITLIST_CRON = "30 1 * * *"  # half an hour before the night, so partner APIs have time to answer and retry
TIMEZONE = "Europe/Amsterdam"

WAITLIST_ASSET = dg.AssetKey("youth_care_waitlist_raw")
EXPORT_ASSET = dg.AssetKey("municipal_exports")
PER_MUNICIPALITY = dg.AssetSelection.assets(WAITLIST_ASSET, EXPORT_ASSET)
MONITOR_GROUP = "monitor"


def build_jobs_and_schedules(gemeenten: dg.StaticPartitionsDefinition, nightly_executor: dg.ExecutorDefinition,
                             freshness_checks=()):
    # Freshness is judged by its own morning job; a municipality's run does not re-judge all the others.
    waitlist_ingest = dg.define_asset_job(
        "waitlist_ingest",
        selection=dg.AssetSelection.assets(WAITLIST_ASSET) - dg.AssetSelection.checks(*freshness_checks),
        description="Ingest one municipality's youth-care waitlist (one run per gemeente partition).",
        executor_def=dg.in_process_executor,
    )
    nightly = dg.define_asset_job(
        "nightly",
        # The monitor's group named on its own: whatever else the night selects, the monitor follows it.
        selection=(dg.AssetSelection.all() - PER_MUNICIPALITY) | dg.AssetSelection.groups(MONITOR_GROUP),
        description="The night: ingest, validate, link, handovers and alerts (exports follow per municipality).",
        executor_def=nightly_executor,
    )
    exports = dg.define_asset_job(
        "municipality_exports",
        selection=dg.AssetSelection.assets(EXPORT_ASSET),
        description="Write and deliver one municipality's export (one run per gemeente partition).",
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

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[nightly],
        request_job=exports,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After a successful night: one export run per municipality.",
    )
    def exports_after_night(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        for gemeente in gemeenten.get_partition_keys():
            yield dg.RunRequest(run_key=f"{run.run_id}-{gemeente}", partition_key=gemeente,
                                run_config=run.run_config, tags={"swv/nightly_run": run.run_id})

    return [waitlist_ingest, nightly, exports], [waitlist_schedule, nightly_schedule], [exports_after_night]
