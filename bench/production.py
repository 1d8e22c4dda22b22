"""The production path at region scale (issue 23, part 3): the night as production launches it.

The benchmark's pipeline side runs the night in its own process (``pipelines.night.run_night``).
Production does not: the daemon's schedule submits a run to the instance's run queue, the
``QueuedRunCoordinator`` hands it to the ``DefaultRunLauncher``, and the run gets a process of its
own (``dagster api execute_run``, started by the code location's server) that loads the code again,
logs every event to its console and the event log, and ends. An operator runs ``swv night``. Both
are measured here on the same deliveries as the in-process night:

- ``swv night``: the command as operators run it, a measured child process from spawn to exit;
- the daemon: ``dagster-daemon run -w workspace.yaml`` on a fresh instance whose ``dagster.yaml``
  is the embedded default plus the production profile's run queue and launcher
  (``deploy/dagster.postgres.yaml``: ``QueuedRunCoordinator``, default dequeue interval; SQLite
  storage, as no PostgreSQL is assumed). The daemon is started and left to load the code location
  first, as the production daemon has been running for days; then ``dagster job launch`` submits
  the ``nightly`` job with no run config, as the schedule does. Measured: from the run's creation
  (the moment the schedule's tick would create it) to its end, from the run record; the queue
  wait and the launch command's own time are reported beside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import BENCH_DIR
from bench.measure import prepare_var, run_measured

PROJECT = BENCH_DIR.parent
BIN = Path(sys.executable).parent
LIMIT = 2.0  # production path / in-process night, region scale
QUEUE_AND_LAUNCHER = """
# Added by the benchmark (bench/production.py): the production profile's run queue and launcher.
run_coordinator:
  module: dagster
  class: QueuedRunCoordinator
run_launcher:
  module: dagster
  class: DefaultRunLauncher
"""
DAEMON_SETTLE_S = 15.0  # after the first heartbeats: the daemon loads the code location in the background
RUN_TIMEOUT_S = 900.0


def _environment(env: dict[str, str], var: Path, region: Path) -> dict[str, str]:
    return dict(env, SWV_VAR_DIR=str(var), DAGSTER_HOME=str(var / "dagster"), SWV_REGION_FILE=str(region))


def swv_night(setup: dict, repeat: int, env: dict[str, str], say) -> dict:
    """``swv night --region R`` in a fresh runtime folder: wall from spawn to exit (its own output is its
    progress, so ``say`` has nothing to add)."""
    var = (setup["folder"] / f"swv-night-{repeat}").resolve()
    prepare_var(var, setup["sources"])
    measured = run_measured([], env=_environment(env, var, setup["region"]),
                            result_path=setup["folder"] / f"swv-night-{repeat}.json", cwd=PROJECT,
                            command=[str(BIN / "swv"), "night", "--region", str(setup["region"])])
    return {"path": "swv night", "repeat": repeat, "wall_s": measured.wall_s, "cpu_s": measured.cpu_s,
            "peak_rss_kib": measured.peak_rss_kib, "success": measured.returncode == 0}


def daemon_night(setup: dict, repeat: int, env: dict[str, str], say) -> dict:
    """The nightly job submitted to the run queue of a running daemon; wall from the run's creation to its end."""
    import dagster as dg

    var = (setup["folder"] / f"daemon-{repeat}").resolve()
    prepare_var(var, setup["sources"])
    home = var / "dagster"
    with open(home / "dagster.yaml", "a", encoding="utf-8") as settings:
        settings.write(QUEUE_AND_LAUNCHER)
    env = _environment(env, var, setup["region"])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # The storages' tables made here, before the daemon starts: two processes creating the same
        # SQLite tables at once fail ("table job_ticks already exists").
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_daemon_heartbeats()
        record, run_id, launch_s, exports = _launched_by_daemon(instance, env, var)
    created = record.create_timestamp.timestamp()
    success = record.dagster_run.status == dg.DagsterRunStatus.SUCCESS and all(exports.values())
    say(f"daemon path: run {run_id[:8]} {record.dagster_run.status.value}, {sum(exports.values())}/{len(exports)} "
        f"export checks passed")
    return {"path": "daemon (run queue, DefaultRunLauncher)", "repeat": repeat, "wall_s": record.end_time - created,
            "to_start_s": (record.start_time or created) - created, "launch_command_s": launch_s,
            "success": success, "run_id": run_id}


