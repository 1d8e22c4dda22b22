"""Run one whole night in this process: what the two schedules do, in order, without the daemon.

Used by ``make demo``, the benchmark and the end-to-end tests; in production the schedules launch
the same jobs. Runs are recorded in the Dagster instance, so they show in the UI afterwards.

Each run goes through ``dagster.execute_job`` with the job rebuilt from the code (``night_job``),
as a run worker does, and not through ``JobDefinition.execute_in_process``: that one keeps every
step's output in memory until the run ends (for ``result.output_for_node``), which at national
scale held every dataset of the night at once (5.6 GiB instead of 2.9 GiB, ``bench/README.md``).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg


@dataclass(frozen=True)
class NightResult:
    evaluation_date: str | None
    waitlist_runs: dict[str, bool]  # gemeente -> success
    nightly: dg.ExecutionResult
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


def night_job(job_name: str, region_path: str) -> dg.JobDefinition:
    """A job of the night rebuilt from the code and this process's environment (``execute_job``'s
    reconstructor; a step in another process calls it there, with the environment it inherited)."""
    return _definitions(region_path, tuple(sorted(os.environ.items()))).resolve_job_def(job_name)


def night_definitions(region_path: str | os.PathLike[str]) -> dg.Definitions:
    """The definitions the night's runs rebuild (``night_job``): passed to ``run_night``, the code
    location is loaded once for the whole night (``swv night``)."""
    return _definitions(str(Path(region_path).resolve()), tuple(sorted(os.environ.items())))


@functools.lru_cache(maxsize=2)
def _definitions(region_path: str, environment: tuple[tuple[str, str], ...]) -> dg.Definitions:
    """Built once per region and environment: the eleven runs of a night share them."""
    from pipelines.definitions import build_definitions

    return build_definitions(Path(region_path))


def execute(job_name: str, region_path: str, instance: dg.DagsterInstance, *, run_config: dict,
            tags: dict[str, str], partition: str | None = None) -> dg.ExecutionResult:
    """Run one job of the night in this process and record it in ``instance``; failures are returned."""
    job = dg.build_reconstructable_job("pipelines.night", "night_job", reconstructable_args=(job_name, region_path))
    if partition is not None:
        tags = {**tags, "dagster/partition": partition}
    return dg.execute_job(job, instance, run_config=run_config, tags=tags, raise_on_error=False)


def run_night(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    evaluation_date: dt.date | None = None,
    *,
    progress=lambda message: None,
    gemeenten: Sequence[str] | None = None,
) -> NightResult:
    """Ingest every municipality's waitlist (one run each), run the nightly job, then export per municipality.

    ``gemeenten`` limits the per-municipality runs (waitlists and exports) to those partitions; the
    nightly job always covers the whole region.

    ``defs`` are the definitions of ``build_definitions(region_path)`` in this environment; the runs
    rebuild the same jobs from the code (see the module docstring). The partition runs go one after
    the other: side by side in forked workers they were no faster on two cores (13.4 s against 12.7 s
    for the five national-scale exports; the workers' copy-on-write of the parent's pages ate the gain).
    """
    region_path = str(Path(defs.resources["region_config"].path).resolve())
    run_config = night_run_config(evaluation_date, defs.resources["region_config"].path)
    tags = {"swv/night": evaluation_date.isoformat()} if evaluation_date else {}

    def per_municipality(job_name: str, failed: str) -> dict[str, bool]:
        outcomes = {}
        for gemeente in defs.resolve_job_def(job_name).partitions_def.get_partition_keys():
            if gemeenten is not None and gemeente not in gemeenten:
                continue
            result = execute(job_name, region_path, instance, run_config=run_config, tags=tags, partition=gemeente)
            outcomes[gemeente] = result.success
            progress(f"{job_name} {gemeente}: {'ok' if result.success else failed}")
        return outcomes

    waitlists = per_municipality("waitlist_ingest", "FAILED (last good snapshot kept)")
    nightly = execute("nightly", region_path, instance, run_config=run_config, tags=tags)
    progress(f"nightly job: {'ok' if nightly.success else 'FAILED'}")
    exports = per_municipality("municipality_exports", "FAILED") if nightly.success else {}
    return NightResult(evaluation_date.isoformat() if evaluation_date else None, waitlists, nightly, exports)
