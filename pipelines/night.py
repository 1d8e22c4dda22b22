"""Run one whole night in this process: what the two schedules do, in order, without the daemon.

Used by ``make demo``, the benchmark and the end-to-end tests; in production the schedules launch
the same jobs. Runs are recorded in the Dagster instance, so they show in the UI afterwards.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class NightResult:
    evaluation_date: str | None
    waitlist_runs: dict[str, bool]  # gemeente -> success
    nightly: dg.ExecuteInProcessResult
    export_runs: dict[str, bool]  # gemeente -> success

    @property
    def success(self) -> bool:
        return self.nightly.success and all(self.export_runs.values())


def night_run_config(evaluation_date: dt.date | None, region_path: str | None = None,
                     console_level: str = "WARNING") -> dict:
    """Run config: the evaluation date (time travel for replays and tests) and the console log level.

    Every event still goes to the instance's event log (the UI); only the terminal is kept quiet.
    """
    config: dict = {"loggers": {"console": {"config": {"log_level": console_level}}}}
    if evaluation_date is not None:
        config["resources"] = {"region_config": {"config": {"path": region_path,
                                                            "evaluation_date": evaluation_date.isoformat()}}}
    return config


def run_night(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    evaluation_date: dt.date | None = None,
    *,
    progress=lambda message: None,
) -> NightResult:
    """Ingest every municipality's waitlist (one run each), run the nightly job, then export per municipality."""
    run_config = night_run_config(evaluation_date, defs.resources["region_config"].path)
    tags = {"swv/night": evaluation_date.isoformat()} if evaluation_date else {}

    def per_municipality(job_name: str, failed: str) -> dict[str, bool]:
        job = defs.resolve_job_def(job_name)
        outcomes = {}
        for gemeente in job.partitions_def.get_partition_keys():
            result = job.execute_in_process(
                instance=instance, partition_key=gemeente, run_config=run_config, tags=tags, raise_on_error=False
            )
            outcomes[gemeente] = result.success
            progress(f"{job_name} {gemeente}: {'ok' if result.success else failed}")
        return outcomes

    waitlists = per_municipality("waitlist_ingest", "FAILED (last good snapshot kept)")
    nightly = defs.resolve_job_def("nightly").execute_in_process(
        instance=instance, run_config=run_config, tags=tags, raise_on_error=False
    )
    progress(f"nightly job: {'ok' if nightly.success else 'FAILED'}")
    exports = per_municipality("municipality_exports", "FAILED") if nightly.success else {}
    return NightResult(evaluation_date.isoformat() if evaluation_date else None, waitlists, nightly, exports)
