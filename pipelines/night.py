"""Run one whole night in this process: what the 02:00 schedule does, without the daemon.

Used by ``make demo``, the benchmark and the end-to-end tests; in production the schedule launches
the same job. Runs are recorded in the Dagster instance, so they show in the UI afterwards.

One night at a time per instance: ``run_night`` holds an exclusive lock on
``$DAGSTER_HOME/night.lock`` (``fcntl.flock``: the kernel releases it when the process ends, also
when it is killed). A second night refuses with ``NightAlreadyRunning`` or, with ``wait_s``, waits
for the first. Holding the lock, it first marks the runs of an earlier night runner of this host
that are still STARTING or STARTED as failed (that process is gone: it held the lock), and tightens
the runtime folder to its private modes (``connectors.private``).

Each run goes through ``dagster.execute_job`` with the job rebuilt from the code (``night_job``),
as a run worker does, and not through ``JobDefinition.execute_in_process``: that one keeps every
step's output in memory until the run ends (for ``result.output_for_node``), which at national
scale held every dataset of the night at once (``bench/README.md``, "Design notes").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import os
import socket
import time
from collections.abc import Iterator, Sequence
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
    """One night's run and what it says per municipality (from its per-source and per-municipality checks)."""

    evaluation_date: str | None
    nightly: dg.JobExecutionResult
    waitlists: dict[str, bool]  # gemeente -> every waitlist delivery read (else its last good snapshot was used)
    exports: dict[str, bool]  # gemeente -> its export written and delivered

    @property
    def success(self) -> bool:
        return self.nightly.success and all(self.exports.values())


def night_run_config(evaluation_date: dt.date | None, region_path: str | None = None,
                     console_level: str = "WARNING", gemeenten: Sequence[str] | None = None) -> dict:
    """Run config: the evaluation date (time travel for replays and tests), the console log level, and
    the municipalities to export (None: all of them).

    Every event still goes to the instance's event log (the UI); only the terminal is kept quiet.
    """
    config: dict = {"loggers": {"console": {"config": {"log_level": console_level}}}}
    if evaluation_date is not None:
        config["resources"] = {"region_config": {"config": {"path": region_path,
                                                            "evaluation_date": evaluation_date.isoformat()}}}
    if gemeenten:
        config["ops"] = {"municipal_exports": {"config": {"gemeenten": list(gemeenten)}}}
    return config


def night_job(job_name: str, region_path: str, environment_key: str = "") -> dg.JobDefinition:
    """A job of the night rebuilt from the code and this process's environment (``execute_job``'s
    reconstructor; a step in another process calls it there, with the environment it inherited).

    ``environment_key`` (``_environment_key``) only tells jobs apart: Dagster keeps a job it has
    reconstructed for the same arguments, which without it would be the job of an earlier
    environment (another ``SWV_VAR_DIR``, another warehouse) in the same process.
    """
    return _definitions(region_path, tuple(sorted(os.environ.items()))).resolve_job_def(job_name)


def _environment_key() -> str:
    return hashlib.sha256(repr(sorted(os.environ.items())).encode()).hexdigest()[:16]


def night_definitions(region_path: str | os.PathLike[str]) -> dg.Definitions:
    """The definitions the night's runs rebuild (``night_job``): passed to ``run_night``, the code
    location is loaded once for the whole night (``swv night``)."""
    return _definitions(str(Path(region_path).resolve()), tuple(sorted(os.environ.items())))


@functools.lru_cache(maxsize=2)
def _definitions(region_path: str, environment: tuple[tuple[str, str], ...]) -> dg.Definitions:
    """Built once per region and environment: every run of this process shares them."""
    from pipelines.definitions import build_definitions

    return build_definitions(Path(region_path))


def execute(job_name: str, region_path: str, instance: dg.DagsterInstance, *, run_config: dict,
            tags: dict[str, str]) -> dg.JobExecutionResult:
    """Run one job in this process and record it in ``instance``; failures are returned."""
    job = dg.build_reconstructable_job("pipelines.night", "night_job",
                                       reconstructable_args=(job_name, region_path, _environment_key()))
    return dg.execute_job(job, instance, run_config=run_config, tags=tags, raise_on_error=False)


def _passed(result: dg.JobExecutionResult, prefix: str) -> dict[str, bool]:
    """Check name (without ``prefix``) -> passed, for the checks of this run whose name starts with it."""
    return {e.check_name.removeprefix(prefix): e.passed
            for e in result.get_asset_check_evaluations() if e.check_name.startswith(prefix)}


def run_night(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    evaluation_date: dt.date | None = None,
    *,
    gemeenten: Sequence[str] | None = None,
    progress=lambda message: None,
    wait_s: float = 0,
) -> NightResult:
    """Run the night (the ``nightly`` job) and report per municipality; ``gemeenten`` limits the exports.

    ``defs`` are the definitions of ``build_definitions(region_path)`` in this environment; the run
    rebuilds the same job from the code (see the module docstring).

    Raises ``NightAlreadyRunning`` when another night holds the instance after ``wait_s`` seconds.
    """
    with night_lock(instance, wait_s):
        abandoned = fail_abandoned_runs(instance)
        if abandoned:
            progress(f"marked {len(abandoned)} run(s) of an earlier night that was killed as failed")
        private.secure_tree(var_layout().root)
        return _run_night(defs, instance, evaluation_date, gemeenten, progress)


def _run_night(defs: dg.Definitions, instance: dg.DagsterInstance, evaluation_date: dt.date | None,
               gemeenten: Sequence[str] | None, progress) -> NightResult:
    region_path = str(Path(defs.resources["region_config"].path).resolve())
    region = defs.resources["region_config"].region
    run_config = night_run_config(evaluation_date, defs.resources["region_config"].path, gemeenten=gemeenten)
    tags = {"swv/night": evaluation_date.isoformat()} if evaluation_date else {}
    tags |= {RUNNER_TAG: "night", HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    names = {g.code: g.naam for g in region.gemeenten}
    if gemeenten:  # the run list shows whose exports a partial night wrote, names beside codes
        tags["swv/gemeenten"] = ", ".join(f"{names.get(code, code)} ({code})" for code in gemeenten)
    nightly = execute("nightly", region_path, instance, run_config=run_config, tags=tags)
    delivered = _passed(nightly, "delivery_")
    waitlists = {code: all(delivered.get(source_id, False)
                           for source_id in region.sources_for("youth_care_waitlist", code))
                 for code in region.gemeente_codes if region.sources_for("youth_care_waitlist", code)}
    exports = {code: ok for code, ok in _passed(nightly, "export_").items()
               if gemeenten is None or code in gemeenten}
    progress(f"nightly job: {'ok' if nightly.success else 'FAILED'}")
    for code, ok in waitlists.items():
        progress(f"  waitlist {names[code]} ({code}): {'ok' if ok else 'rejected (last good snapshot used)'}")
    for code, ok in exports.items():
        progress(f"  export {names.get(code, code)} ({code}): {'ok' if ok else 'FAILED'}")
    return NightResult(evaluation_date.isoformat() if evaluation_date else None, nightly, waitlists, exports)
