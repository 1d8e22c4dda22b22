"""Delivering exports: verifiable manifests, atomic folders, checked uploads, the export log, retention."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.gemeenten.export_assets import build_export_assets, deliver, write_export
from assets.gemeenten.retention import (
    purge,
    purge_alert_history,
    purge_exports,
    purge_raw_snapshots,
    years_before,
)
from connectors.export_log import ExportedFile, ExportLog, UploadedFile
from connectors.lake import KeptDelivery, LakeIOManager, RawSnapshots
from connectors.outbox import Outbox
from connectors.region_config import RegionConfig
from connectors.secrets import ExportKeys
from connectors.upload import ExportUploads, UploadError
from settings.region import Exports, Gemeente, RetentionPeriods, UploadTarget
from tests.conftest import DEMO_REGION, PROJECT
from tests.test_exports import E, REGION_POOL, Pupil, build_inputs, export_for

TOKEN_ENV = "SWV_TEST_UPLOAD_TOKEN"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def export():
    pupils = [Pupil(home="GM0118", wait="wacht", reasons=("V16",), po=True), Pupil(home="GM0118", by_bsn=False),
              Pupil(home="GM0119")]
    return export_for(build_inputs(pupils, REGION_POOL[:2]), "GM0118")


# -- manifest and atomic folders -------------------------------------------------------------------


def test_the_manifest_lists_every_file_with_its_true_sha256_and_rows(tmp_path, export):
    written = write_export(export, Outbox(root=str(tmp_path)))
    manifest = json.loads((written.folder / "manifest.json").read_text(encoding="utf-8"))
    assert written.folder == tmp_path / "gemeenten" / "GM0118" / "2026-10-05"
    assert set(manifest["files"]) == {p.name for p in written.folder.iterdir() if p.name != "manifest.json"}
    for name, entry in manifest["files"].items():
        assert sha256((written.folder / name).read_bytes()) == entry["sha256"], name
    assert manifest["files"]["monitoring.csv"]["rows"] == 2
    assert (manifest["periode"], manifest["schema_version"], manifest["gemeente"]) == ("2026-10-05", "1.0", "GM0118")
    assert set(manifest["grondslag"]) >= {"monitoring", "aggregaten"}


def test_only_the_configured_formats_are_written_and_the_manifest_names_them(tmp_path, export):
    written = write_export(export, Outbox(root=str(tmp_path)), ["parquet"])
    manifest = json.loads((written.folder / "manifest.json").read_text(encoding="utf-8"))
    assert {p.suffix for p in written.folder.iterdir() if p.name != "manifest.json"} == {".parquet", ".txt"}
    assert set(manifest["files"]) == {"monitoring.parquet", "datadictionary.parquet", "legenda.txt",
                                      *(f"{name}.parquet" for name in export.aggregates)}
    assert manifest["formaten"] == ["parquet"]


def test_an_unchanged_export_is_not_rewritten(tmp_path, export):
    outbox = Outbox(root=str(tmp_path))
    first = write_export(export, outbox)
    stamp = (first.folder / "manifest.json").stat().st_mtime_ns
    assert write_export(export, outbox).changed is False
    assert (first.folder / "manifest.json").stat().st_mtime_ns == stamp


KILLED_WRITER = r"""
import pickle, sys, time
import connectors.outbox as outbox
from assets.gemeenten.export_assets import write_export

export = pickle.loads(open(sys.argv[1], "rb").read())
finish = outbox.atomic_write_bytes
count = 0

