"""What the benchmark measures, and how: one child process per measured thing.

Child side, ``python -m bench.measure <what> --var DIR --sources DIR --result FILE``:

- ``generate --pupils N``: the demo region's deliveries at that scale (``demo.generate``);
- ``pipeline``: the whole night in this process (``pipelines.night.run_night``: one ``nightly``
  run) on a fresh ``SWV_VAR_DIR``/``DAGSTER_HOME`` whose
  ``sources`` is a link to the shared deliveries; afterwards the step start/end times of every run
  are read from the Dagster event log;
- ``reference``: ``bench.reference`` on the same deliveries.

``--region FILE`` runs any of them on another region file than the demo's (the municipality
dimension, ``bench.regions``).

Each child writes a JSON result: when it was done (epoch seconds; the post-run bookkeeping after
that is not timed), its CPU time and peak RSS at that moment, and its stage windows.

Parent side, ``run_measured``: starts the child, samples ``/proc/<pid>`` (CPU ticks and RSS) every
``SAMPLE_S`` while it runs, and reaps it with ``os.wait4``, whose rusage is that child's own
(``getrusage(RUSAGE_CHILDREN)`` would be the maximum over every child reaped so far). The samples
turn the stage windows into CPU time and peak RSS per stage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_S = 0.02
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# --------------------------------------------------------------------------- parent side


@dataclass
class Measured:
    """One child process: its result JSON, rusage from wait4, and the /proc samples."""

    returncode: int
    started: float  # epoch seconds just before the child was spawned
    ended: float  # epoch seconds when it was reaped
    cpu_s: float  # user + system CPU of the whole child (wait4)
    peak_rss_kib: int  # ru_maxrss of the child (wait4), or the sampled process tree's peak if larger
    samples: list[tuple[float, float, int]] = field(repr=False)  # (epoch s, CPU s, RSS KiB)
    result: dict = field(default_factory=dict, repr=False)

    @property
    def done(self) -> float:
        """When the measured work ended (the child's own mark), else when the process ended."""
        return float(self.result.get("done", self.ended))

    @property
    def wall_s(self) -> float:
        """From spawning the process to the end of the work: start-up included, bookkeeping not."""
        return self.done - self.started

    def window(self, spans: list[list[float]]) -> dict:
        """CPU seconds and peak RSS over some time spans, from the samples (interpolated at the edges)."""
        cpu, peak = 0.0, 0
        for start, end in spans:
            cpu += self._cpu_at(end) - self._cpu_at(start)
            inside = [rss for t, _, rss in self.samples if start <= t <= end]
            nearest = [rss for t, _, rss in self.samples if t >= start][:1]  # a span shorter than a sample
            peak = max(peak, *inside, *nearest, 0)
        return {"wall_s": sum(end - start for start, end in spans), "cpu_s": max(cpu, 0.0), "peak_rss_kib": peak}

    def _cpu_at(self, moment: float) -> float:
        samples = self.samples
        if not samples:
            return 0.0
        if moment <= samples[0][0]:
            return samples[0][1]
        for (t0, c0, _), (t1, c1, _) in zip(samples, samples[1:]):
            if t0 <= moment <= t1:
                return c0 + (c1 - c0) * ((moment - t0) / (t1 - t0) if t1 > t0 else 0.0)
        return samples[-1][1]


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3, the state, comes first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (worker processes of the measured child), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))  # field 4: the parent pid
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class _Workers:
    """The measured process's descendants, looked up in /proc at most every ``RESCAN_S``: a scan
    reads every process's stat, too much to do every 20 ms beside the measured work."""

    RESCAN_S = 0.25

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.scanned = 0.0

    def of(self, pid: int) -> list[int]:
        now = time.monotonic()
        if now - self.scanned >= self.RESCAN_S:
            self.pids, self.scanned = _descendants(pid), now
        return [p for p in self.pids if os.path.exists(f"/proc/{p}")]



