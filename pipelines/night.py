"""Run one whole night in this process: what the two schedules do, in order, without the daemon.

Used by ``make demo``, the benchmark and the end-to-end tests; in production the schedules launch
the same jobs. Runs are recorded in the Dagster instance, so they show in the UI afterwards.

One night at a time per instance: ``run_night`` holds an exclusive lock on
``$DAGSTER_HOME/night.lock`` (``fcntl.flock``: the kernel releases it when the process ends, also
when it is killed). A second night refuses with ``NightAlreadyRunning`` or, with ``wait_s``, waits
for the first. Holding the lock, it first marks the runs of an earlier night runner of this host
that are still STARTING or STARTED as failed (that process is gone: it held the lock), and tightens
the runtime folder to its private modes (``connectors.private``).

Each run goes through ``dagster.execute_job`` with the job rebuilt from the code (``night_job``),
as a run worker does, and not through ``JobDefinition.execute_in_process``: that one keeps every
step's output in memory until the run ends (for ``result.output_for_node``), which at national
scale held every dataset of the night at once (5.6 GiB instead of 2.9 GiB, ``bench/README.md``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from connectors import private
from settings.paths import var_layout

RUNNER_TAG = "swv/runner"  # "night": launched by run_night
HOST_TAG = "swv/runner_host"
PID_TAG = "swv/runner_pid"
LOCK_FILE = "night.lock"


class NightAlreadyRunning(RuntimeError):
    """Another night holds this instance; the message says which process and since when."""


@contextlib.contextmanager
def night_lock(instance: dg.DagsterInstance, wait_s: float = 0) -> Iterator[None]:
    """Hold the instance's night lock; refuse (or wait up to ``wait_s`` seconds) while another night has it."""
    path = Path(instance.root_directory, LOCK_FILE)
    private.make_folders(path.parent)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise NightAlreadyRunning(
                        f"another night is running on this instance ({holder}); wait until it has finished "
                        f"(lock {path}) or stop that process first") from None
                time.sleep(1)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started "
                     f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def fail_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's night-runner runs that are still STARTING or STARTED as failed; returns their ids.

    Call only while holding the night lock: then no night runner of this host is alive, so such a run
    belongs to a process that was killed or crashed. Runs of the daemon are its run monitoring's business.
    """
    runs = instance.get_runs(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
        tags={RUNNER_TAG: "night", HOST_TAG: socket.gethostname()}))
    for run in runs:
        instance.report_run_failed(run, message=(
            f"the night runner (pid {run.tags.get(PID_TAG, '?')}) ended before this run finished (killed or "
            "crashed); marked failed by the next night"))
    return [run.run_id for run in runs]


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
    wait_s: float = 0,
) -> NightResult:
    """Ingest every municipality's waitlist (one run each), run the nightly job, then export per municipality.

    ``defs`` are the definitions of ``build_definitions(region_path)`` in this environment; the runs
    rebuild the same jobs from the code (see the module docstring). The partition runs go one after
    the other: side by side in forked workers they were no faster on two cores (13.4 s against 12.7 s
    for the five national-scale exports; the workers' copy-on-write of the parent's pages ate the gain).

    Raises ``NightAlreadyRunning`` when another night holds the instance after ``wait_s`` seconds.
    """
    with night_lock(instance, wait_s):
        abandoned = fail_abandoned_runs(instance)
        if abandoned:
            progress(f"marked {len(abandoned)} run(s) of an earlier night that was killed as failed")
        private.secure_tree(var_layout().root)
        return _run_night(defs, instance, evaluation_date, progress)


def _run_night(defs: dg.Definitions, instance: dg.DagsterInstance, evaluation_date: dt.date | None,
               progress) -> NightResult:
    region_path = str(Path(defs.resources["region_config"].path).resolve())
    run_config = night_run_config(evaluation_date, defs.resources["region_config"].path)
    tags = {"swv/night": evaluation_date.isoformat()} if evaluation_date else {}
    tags |= {RUNNER_TAG: "night", HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}

    def per_municipality(job_name: str, failed: str) -> dict[str, bool]:
        outcomes = {}
        for gemeente in defs.resolve_job_def(job_name).partitions_def.get_partition_keys():
            result = execute(job_name, region_path, instance, run_config=run_config, tags=tags, partition=gemeente)
            outcomes[gemeente] = result.success
            progress(f"{job_name} {gemeente}: {'ok' if result.success else failed}")
        return outcomes

    waitlists = per_municipality("waitlist_ingest", "FAILED (last good snapshot kept)")
    nightly = execute("nightly", region_path, instance, run_config=run_config, tags=tags)
    progress(f"nightly job: {'ok' if nightly.success else 'FAILED'}")
    exports = per_municipality("municipality_exports", "FAILED") if nightly.success else {}
    return NightResult(evaluation_date.isoformat() if evaluation_date else None, waitlists, nightly, exports)