def write_then_hang_on_the_third_file(target, data):
    global count
    count += 1
    if count == 3:
        with outbox.atomic_path(target) as tmp:
            tmp.write_bytes(data[: len(data) // 2])
            print("half written", flush=True)
            time.sleep(120)  # killed here
    finish(target, data)

outbox.atomic_write_bytes = write_then_hang_on_the_third_file
write_export(export, outbox.Outbox(root=sys.argv[2]))
"""


def test_a_killed_export_leaves_no_partial_file_and_the_next_run_completes_it(tmp_path, export, monkeypatch):
    export.files  # render once, so the subprocess writes exactly these bytes
    pickled = tmp_path / "export.pickle"
    pickled.write_bytes(pickle.dumps(export))
    root = tmp_path / "outbox"
    monkeypatch.setenv("SWV_VAR_DIR", str(tmp_path / "var"))
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(pickled), str(root)], cwd=PROJECT,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    try:
        assert writer.stdout.readline().strip() == "half written"
    finally:
        writer.kill()
        writer.wait()
    folder = root / "gemeenten" / "GM0118" / "2026-10-05"
    visible = sorted(p.name for p in folder.iterdir())
    assert len(visible) == 2 and "manifest.json" not in visible, "nothing half-written, hidden or not, beside the files"
    for name in visible:
        assert (folder / name).read_bytes() == export.files[name][0], f"{name} is incomplete"
    scratch = tmp_path / "var" / "tmp"
    assert len(list(scratch.iterdir())) == 1, "the half-written file waits in the scratch folder"

    write_export(export, Outbox(root=str(root)))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(p.name for p in folder.iterdir()) == sorted([*export.files, "manifest.json"])
    for name, entry in manifest["files"].items():
        assert sha256((folder / name).read_bytes()) == entry["sha256"]
    assert list(scratch.iterdir()) == [], "the next writer removed what the killed one left"


# -- a real receiver on 127.0.0.1 -------------------------------------------------------------------


@dataclass
class Receiver:
    """What the test receiver got and how it should misbehave."""

    token: str = "upload-secret"
    received: dict[str, bytes] = field(default_factory=dict)
    fail_first: int = 0  # answer 503 to this many requests first
    wrong_checksum_on: set[int] = field(default_factory=set)  # request numbers answered with a wrong sha256
    requests: int = 0


class _ReceiverHandler(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        receiver: Receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        receiver.requests += 1
        if self.headers.get("Authorization") != f"Bearer {receiver.token}":
            return self._answer(401, {"error": "unauthorised"})
        if receiver.fail_first > 0:
            receiver.fail_first -= 1
            return self._answer(503, {"error": "busy"})
        receiver.received[self.path] = body
        digest = sha256(body + b"corrupted" if receiver.requests in receiver.wrong_checksum_on else body)
        self._answer(201, {"sha256": digest})

    def _answer(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    """A receiver on 127.0.0.1 that answers with the sha256 of what it received."""
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ReceiverHandler)
    server.receiver = state
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/gemeente"
    yield state
    server.shutdown()
    server.server_close()


def target(receiver: Receiver, **options) -> UploadTarget:
    return UploadTarget(url=receiver.url, token_env=TOKEN_ENV, backoff_factor=0, **options)


def uploads(receiver: Receiver, token: str | None = None) -> ExportUploads:
    """The uploads resource with the receiver's token, as the definitions give it (``from_env``)."""
    return ExportUploads(tokens={TOKEN_ENV: token or receiver.token})


def test_upload_sends_every_file_and_the_receiver_confirms_its_checksum(tmp_path, export, receiver):
    written = write_export(export, Outbox(root=str(tmp_path)))
    names = [*written.files, "manifest.json"]
    with uploads(receiver).uploader(target(receiver)) as uploader:
        receipts = [uploader.upload_file(written.folder / name, "2026-10-05") for name in names]
    assert [r.file for r in receipts] == names
    for receipt in receipts:
        sent = (written.folder / receipt.file).read_bytes()
        assert receiver.received[f"/gemeente/2026-10-05/{receipt.file}"] == sent
        assert receipt.receiver_sha256 == receipt.sha256 == sha256(sent)


def test_a_checksum_mismatch_fails_the_upload(tmp_path, export, receiver):
    receiver.wrong_checksum_on = {1}
    written = write_export(export, Outbox(root=str(tmp_path)))
    with uploads(receiver).uploader(target(receiver)) as uploader, \
            pytest.raises(UploadError, match="checksum mismatch"):
        uploader.upload_file(written.folder / "monitoring.csv", "2026-10-05")


def test_a_busy_receiver_is_retried(tmp_path, export, receiver):
    receiver.fail_first = 2
    written = write_export(export, Outbox(root=str(tmp_path)))
    with uploads(receiver).uploader(target(receiver, max_retries=3)) as uploader:
        receipt = uploader.upload_file(written.folder / "monitoring.csv", "2026-10-05")
    assert receiver.requests == 3 and receipt.receiver_sha256 == receipt.sha256


def test_a_receiver_that_stays_down_fails_after_the_retries(tmp_path, export, receiver):
    receiver.fail_first = 10
    written = write_export(export, Outbox(root=str(tmp_path)))
    with uploads(receiver).uploader(target(receiver, max_retries=2)) as uploader, \
            pytest.raises(UploadError, match="503"):
        uploader.upload_file(written.folder / "monitoring.csv", "2026-10-05")
    assert receiver.requests == 3


def test_a_wrong_token_is_reported_with_its_variable(tmp_path, export, receiver):
    written = write_export(export, Outbox(root=str(tmp_path)))
    with uploads(receiver, token="not-the-token").uploader(target(receiver)) as uploader, \
            pytest.raises(UploadError, match=TOKEN_ENV):
        uploader.upload_file(written.folder / "monitoring.csv", "2026-10-05")


def test_a_missing_token_names_its_variable(receiver, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    resource = ExportUploads.from_env([target(receiver)])
    assert resource.tokens == {}
    with pytest.raises(UploadError, match=TOKEN_ENV):
        resource.uploader(target(receiver))


def test_the_upload_token_is_an_environment_variable_by_name(receiver, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, receiver.token)
    [(name, token)] = ExportUploads.from_env([target(receiver)]).tokens.items()
    assert name == TOKEN_ENV and isinstance(token, dg.EnvVar) and token.env_var_name == TOKEN_ENV


def test_plain_http_is_refused_except_on_this_machine():
    assert UploadTarget(url="http://127.0.0.1:9/x/").url == "http://127.0.0.1:9/x"
    assert UploadTarget(url="http://localhost:9/x").url == "http://localhost:9/x"
    with pytest.raises(ValueError, match="https"):
        UploadTarget(url="http://gemeente.example.nl/upload")


# -- the export log (SQLite) ----------------------------------------------------------------------


@pytest.fixture
def log(tmp_path) -> ExportLog:
    log = ExportLog(f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
    log.create()
    return log


GENERATED = dt.datetime(2026, 10, 5, 2, 0, tzinfo=dt.UTC)


def test_every_exported_file_is_logged_once_with_its_legal_basis(log):
    files = [ExportedFile("monitoring.csv", 12, "a" * 64, "Wet passend onderwijs"),
             ExportedFile("aggregaat_per_school.csv", 3, "b" * 64, "geanonimiseerd")]
    assert log.record_export("GM0118", "gemeenten/GM0118/2026-10-05", files, GENERATED) == 2
    assert log.record_export("GM0118", "gemeenten/GM0118/2026-10-05", files, GENERATED) == 0
    rows = log.rows("GM0118")
    assert list(rows["file"]) == ["monitoring.csv", "aggregaat_per_school.csv"]
    assert list(rows["grondslag"]) == ["Wet passend onderwijs", "geanonimiseerd"]
    assert rows["uploaded_at"].isna().all()


def test_a_changed_file_is_logged_as_a_new_version(log):
    folder = "gemeenten/GM0118/2026-10-05"
    log.record_export("GM0118", folder, [ExportedFile("monitoring.csv", 12, "a" * 64, "g")], GENERATED)
    log.record_export("GM0118", folder, [ExportedFile("monitoring.csv", 13, "c" * 64, "g")], GENERATED)
    assert list(log.rows()["rows"]) == [12, 13]


def test_an_upload_confirmation_is_recorded_and_the_file_is_no_longer_pending(log):
    folder = "gemeenten/GM0118/2026-10-05"
    log.record_export("GM0118", folder, [ExportedFile("monitoring.csv", 12, "a" * 64, "g"),
                                         ExportedFile("manifest.json", 1, "d" * 64, "g")], GENERATED)
    log.record_upload("GM0118", folder, [UploadedFile("monitoring.csv", "a" * 64, "a" * 64, GENERATED)])
    row = log.rows().set_index("file").loc["monitoring.csv"]
    assert row["receiver_sha256"] == "a" * 64 and row["uploaded_at"] is not None
    assert log.not_uploaded("GM0118", folder, {"monitoring.csv": "a" * 64, "manifest.json": "d" * 64}) == [
        "manifest.json"]


def test_after_a_failed_upload_the_next_run_sends_only_what_was_not_confirmed(tmp_path, export, receiver, log):
    written = write_export(export, Outbox(root=str(tmp_path)))
    folder = "gemeenten/GM0118/2026-10-05"
    receiver.wrong_checksum_on = {5}
    with pytest.raises(UploadError, match="checksum mismatch"):
        deliver(export, written, log, folder, target(receiver), uploads(receiver))
    assert deliver(export, written, log, folder, target(receiver), uploads(receiver)) == {"logged": 0, "uploaded": 16}
    assert receiver.requests == 5 + 16


def test_deliver_logs_uploads_and_does_not_send_a_confirmed_file_twice(tmp_path, export, receiver, log):
    written = write_export(export, Outbox(root=str(tmp_path)))
    folder = "gemeenten/GM0118/2026-10-05"
    assert deliver(export, written, log, folder, target(receiver), uploads(receiver)) == {"logged": 20, "uploaded": 20}
    rows = log.rows("GM0118")
    assert (rows["receiver_sha256"] == rows["sha256"]).all()
    assert rows.set_index("file").loc["monitoring.csv", "grondslag"].startswith("Wet passend onderwijs")
    assert deliver(export, written, log, folder, target(receiver), uploads(receiver)) == {"logged": 0, "uploaded": 0}
    assert receiver.requests == 20


# -- the Dagster asset, end to end ----------------------------------------------------------------


@dataclass
class Warehouse:
    engine: sa.Engine


def _stubs(inputs) -> list[dg.AssetsDefinition]:
    def stub(name, frame):
        @dg.asset(name=name)
        def _stub() -> object:
            return frame
        return _stub

    return [stub(name, frame) for name, frame in vars(inputs).items()]


KEYS = ExportKeys(per_gemeente={"GM0118": "hoogeveen-test-key", "GM0119": "meppel-test-key"})


def _materialize(tmp_path, inputs, exports=None, only=(), keys=KEYS, uploads=ExportUploads()):
    gemeenten = [Gemeente(code="GM0118", naam="Hoogeveen"), Gemeente(code="GM0119", naam="Meppel")]
    facts, municipal, _ = build_export_assets(gemeenten, exports=exports, stale_sources=lambda context: ["vo_verzuim"])
    warehouse = Warehouse(sa.create_engine(f"sqlite:///{tmp_path / 'warehouse.sqlite'}"))
    result = dg.materialize(
        [*_stubs(inputs), facts, municipal], raise_on_error=False,
        run_config={"ops": {"municipal_exports": {"config": {"gemeenten": list(only)}}}},
        resources={"region_config": RegionConfig(path=str(DEMO_REGION), evaluation_date=E.isoformat()),
                   "outbox": Outbox(root=str(tmp_path / "outbox")), "warehouse": warehouse,
                   "export_keys": keys, "export_uploads": uploads,
                   "lake_io_manager": LakeIOManager(root=str(tmp_path / "lake"))},
    )
    return result, warehouse


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_the_asset_writes_logs_and_uploads_one_municipality(tmp_path, receiver):
    inputs = build_inputs([Pupil(home="GM0118", wait="wacht"), Pupil(home="GM0119")], REGION_POOL[:2])
    exports = Exports(upload={"GM0118": target(receiver)})
    result, warehouse = _materialize(tmp_path, inputs, exports, only=["GM0118"], uploads=uploads(receiver))
    assert result.success
    [materialization] = result.asset_materializations_for_node("municipal_exports")
    metadata = materialization.metadata
    assert metadata["dagster/row_count"].value == 1
    [facts] = result.asset_materializations_for_node("export_facts")
    described = {c.name: c.description for c in facts.metadata["dagster/column_schema"].schema.columns}
    assert "nooit gepubliceerd" in described["pupil_key"] and described["wachttijd_weken"]
    assert metadata["verouderde_bronnen"].value == ["vo_verzuim"]
    folder = tmp_path / "outbox" / "gemeenten" / "GM0118" / "2026-10-05"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["verouderde_bronnen"] == ["vo_verzuim"]
    rows = ExportLog(warehouse.engine).rows("GM0118")
    assert len(rows) == len(manifest["files"]) + 1 and (rows["receiver_sha256"] == rows["sha256"]).all()
    assert receiver.received["/gemeente/2026-10-05/manifest.json"] == (folder / "manifest.json").read_bytes()
    checks = _checks(result)
    assert checks["export_GM0118"].passed
    assert not checks["export_GM0119"].passed and "not exported in this run" in checks["export_GM0119"].description
    # the UI's check page says whose export it is, name beside code
    assert checks["export_GM0119"].description.startswith("Meppel: ")
    assert checks["export_GM0118"].metadata["gemeente"].value == "Hoogeveen (GM0118)"


class RecordingUploads(ExportUploads):
    """A receiver on disk instead of HTTP: each file sent is named in ``<log>`` in order; the manifest
    can be refused. (Dagster builds the resource afresh for a run: what it records goes to a file.)"""

    log: str
    refuse_manifest: bool = False

    def uploader(self, target: UploadTarget) -> _RecordingUploader:
        return _RecordingUploader(Path(self.log), self.refuse_manifest)

    def sent(self) -> list[str]:
        path = Path(self.log)
        return path.read_text().split() if path.exists() else []


@dataclass
class _RecordingUploader:
    log: Path
    refuse_manifest: bool

    def __enter__(self) -> _RecordingUploader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def upload_file(self, path: Path, remote_folder: str) -> UploadedFile:
        if self.refuse_manifest and path.name == "manifest.json":
            raise UploadError(f"upload of {path.name}: HTTP 503")
        with self.log.open("a") as log:
            log.write(f"{remote_folder}/{path.name}\n")
        digest = sha256(path.read_bytes())
        return UploadedFile(path.name, digest, digest, dt.datetime(2026, 10, 5, 3, tzinfo=dt.UTC))


def test_the_uploads_resource_can_be_swapped_and_a_failed_upload_fails_that_municipality_after_writing(tmp_path):
    inputs = build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])
    exports = Exports(upload={"GM0118": UploadTarget(url="https://upload.hoogeveen.example/swv")})
    refusing = RecordingUploads(log=str(tmp_path / "first.txt"), refuse_manifest=True)
    result, warehouse = _materialize(tmp_path, inputs, exports, uploads=refusing)
    check = _checks(result)["export_GM0118"]
    assert not check.passed and "written and logged, upload failed" in check.description
    assert _checks(result)["export_GM0119"].passed
    assert refusing.sent() and "2026-10-05/manifest.json" not in refusing.sent()
    confirmed = set(ExportLog(warehouse.engine).rows("GM0118").dropna(subset=["receiver_sha256"])["file"])
    assert confirmed == {name.split("/")[-1] for name in refusing.sent()}

    recording = RecordingUploads(log=str(tmp_path / "second.txt"))
    result, _ = _materialize(tmp_path, inputs, exports, uploads=recording)
    assert result.success and recording.sent() == ["2026-10-05/manifest.json"]  # only what was not confirmed


def test_the_asset_writes_only_the_configured_formats(tmp_path):
    inputs = build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])
    result, _ = _materialize(tmp_path, inputs, Exports(formats=["csv"]))
    assert result.success
    folder = tmp_path / "outbox" / "gemeenten" / "GM0118" / "2026-10-05"
    assert {p.suffix for p in folder.iterdir()} == {".csv", ".json", ".txt"}  # the legend goes along
    assert _checks(result)["export_GM0118"].metadata["upload"].value == "not configured"


