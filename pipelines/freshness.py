"""The freshness checks' own job and schedule: 07:00, after the night, so a late partner shows as
stale even when the night failed. What the checks judge is in ``assets.bronnen.freshness``.
"""

import dagster as dg

from settings.constants import TIMEZONE

FRESHNESS_JOB = "source_freshness"
FRESHNESS_CRON = "0 7 * * *"  # after the night (02:00), before the stewards start their day


def build_freshness_job_and_schedule(checks: list[dg.AssetChecksDefinition]):
    """A checks-only job and its daily 07:00 (Europe/Amsterdam) schedule, running by default."""
    job = dg.define_asset_job(
        FRESHNESS_JOB,
        selection=dg.AssetSelection.checks(*checks),
        description="Evaluate the freshness checks: how old each partner's newest delivery is.",
        executor_def=dg.in_process_executor,
    )
    schedule = dg.ScheduleDefinition(
        name=f"{FRESHNESS_JOB}_schedule",
        job=job,
        cron_schedule=FRESHNESS_CRON,
        execution_timezone=TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="07:00 Europe/Amsterdam: mark sources and municipalities whose delivery is late as stale.",
    )
    return job, schedule
