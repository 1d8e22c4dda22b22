"""Sensors: start a run when a partner drops a delivery, and tell the operator when a run fails.

``delivery_sensor`` (stopped by default: the nightly schedules are the primary trigger) watches the
file sources of the region YAML. A new or changed file asks for a run once: a waitlist file asks
for a ``waitlist_ingest`` run of its municipality's partition, any other file for a ``nightly`` run.
The run key is the delivery's sha256, the same fingerprint the raw snapshot is named by, so Dagster
never starts a second run for the same bytes, even under another file name. A file counts once it
has not changed for a minute (an upload may still be in progress); the deliveries one evaluation
finds for the same job and partition share one run, keyed by a fingerprint of their sha256s.

``run_failure_notification`` (running by default) sends every failed run to the ``Notifier``: run
id, job, partition, failed steps with their error *class* and a link to the run in the UI. Error
texts stay out: they can quote delivered values, and an e-mail or chat message is no place for a
BSN. The UI has the full error.

``held_back_notification`` (running by default) tells the steward, through the same channels, about
every delivery a successful run held back (``assets.bronnen.ingest``: unreadable, breaking its
contract, or too small): the source, the reason and the last good delivery the night used instead.
A failed run's message lists them too. These reasons are written by the pipeline and name files,
rows and counts, never a delivered value.
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
from typing import TYPE_CHECKING

import dagster as dg

from connectors.files import SourceFiles
from connectors.notify import Notifier
from pipelines.freshness import delivered_files
from settings.region import Region

if TYPE_CHECKING:  # names Dagster does not export at the top level; used in annotations only
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
    from dagster._utils.error import SerializableErrorInfo

DELIVERY_SENSOR = "delivery_sensor"
FAILURE_SENSOR = "run_failure_notification"
HELD_BACK_SENSOR = "held_back_notification"
HOLD_CHECKS = ("deliveries_readable", "delivery_volume")  # the raw assets' checks that report held-back deliveries
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


def build_delivery_sensor(region: Region, *, nightly_job: dg.JobDefinition | UnresolvedAssetJobDefinition,
                          waitlist_job: dg.JobDefinition | UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """The sensor that starts runs for new deliveries of ``region``'s file sources.

    It takes the job definitions rather than their names: a Dagster sensor that requests runs of
    two jobs must be given both jobs as targets.
    """
    file_sources = {sid: s for sid, s in region.sources.items() if s.location.kind == "file"}

    @dg.sensor(
        name=DELIVERY_SENSOR,
        jobs=[nightly_job, waitlist_job],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Starts a run when a partner drops a new or changed file: waitlist_ingest for that municipality's "
            "partition, nightly for any other source. Off by default; the 01:30 and 02:00 schedules are the "
            "primary trigger (docs/runbook.md)."
        ),
    )
    def delivery_sensor(context: dg.SensorEvaluationContext, source_files: SourceFiles):
        root = Path(source_files.root)
        before = _load_cursor(context.cursor)
        seen: dict[str, _Seen] = {}
        new: dict[str | None, dict[str, str]] = defaultdict(dict)  # gemeente (None: nightly) -> file -> sha256
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
                    new[source.gemeente if source.dataset == WAITLIST_DATASET else None][name] = state.sha256
        requests = []
        for gemeente, files in sorted(new.items(), key=lambda item: item[0] or ""):
            job_name = nightly_job.name if gemeente is None else waitlist_job.name
            names = sorted(files)
            context.log.info(f"{job_name} {gemeente or ''}: {len(names)} new or changed delivery(ies): "
                             f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
            requests.append(dg.RunRequest(
                job_name=job_name,
                partition_key=gemeente,
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


def _error_class(error: SerializableErrorInfo | None) -> str:
    """The class of the innermost cause: what user code raised, not Dagster's wrapper around it."""
    if error is None:
        return "unknown"
    while error.cause is not None:
        error = error.cause
    return error.cls_name or "unknown"


def held_back_deliveries(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """The deliveries a run held back, from its failed hold checks (``HOLD_CHECKS``), in order."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    held = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.check_name in HOLD_CHECKS and not evaluation.passed and "held_back" in evaluation.metadata:
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
               "python -m pipelines.accept <source> --reason '...' (docs/runbook.md, 'A delivery was held back').")


def held_back_message(run: dg.DagsterRun, held: Sequence[dict], ui_base: str) -> tuple[str, str]:
    """Subject and body of the notification for a run that held deliveries back."""
    sources = sorted({hold["source_id"] for hold in held})
    lines = [f"Job: {run.job_name}", f"Run id: {run.run_id}"]
    if run.tags.get("dagster/partition"):
        lines.append(f"Partition: {run.tags['dagster/partition']}")
    lines += ["Held back (the night used the last good delivery instead):", *held_back_lines(held), "",
              ACCEPT_HINT, f"Open the run: {ui_base}/runs/{run.run_id}"]
    return (f"SWV pipeline: {len(held)} delivery(ies) held back, last good used: {', '.join(sources)}",
            "\n".join(lines))


def failure_message(run: dg.DagsterRun, failure_event: dg.DagsterEvent | None,
                    step_failures: Sequence[dg.DagsterEvent], ui_base: str,
                    held: Sequence[dict] = ()) -> tuple[str, str]:
    """Subject and body of the notification for a failed run: identifiers and classes only."""
    partition = run.tags.get("dagster/partition")
    where = f"{run.job_name} ({partition})" if partition else run.job_name
    steps: dict[str, str] = {}
    for event in step_failures:
        data = event.step_failure_data
        steps.setdefault(event.step_key or "?", _error_class(data.error) if data.error else "Failure")
    lines = [f"Job: {run.job_name}", f"Run id: {run.run_id}"]
    if partition:
        lines.append(f"Partition: {partition}")
    if steps:
        lines.append("Failed steps:")
        lines += [f"  - {step}: {error_class}" for step, error_class in sorted(steps.items())]
    else:
        run_error = failure_event.job_failure_data.error if failure_event and failure_event.job_failure_data else None
        lines.append(f"No step failed; the run itself failed: {_error_class(run_error)}")
    if held:
        lines += ["Held back (the last good delivery was used instead):", *held_back_lines(held)]
    lines += [f"Open the run: {ui_base}/runs/{run.run_id}", "", PRIVACY_NOTE]
    return f"SWV pipeline: run failed: {where}", "\n".join(lines)


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