def test_a_missing_key_fails_only_that_municipalitys_check_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("SWV_EXPORT_KEY_GM0119", raising=False)
    monkeypatch.setenv("SWV_EXPORT_KEY_GM0118", "hoogeveen-test-key")
    inputs = build_inputs([Pupil(home="GM0118"), Pupil(home="GM0119")], REGION_POOL[:2])
    keys = ExportKeys.from_env(["GM0118", "GM0119"])
    assert list(keys.per_gemeente) == ["GM0118"] and keys.per_gemeente["GM0118"].env_var_name == "SWV_EXPORT_KEY_GM0118"
    result, _ = _materialize(tmp_path, inputs, keys=keys)
    assert result.success
    checks = _checks(result)
    assert not checks["export_GM0119"].passed
    assert checks["export_GM0119"].severity == dg.AssetCheckSeverity.ERROR
    assert "SWV_EXPORT_KEY_GM0119" in checks["export_GM0119"].description
    assert not (tmp_path / "outbox" / "gemeenten" / "GM0119").exists()
    assert checks["export_GM0118"].passed
    assert (tmp_path / "outbox" / "gemeenten" / "GM0118" / "2026-10-05" / "manifest.json").exists()


def test_a_municipality_that_already_has_tonights_export_passes_when_another_is_re_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SWV_EXPORT_KEY_GM0118", "hoogeveen-test-key")
    monkeypatch.setenv("SWV_EXPORT_KEY_GM0119", "meppel-test-key")
    inputs = build_inputs([Pupil(home="GM0118"), Pupil(home="GM0119")], REGION_POOL[:2])
    assert _materialize(tmp_path, inputs)[0].success
    result, _ = _materialize(tmp_path, inputs, only=["GM0119"])
    checks = _checks(result)
    assert checks["export_GM0119"].passed and checks["export_GM0119"].metadata["rows"].value == 1
    assert checks["export_GM0118"].passed and "not exported in this run" in checks["export_GM0118"].description


