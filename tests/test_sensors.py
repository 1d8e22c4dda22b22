"""The delivery sensor asks for one run per new or changed delivery, keyed by the delivery's sha256."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from connectors.files import SourceFiles, read_file_delivery
from pipelines.definitions import build_definitions
from settings.region import load_region
from tests.conftest import DEMO_REGION

ENROLMENT = "vo/inschrijvingen_02AB00.csv"
HOOGEVEEN_WAITLIST = "jeugdhulp/hoogeveen/wachtlijst.csv"


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    folder = tmp_path / "sources"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def code_location(tmp_path_factory):
    """The sensor in the loaded code location, and a real temporary instance, as the daemon has them."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SWV_VAR_DIR", str(tmp_path_factory.mktemp("var")))
        defs = build_definitions(DEMO_REGION)
    sensor = defs.resolve_sensor_def("delivery_sensor")
    with dg.instance_for_test() as instance:
        yield sensor, defs, instance


@pytest.fixture
def tick(code_location, sources: Path):
    """One evaluation of the sensor over ``sources``, given the cursor of the previous one."""
    sensor, location, instance = code_location

    def evaluate(cursor: str | None = None):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=location,
                                          resources={"source_files": SourceFiles(root=str(sources))})
        return sensor.evaluate_tick(context)

    evaluate.sensor = sensor
    return evaluate


def deliver(sources: Path, name: str, content: bytes, *, minutes_ago: float = 10) -> Path:
    """A partner's file, finished writing ``minutes_ago``."""
    path = sources / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    stamp = time.time() - minutes_ago * 60
    os.utime(path, (stamp, stamp))
    return path


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


CSV = b"BSN;Vestiging;Leerjaar\n123456782;02AB00;1\n"


def test_a_new_file_asks_for_a_nightly_run_keyed_by_its_sha256(tick, sources):
    deliver(sources, ENROLMENT, CSV)
    result = tick()
    [request] = result.run_requests
    assert request.job_name == "nightly"
    assert request.run_key == sha256(CSV)


def test_the_run_key_is_the_fingerprint_the_raw_snapshot_is_named_by(tick, sources):
    path = deliver(sources, ENROLMENT, CSV)
    region = load_region(DEMO_REGION)
    delivery = read_file_delivery(path, region.sources["vo_inschrijvingen"].location.format, name=ENROLMENT)
    assert tick().run_requests[0].run_key == delivery.sha256


def test_the_same_file_again_asks_for_nothing(tick, sources):
    deliver(sources, ENROLMENT, CSV)
    first = tick()
    second = tick(first.cursor)
    assert second.run_requests == []
    assert second.skip_message == "no new or changed delivery"


def test_a_changed_file_asks_for_a_new_run(tick, sources):
    deliver(sources, ENROLMENT, CSV)
    first = tick()
    changed = CSV + b"111222333;02AB00;2\n"
    deliver(sources, ENROLMENT, changed, minutes_ago=5)
    [request] = tick(first.cursor).run_requests
    assert request.run_key == sha256(changed)


def test_a_waitlist_file_asks_for_a_waitlist_run(tick, sources):
    deliver(sources, HOOGEVEEN_WAITLIST, b"BSN;Gemeentecode\n123456782;GM0118\n")
    [request] = tick().run_requests
    assert request.job_name == "waitlist_ingest"


def test_deliveries_of_one_tick_share_one_run_per_job(tick, sources):
    deliver(sources, ENROLMENT, CSV)
    deliver(sources, "vo/verzuim_02AB00.csv", b"BSN;Week vanaf\n")
    deliver(sources, HOOGEVEEN_WAITLIST, b"BSN\n")
    deliver(sources, "jeugdhulp/steenwijkerland/wachtlijst.csv", b"bsn\n")
    requests = tick().run_requests
    assert sorted(r.job_name for r in requests) == ["nightly", "waitlist_ingest"]


def test_a_file_still_being_written_waits_until_it_has_settled(tick, sources):
    path = deliver(sources, ENROLMENT, CSV, minutes_ago=0)
    first = tick()
    assert first.run_requests == []
    stamp = time.time() - 120
    os.utime(path, (stamp, stamp))
    [request] = tick(first.cursor).run_requests
    assert request.run_key == sha256(CSV)


def test_an_unchanged_size_and_time_is_not_read_again(tick, sources):
    path = deliver(sources, ENROLMENT, CSV)
    first = tick()
    stat = path.stat()
    path.write_bytes(CSV.replace(b"1;", b"2;"))  # same size; the cached fingerprint is trusted
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert tick(first.cursor).run_requests == []


def test_uploads_in_progress_and_excel_lock_files_are_not_deliveries(tick, sources):
    deliver(sources, "vo/.inschrijvingen_02AB00.csv", CSV)
    deliver(sources, "jeugdhulp/meppel/~$wachtlijst.xlsx", b"lock")
    assert tick().run_requests == []


def test_the_sensor_is_off_by_default_and_looks_once_a_minute(tick):
    assert tick.sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert tick.sensor.minimum_interval_seconds == 60