def _launched_by_daemon(instance, env: dict[str, str], var: Path):
    """Start the daemon, submit ``nightly`` once it is up, wait for the run's end, stop the daemon."""
    log = open(var / "daemon.log", "wb")
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=PROJECT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _await_daemon(instance, daemon)
        time.sleep(DAEMON_SETTLE_S)
        launched_at = time.time()
        launch = subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "nightly"],
                                cwd=PROJECT, env=env, capture_output=True, text=True)
        launch_s = time.time() - launched_at
        if launch.returncode != 0:
            raise RuntimeError(f"dagster job launch failed:\n{launch.stderr[-2000:]}")
        run_id = instance.get_runs(limit=1)[0].run_id
        record = _finished(instance, run_id)
        return record, run_id, launch_s, _export_checks(instance, run_id)
    finally:
        _stop(daemon)
        log.close()


def _stop(daemon: subprocess.Popen) -> None:
    """The daemon and its code server, by the process group it was started in."""
    try:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    except ProcessLookupError:
        daemon.wait()
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()


def _await_daemon(instance, daemon: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Until the daemon's run queue reports a heartbeat."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"dagster-daemon ended (exit {daemon.returncode}); see its daemon.log")
        if "QUEUED_RUN_COORDINATOR" in instance.get_daemon_heartbeats():
            return
        time.sleep(0.5)
    raise RuntimeError("dagster-daemon gave no heartbeat of its run queue in time")


def _finished(instance, run_id: str):
    import dagster as dg

    ended = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        record = instance.get_run_record_by_id(run_id)
        if record.dagster_run.status in ended and record.end_time:
            return record
        time.sleep(0.1)
    raise RuntimeError(f"run {run_id} did not end within {RUN_TIMEOUT_S:.0f} s")


def _export_checks(instance, run_id: str) -> dict[str, bool]:
    """Municipality -> its export check passed, from the run's event log (as ``run_night`` reports them)."""
    import dagster as dg

    out = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.asset_check_evaluation_data
        name = evaluation.asset_check_key.name
        if name.startswith("export_"):
            out[name.removeprefix("export_")] = evaluation.passed
    return out


def summary(paths: list[dict], in_process: dict[int, float]) -> dict:
    """Each production run with its ratio to the same round's in-process night; medians per path."""
    import statistics

    for run in paths:
        base = in_process.get(run["repeat"])
        run["in_process_s"] = base
        run["ratio"] = run["wall_s"] / base if base else None
    medians = {}
    for name in dict.fromkeys(run["path"] for run in paths):
        mine = [run for run in paths if run["path"] == name]
        medians[name] = {key: statistics.median([r[key] for r in mine if r.get(key) is not None] or [float("nan")])
                         for key in ("wall_s", "in_process_s", "ratio")}
    return {"runs": paths, "median": medians}


def targets(result: dict | None, count: int | None) -> list[dict]:
    result = result or {}
    out = []
    for name in ("daemon (run queue, DefaultRunLauncher)", "swv night"):
        median = result.get("median", {}).get(name, {})
        value = median.get("ratio")
        value = None if value is None or value != value else value  # NaN: not measured
        out.append({"target": f"production path, {name}: wall / in-process night (region, {count} municipalities)",
                    "value": value, "limit": LIMIT, "unit": "×", "met": None if value is None else value <= LIMIT,
                    "note": "" if value is not None else "production path not run",
                    "rounds": [round(r["ratio"], 3) if r.get("ratio") else None
                               for r in result.get("runs", []) if r["path"] == name]})
    return out


def markdown(result: dict | None, count: int) -> list[str]:
    if not result:
        return []
    lines = ["", "## Production path", "",
             f"Region scale, {count} municipalities, the same deliveries as the in-process night of the same round. "
             "`swv night`: spawn to exit. Daemon: `dagster-daemon run` already running (run queue and "
             "`DefaultRunLauncher`, each run its own process); the `nightly` job submitted with `dagster job launch`; "
             "wall from the run's creation to its end (queue wait and the run process's start-up included; the "
             "launch command's own time beside it).", "",
             "| path | round | wall s | in-process night s | ratio | created to run start s | launch command s | success |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for run in result["runs"]:
        lines.append(f"| {run['path']} | {run['repeat']} | {_fmt(run['wall_s'])} | {_fmt(run.get('in_process_s'))} "
                     f"| {_fmt(run.get('ratio'))} | {_fmt(run.get('to_start_s'))} | {_fmt(run.get('launch_command_s'))} "
                     f"| {run['success']} |")
    for name, m in result["median"].items():
        lines.append(f"| **{name}** | median | **{_fmt(m['wall_s'])}** | {_fmt(m['in_process_s'])} | {_fmt(m['ratio'])} "
                     "| | | |")
    return lines


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None or value != value else f"{value:,.{digits}f}"