def test_an_unknown_municipality_in_the_run_configuration_fails_the_run(tmp_path):
    inputs = build_inputs([Pupil(home="GM0118")], REGION_POOL[:2])
    result, _ = _materialize(tmp_path, inputs, only=["GM9999"])
    assert not result.success


# -- retention ---------------------------------------------------------------------------------------


def _aged(path: Path, stored: dt.date, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    moment = dt.datetime.combine(stored, dt.time(12), dt.UTC).timestamp()
    os.utime(path, (moment, moment))
    return path


def test_raw_snapshots_older_than_their_period_are_removed_and_younger_ones_kept(tmp_path):
    raw = tmp_path / "raw"
    old_absence = _aged(raw / "vo_verzuim" / "aaa.parquet", dt.date(2021, 10, 4))
    kept_absence = _aged(raw / "vo_verzuim" / "bbb.parquet", dt.date(2021, 10, 5))
    old_transfer = _aged(raw / "po_overdracht" / "ccc.parquet", dt.date(2024, 10, 4))
    kept_transfer = _aged(raw / "po_overdracht" / "ddd.parquet", dt.date(2024, 10, 6))
    snapshots = RawSnapshots(root=str(tmp_path))
    state = [KeptDelivery("po/a.csv", "ccc", 1, "2024-10-04T02:00:00+00:00"),
             KeptDelivery("po/b.csv", "ddd", 1, "2024-10-06T02:00:00+00:00")]
    snapshots.keep("po_overdracht", state)
    cutoffs = {"vo_verzuim": years_before(E, 5), "po_overdracht": years_before(E, 2)}
    removed = purge_raw_snapshots(raw, cutoffs, years_before(E, 2))
    assert sorted(removed) == sorted([old_absence, old_transfer])
    assert kept_absence.exists() and kept_transfer.exists()
    assert snapshots.last_good("po_overdracht") == state[1:], "no fallback on data past its retention"


def test_export_folders_older_than_a_year_are_removed(tmp_path):
    root = tmp_path / "gemeenten"
    for day in ("2025-10-04", "2025-10-05", "2026-10-05"):
        (root / "GM0118" / day).mkdir(parents=True)
        (root / "GM0118" / day / "monitoring.csv").write_text("x")
    (root / "GM0118" / "notes").mkdir()
    removed = purge_exports(root, E - dt.timedelta(days=365))
    assert removed == [root / "GM0118" / "2025-10-04"]
    assert sorted(p.name for p in (root / "GM0118").iterdir()) == ["2025-10-05", "2026-10-05", "notes"]


def test_alerts_resolved_more_than_five_years_ago_are_removed_with_their_events(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    meta = sa.MetaData()
    alerts = sa.Table("alerts", meta, sa.Column("alert_id", sa.String, primary_key=True),
                      sa.Column("resolved_on", sa.Date))
    events = sa.Table("alert_events", meta, sa.Column("night", sa.Date), sa.Column("alert_id", sa.String))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(alerts.insert(), [{"alert_id": "old", "resolved_on": dt.date(2021, 10, 4)},
                                       {"alert_id": "recent", "resolved_on": dt.date(2021, 10, 5)},
                                       {"alert_id": "active", "resolved_on": None}])
        conn.execute(events.insert(), [{"night": dt.date(2020, 1, 6), "alert_id": "old"},
                                       {"night": dt.date(2021, 10, 4), "alert_id": "old"},
                                       {"night": dt.date(2021, 10, 5), "alert_id": "recent"},
                                       {"night": dt.date(2019, 1, 7), "alert_id": "active"}])
    assert purge_alert_history(engine, years_before(E, 5)) == {"alert_events": 2, "alerts": 1}
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(alerts.c.alert_id)).scalars()) == ["active", "recent"]
        assert sorted(conn.execute(sa.select(events.c.alert_id)).scalars()) == ["active", "recent"]


