"""Sensors: start a run when a partner drops a delivery, and tell the operator when a run fails.

``delivery_sensor`` (stopped by default: the nightly schedule is the primary trigger) watches the
file sources of the region YAML. A new or changed file asks for a run once: a waitlist file asks
for a ``waitlist_ingest`` run, any other file for a ``nightly`` run. The run key is the delivery's
sha256, the same fingerprint the raw snapshot is named by, so Dagster never starts a second run for
the same bytes, even under another file name. A file counts once it has not changed for a minute
(an upload may still be in progress); the deliveries one evaluation finds for the same job share
one run, keyed by a fingerprint of their sha256s.

``run_failure_notification`` (running by default) sends every failed run to the ``Notifier``: run
id, job, failed steps with their error *class* and a link to the run in the UI, and the deliveries
it held back.

``held_back_notification`` (running by default) tells the steward, through the same channels, about
every delivery a successful run held back (``assets.bronnen.ingest``: unreadable, breaking its
contract, or too small; the failed ``delivery_<source>`` checks): the source, the reason and the
last good delivery the night used instead. These reasons are written by the pipeline and name
files, rows and counts, never a delivered value.

``check_failure_notification`` (running by default) does the same for the other ERROR checks that
fail in a successful run, such as a municipality whose export failed (``export_GMxxxx``): the check
names and what they watch. Error texts stay out of every message: they can quote delivered values,
and an e-mail or chat message is no place for a BSN. The UI has the full error.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from connectors.files import SourceFiles
from connectors.notify import Notifier
from assets.bronnen.freshness import delivered_files
from settings.region import Region

DELIVERY_SENSOR = "delivery_sensor"
FAILURE_SENSOR = "run_failure_notification"
CHECK_FAILURE_SENSOR = "check_failure_notification"
HELD_BACK_SENSOR = "held_back_notification"
HOLD_CHECK_PREFIX = "delivery_"  # the raw assets' per-source checks, which report held-back deliveries
SETTLE_SECONDS = 60  # a file written to less than a minute ago may still be uploading
UI_URL_ENV = "SWV_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
WAITLIST_DATASET = "youth_care_waitlist"


# --------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class _Seen:
    """What the cursor remembers of a file: enough to skip rehashing an unchanged one every tick."""

    size: int
    mtime_ns: int
    sha256: str


def _load_cursor(cursor: str | None) -> dict[str, _Seen]:
    return {name: _Seen(*entry) for name, entry in json.loads(cursor or "{}").items()}


def _dump_cursor(seen: dict[str, _Seen]) -> str:
    return json.dumps({name: [s.size, s.mtime_ns, s.sha256] for name, s in sorted(seen.items())})


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _run_key(shas: Sequence[str]) -> str:
    """The delivery's sha256; several deliveries for one run (one tick) get a fingerprint of theirs."""
    if len(shas) == 1:
        return shas[0]
    return hashlib.sha256("\n".join(sorted(shas)).encode()).hexdigest()


def build_delivery_sensor(region: Region, *, nightly_job: Any, waitlist_job: Any) -> dg.SensorDefinition:
    """The sensor that starts runs for new deliveries of ``region``'s file sources.

    It takes the job definitions (``define_asset_job`` results) rather than their names: a Dagster
    sensor that requests runs of two jobs must be given both jobs as targets.
    """
    file_sources = {sid: s for sid, s in region.sources.items() if s.location.kind == "file"}

    @dg.sensor(
        name=DELIVERY_SENSOR,
        jobs=[nightly_job, waitlist_job],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Starts a run when a partner drops a new or changed file: waitlist_ingest for a youth-care "
            "waitlist, nightly for any other source. Off by default; the 02:00 schedule is the primary "
            "trigger (docs/runbook.md)."
        ),
    )
    def delivery_sensor(context: dg.SensorEvaluationContext, source_files: SourceFiles):
        root = Path(source_files.root)
        before = _load_cursor(context.cursor)
        seen: dict[str, _Seen] = {}
        new: dict[str, dict[str, str]] = defaultdict(dict)  # job name -> file -> sha256
        for source in file_sources.values():
            for path in delivered_files(root, source.location):
                name = path.relative_to(root).as_posix()
                state = _settled_state(path, before.get(name))
                if state is None:
                    if name in before:  # keep the old fingerprint so the change is noticed once settled
                        seen[name] = before[name]
                    continue
                seen[name] = state
                if name not in before or before[name].sha256 != state.sha256:
                    job = waitlist_job if source.dataset == WAITLIST_DATASET else nightly_job
                    new[job.name][name] = state.sha256
        requests = []
        for job_name, files in sorted(new.items()):
            names = sorted(files)
            context.log.info(f"{job_name}: {len(names)} new or changed delivery(ies): "
                             f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
            requests.append(dg.RunRequest(
                job_name=job_name,
                run_key=_run_key(list(files.values())),
                tags={"swv/trigger": "delivery", "swv/deliveries": str(len(names))},
            ))
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=_dump_cursor(seen))
        return dg.SensorResult(skip_reason="no new or changed delivery", cursor=_dump_cursor(seen))

    return delivery_sensor