def _resident_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE_KIB
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def _proportional_kib(pid: int) -> int:
    """Proportional set size: resident pages, each shared page divided among the processes sharing it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _sample(pid: int, workers: _Workers) -> tuple[float, float, int] | None:
    """(time, CPU seconds, memory KiB) of the measured process *and its descendants*.

    CPU: utime + stime of the process and cutime + cstime of its finished, reaped children (fields
    14-17), plus what live descendants used so far. Memory: the resident set of the process plus the
    proportional set sizes of its descendants (a forked worker's pages shared with the process are
    then counted once in full and once as the worker's share, at most half of them twice).

    Not the proportional set size of the process itself: reading it walks the page tables of the
    whole process (``smaps_rollup``), and the pipeline always has descendants (Dagster's compute-log
    capture starts a tail and a watcher process per step). Doing that every 20 ms on a 3 GiB process
    took 18 ms per sample and slowed the measured national night from 50 to 58 s.
    """
    fields = _stat(pid)
    if fields is None:
        return None
    cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICKS
    memory = _resident_kib(pid)
    for child in workers.of(pid):
        child_fields = _stat(child)
        if child_fields is not None:
            cpu += (int(child_fields[11]) + int(child_fields[12])) / _TICKS
            memory += _proportional_kib(child)
    return time.time(), cpu, memory


def run_measured(args: list[str], *, env: dict[str, str], result_path: Path, cwd: Path,
                 command: list[str] | None = None) -> Measured:
    """Run ``python -m bench.measure <args> --result result_path`` and measure it from outside.

    ``command`` runs that instead (the production path's ``swv night``): it writes no result, so
    its work ends when the process does.
    """
    result_path.unlink(missing_ok=True)
    command = command or [sys.executable, "-m", "bench.measure", *args, "--result", str(result_path)]
    os.sync()  # what the previous child wrote is on disk before this one is timed, not flushed during it
    started = time.time()
    process = subprocess.Popen(command, env=env, cwd=cwd)
    samples: list[tuple[float, float, int]] = []
    stop = threading.Event()

    workers = _Workers()

    def poll() -> None:
        while not stop.is_set():
            sample = _sample(process.pid, workers)
            if sample is not None:
                samples.append(sample)
            stop.wait(SAMPLE_S)

    poller = threading.Thread(target=poll, name="bench-sampler", daemon=True)
    poller.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        raise
    finally:
        ended = time.time()
        stop.set()
        poller.join()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.exists() else {}
    return Measured(
        returncode=process.returncode,
        started=started,
        ended=ended,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_kib=max([usage.ru_maxrss, *(rss for _, _, rss in samples)]),  # a tree of processes counts whole
        samples=samples,
        result=result,
    )


# --------------------------------------------------------------------------- child side


class Clock:
    """Elapsed-time progress lines and named marks (epoch seconds) for the result file."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.t0 = time.time()
        self.marks: dict[str, float] = {}

    def say(self, message: str) -> None:
        print(f"    [{time.time() - self.t0:7.1f}s] {self.what}: {message}", flush=True)

    def mark(self, name: str) -> float:
        self.marks[name] = time.time()
        return self.marks[name]


def _cpu_with_children() -> float:
    """User + system CPU of this process and of its finished worker processes (all threads)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _finish(clock: Clock, result_path: Path, **result) -> None:
    """Close the measured work: CPU and peak RSS now, then whatever the caller computed."""
    done = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    payload = {"done": done, "cpu_at_done_s": _cpu_with_children(), "maxrss_at_done_kib": usage.ru_maxrss,
               "marks": clock.marks, **result}
    result_path.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")


def _region():
    from settings.paths import region_file
    from settings.region import load_region

    return load_region(region_file())


def _generate(args: argparse.Namespace, clock: Clock) -> None:
    from demo.generate import generate_region

    var = Path(args.var)
    counts = generate_region(_region(), var / "sources", var / "truth.json", seed=args.seed, pupils=args.pupils,
                             progress=clock.say, school_gemeenten=args.school_gemeenten)
    _finish(clock, Path(args.result), counts=counts)


def prepare_var(var: Path, sources: Path) -> None:
    """A fresh runtime-state folder whose ``sources`` is the shared deliveries (read-only for the night)."""
    if var.exists():
        shutil.rmtree(var)
    (var / "dagster").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parent.parent / "deploy" / "dagster.local.yaml", var / "dagster" / "dagster.yaml")
    (var / "sources").symlink_to(sources.resolve(), target_is_directory=True)


def _pipeline(args: argparse.Namespace, clock: Clock) -> None:
    var = Path(args.var).resolve()
    prepare_var(var, Path(args.sources))
    os.environ["SWV_VAR_DIR"] = str(var)
    os.environ["DAGSTER_HOME"] = str(var / "dagster")
    for inherited in ("SWV_WAREHOUSE_URL", "SWV_LAKE_URL", "SWV_REGION_FILE"):
        os.environ.pop(inherited, None)
    if args.region:
        os.environ["SWV_REGION_FILE"] = args.region

    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.night import run_night

    clock.mark("imported")
    defs = build_definitions()
    clock.mark("startup")
    clock.say("definitions loaded")
    with dg.DagsterInstance.get() as instance:
        night = run_night(defs, instance, progress=clock.say)
        clock.mark("night")
        outcomes = {**{f"waitlist {g}": ok for g, ok in night.waitlists.items()},  # per municipality, from checks
                    **{f"export {g}": ok for g, ok in night.exports.items()}}
        success = night.success and all(outcomes.values())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        done = {"done": time.time(), "cpu_at_done_s": _cpu_with_children(), "maxrss_at_done_kib": usage.ru_maxrss}
        steps, rows, failures = pipeline_steps(instance, defs)
    result = {"marks": clock.marks, "success": success, "steps": steps, "asset_rows": rows,
              "failures": failures, "municipality_outcomes": outcomes, **done}
    Path(args.result).write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    clock.say(f"night {'ok' if success else 'FAILED'}; {len(steps)} step(s) timed from the event log")


def step_groups(defs) -> dict[str, str]:
    """Op name -> asset group (the first group of its assets; checks-only ops have their asset's)."""
    from dagster import AssetsDefinition

    groups: dict[str, str] = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if not isinstance(assets_def, AssetsDefinition) or not assets_def.is_executable:
            continue
        names = sorted(set(assets_def.group_names_by_key.values()))
        keys = list(assets_def.keys) or [spec.asset_key for spec in assets_def.check_specs]
        if not names and keys:
            names = [defs.resolve_asset_graph().get(keys[0]).group_name]
        groups[assets_def.node_def.name] = names[0] if names else "default"
    return groups


def pipeline_steps(instance, defs) -> tuple[list[dict], dict[str, int], list[str]]:
    """Every step of every run in the instance: op, group, start and end (epoch seconds), outcome.

    The instance is fresh per measured night, so its runs are exactly that night's. A step that was
    retried has one window per attempt. Also returns the rows each asset materialized (summed over
    partitions, from ``dagster/row_count``) and the steps that failed.
    """
    from dagster import DagsterEventType as E

    groups = step_groups(defs)
    opening = {E.STEP_START, E.STEP_RESTARTED}
    closing = {E.STEP_SUCCESS, E.STEP_FAILURE, E.STEP_UP_FOR_RETRY, E.STEP_SKIPPED}
    steps, rows, failures = [], {}, []
    for run in instance.get_runs():
        open_at: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id, of_type={*opening, *closing, E.ASSET_MATERIALIZATION}):
            kind, key = entry.dagster_event.event_type, entry.step_key
            if kind in opening:
                open_at[key] = entry.timestamp
            elif kind in closing and key in open_at:
                op = key.split("[")[0]
                steps.append({"run": run.run_id[:8], "job": run.job_name, "op": op, "group": groups.get(op, "default"),
                              "start": open_at.pop(key), "end": entry.timestamp, "outcome": kind.value})
                if kind == E.STEP_FAILURE:
                    failures.append(f"{run.job_name}:{op}")
            elif kind == E.ASSET_MATERIALIZATION:
                materialization = entry.asset_materialization
                count = materialization.metadata.get("dagster/row_count")
                if count is not None:
                    name = materialization.asset_key.to_user_string()
                    rows[name] = rows.get(name, 0) + int(count.value)
    return sorted(steps, key=lambda s: s["start"]), rows, failures


def _reference(args: argparse.Namespace, clock: Clock) -> None:
    from bench.reference import run_reference

    region = _region()
    clock.mark("startup")
    out = Path(args.var).resolve()
    if out.exists():
        shutil.rmtree(out)
    report = run_reference(Path(args.sources), out, region, progress=clock.say)
    _finish(clock, Path(args.result), success=True, stages=report.stages, validated_rows=report.validated_rows,
            outputs=report.outputs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("generate", "pipeline", "reference"))
    parser.add_argument("--var", required=True, help="output folder of this child")
    parser.add_argument("--sources", help="the deliveries (pipeline, reference)")
    parser.add_argument("--pupils", type=int, help="VO pupils (generate)")
    parser.add_argument("--seed", type=int, default=2203)
    parser.add_argument("--region", help="region file (default: SWV_REGION_FILE or the demo region)")
    parser.add_argument("--school-gemeenten", nargs="+", help="municipalities whose schools the pupils attend (generate)")
    parser.add_argument("--result", required=True, help="where the JSON result goes")
    args = parser.parse_args(argv)
    if args.region:
        args.region = str(Path(args.region).resolve())
        os.environ["SWV_REGION_FILE"] = args.region
    clock = Clock(args.what)
    {"generate": _generate, "pipeline": _pipeline, "reference": _reference}[args.what](args, clock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