def test_alert_history_is_skipped_where_the_tables_do_not_exist(tmp_path):
    assert purge_alert_history(sa.create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}"), E) == {}


def test_a_source_missing_from_the_configuration_gets_the_shortest_period(tmp_path):
    raw = tmp_path / "raw"
    gone = _aged(raw / "old_source" / "eee.parquet", dt.date(2024, 10, 1))
    report = purge(evaluation_date=E, periods=RetentionPeriods(), raw_root=raw, exports_root=tmp_path / "gemeenten",
                   source_datasets={"vo_verzuim": "vo_absence"})
    assert report.raw == [gone]


def test_the_retention_asset_reports_what_it_removed(tmp_path):
    lake, outbox = tmp_path / "lake", tmp_path / "outbox"
    _aged(lake / "raw" / "vo_verzuim" / "aaa.parquet", dt.date(2020, 1, 1))
    (outbox / "gemeenten" / "GM0118" / "2024-01-01").mkdir(parents=True)
    periods = RetentionPeriods(exports_days=30)
    [_, _, retention] = build_export_assets([Gemeente(code="GM0118", naam="Hoogeveen")], retention=periods)
    assert retention.specs_by_key[dg.AssetKey("retention_purge")].metadata["periods"].data["exports_days"] == 30
    (outbox / "gemeenten" / "GM0118" / "2026-09-01").mkdir(parents=True)  # 34 days before E: past 30
    result = dg.materialize([retention], resources={
        "region_config": RegionConfig(path=str(DEMO_REGION), evaluation_date=E.isoformat()),
        "outbox": Outbox(root=str(outbox)), "raw_snapshots": RawSnapshots(root=str(lake)),
        "warehouse": Warehouse(sa.create_engine(f"sqlite:///{tmp_path / 'w.sqlite'}"))})
    metadata = result.asset_materializations_for_node("retention_purge")[0].metadata
    assert (metadata["raw_snapshots_removed"].value, metadata["export_folders_removed"].value) == (1, 2)
    assert "vo_verzuim/aaa.parquet" in metadata["removed"].value
    assert not (outbox / "gemeenten" / "GM0118" / "2024-01-01").exists()