def _settled_state(path: Path, previous: _Seen | None) -> _Seen | None:
    """The file's fingerprint, or None while it may still be being written."""
    stat = path.stat()
    if time.time() - stat.st_mtime < SETTLE_SECONDS:
        return None
    if previous is not None and (previous.size, previous.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        return previous
    sha256 = _sha256(path)
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        return None  # changed while we read it: next tick
    return _Seen(stat.st_size, stat.st_mtime_ns, sha256)


# --------------------------------------------------------------------------- failures

PRIVACY_NOTE = (
    "The error text is left out on purpose: it can quote delivered data (names, BSNs). "
    "The run page shows the full error and the logs. What to do: docs/runbook.md, 'A run failed'."
)


def ui_url() -> str:
    """Base URL of the Dagster UI for links in messages: ``SWV_UI_URL``, read at send time."""
    return (os.environ.get(UI_URL_ENV) or DEFAULT_UI_URL).rstrip("/")


def _error_class(error) -> str:
    """The class of the innermost cause: what user code raised, not Dagster's wrapper around it."""
    if error is None:
        return "unknown"
    while error.cause is not None:
        error = error.cause
    return error.cls_name or "unknown"


def held_back_deliveries(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """The deliveries a run held back, from its failed per-source delivery checks, in order."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    held = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if (evaluation.check_name.startswith(HOLD_CHECK_PREFIX) and not evaluation.passed
                and "held_back" in evaluation.metadata):
            held += evaluation.metadata["held_back"].value
    return held


def held_back_lines(held: Sequence[dict]) -> list[str]:
    """The held-back deliveries as lines of a message: source, delivery, reason, what was kept."""
    lines = []
    for hold in held:
        lines += [f"  - {hold['source_id']}: {hold['delivery']}",
                  f"    reason ({hold['kind']}): {hold['reason']}",
                  f"    kept instead: {hold['kept']}"]
    return lines


ACCEPT_HINT = ("A real drop in volume (a school that closed) is accepted with: "
               "swv accept <source> --reason '...' (docs/runbook.md, 'A delivery was held back').")


def held_back_message(run: dg.DagsterRun, held: Sequence[dict], ui_base: str) -> tuple[str, str]:
    """Subject and body of the notification for a run that held deliveries back."""
    sources = sorted({hold["source_id"] for hold in held})
    lines = [f"Job: {run.job_name}", f"Run id: {run.run_id}"]
    lines += ["Held back (the night used the last good delivery instead):", *held_back_lines(held), "",
              ACCEPT_HINT, f"Open the run: {ui_base}/runs/{run.run_id}"]
    return (f"SWV pipeline: {len(held)} delivery(ies) held back, last good used: {', '.join(sources)}",
            "\n".join(lines))


def failure_message(run: dg.DagsterRun, failure_event: dg.DagsterEvent | None,
                    step_failures: Sequence[dg.DagsterEvent], ui_base: str,
                    held: Sequence[dict] = ()) -> tuple[str, str]:
    """Subject and body of the notification for a failed run: identifiers and classes only."""
    steps: dict[str, str] = {}
    for event in step_failures:
        data = event.step_failure_data
        steps.setdefault(event.step_key or "?", _error_class(data.error) if data.error else "Failure")
    lines = [f"Job: {run.job_name}", f"Run id: {run.run_id}"]
    if steps:
        lines.append("Failed steps:")
        lines += [f"  - {step}: {error_class}" for step, error_class in sorted(steps.items())]
    else:
        run_error = failure_event.job_failure_data.error if failure_event and failure_event.job_failure_data else None
        lines.append(f"No step failed; the run itself failed: {_error_class(run_error)}")
    if held:
        lines += ["Held back (the last good delivery was used instead):", *held_back_lines(held)]
    lines += [f"Open the run: {ui_base}/runs/{run.run_id}", "", PRIVACY_NOTE]
    return f"SWV pipeline: run failed: {run.job_name}", "\n".join(lines)


@dg.run_failure_sensor(
    name=FAILURE_SENSOR,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends every failed run (job, run id, failed steps and error class, UI link) to the Notifier.",
)
def run_failure_notification(context: dg.RunFailureSensorContext, notifier: Notifier) -> None:
    subject, body = failure_message(context.dagster_run, context.failure_event,
                                    context.get_step_failure_events(), ui_url(),
                                    held_back_deliveries(context.instance, context.dagster_run.run_id))
    channels = notifier.send(subject, body)
    context.log.info(f"run {context.dagster_run.run_id} failed; notified via {', '.join(channels) or 'no channel (none configured)'}")


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckKey]:
    """The ERROR checks that failed in a run, in the order they were evaluated, except the per-source
    delivery checks (``held_back_notification`` reports those with what was kept)."""
    failed = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.asset_check_evaluation_data
        if (not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
                and not evaluation.asset_check_key.name.startswith(HOLD_CHECK_PREFIX)):
            failed.append(evaluation.asset_check_key)
    return failed


def check_failure_message(run: dg.DagsterRun, failed: Sequence[dg.AssetCheckKey], descriptions: dict,
                          ui_base: str) -> tuple[str, str]:
    """Subject and body for a run that succeeded with failed ERROR checks: check names and what they
    watch (their static descriptions name the partner or municipality), never the failure texts."""
    lines = [f"Job: {run.job_name}", f"Run id: {run.run_id}", "The run succeeded, but these checks failed:"]
    for key in failed:
        lines.append(f"  - {key.asset_key.to_user_string()} / {key.name}: {descriptions.get(key, '')}".rstrip(": "))
    lines += [f"Open the run: {ui_base}/runs/{run.run_id}", "",
              "What was kept and why is in each check's result in the UI; what to do: docs/runbook.md, "
              "'Checks and what to do'. " + PRIVACY_NOTE.split(". ")[0] + "."]
    return f"SWV pipeline: {len(failed)} check(s) failed in {run.job_name}", "\n".join(lines)


@dg.run_status_sensor(
    name=CHECK_FAILURE_SENSOR,
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=("Sends every successful run whose ERROR checks failed (a failed "
                 "municipal export; held-back deliveries go through held_back_notification) to the Notifier: "
                 "check names and a UI link, no failure texts."),
)
def check_failure_notification(context: dg.RunStatusSensorContext, notifier: Notifier) -> None:
    run = context.dagster_run
    failed = failed_checks(context.instance, run.run_id)
    if not failed:
        return
    repository = context.repository_def
    definitions = [*repository.assets_defs_by_key.values(), *repository.asset_checks_defs_by_key.values()] \
        if repository is not None else []
    descriptions = {spec.key: spec.description or "" for d in definitions for spec in d.check_specs}
    subject, body = check_failure_message(run, failed, descriptions, ui_url())
    channels = notifier.send(subject, body)
    context.log.info(f"run {run.run_id}: {len(failed)} failed check(s); notified via "
                     f"{', '.join(channels) or 'no channel (none configured)'}")


@dg.run_status_sensor(
    name=HELD_BACK_SENSOR,
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Tells the steward (Notifier) about every delivery a successful run held back: source, reason and "
                "the last good delivery used instead.",
)
def held_back_notification(context: dg.RunStatusSensorContext, notifier: Notifier) -> None:
    held = held_back_deliveries(context.instance, context.dagster_run.run_id)
    if not held:
        return
    subject, body = held_back_message(context.dagster_run, held, ui_url())
    channels = notifier.send(subject, body)
    context.log.info(f"run {context.dagster_run.run_id} held back {len(held)} delivery(ies); notified via "
                     f"{', '.join(channels) or 'no channel (none configured)'}")
