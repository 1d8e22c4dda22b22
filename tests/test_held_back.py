"""Deliveries held back: the volume guard, one last good delivery per source, acceptance, notification.

A region file with two sources (a PO board's CSV files and a waitlist API on 127.0.0.1) and the raw
asset materialized in process, night after night, on a temporary instance and SQLite warehouse.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from assets.bronnen.ingest import build_raw_assets, volume_problem
from connectors.delivery_holds import DeliveryHolds
from connectors.files import SourceFiles
from connectors.http_api import JsonApi
from connectors.lake import RawSnapshots
from connectors.region_config import RegionConfig
from connectors.warehouse import Warehouse
from pipelines.commands import accept
from settings.region import load_region

HEADER = "BSN;Schooljaar;Vestiging"
ROWS = [f"{bsn};2026-2027;04PP00" for bsn in ("111222333", "123456782", "100000009", "100000010", "999999990")]


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"data": self.server.records}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.records = [{"bsn": "111222333", "gemeente": "GM0118", "aangemeld": "2026-03-01"}] * 3
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def region_file(tmp_path: Path, port: int, path: str = "/wachtlijst", **volume) -> Path:
    document = {
        "swv": {"code": "VO2203", "naam": "Test"},
        "gemeenten": [{"code": "GM0118", "naam": "Hoogeveen"}],
        "sources": {
            "po_besturen": {
                "dataset": "po_transfers", "partner": "PO-besturen",
                "location": {"kind": "file", "path": "po/*.csv", "format": {"type": "csv", "delimiter": ";"}},
                "columns": {"BSN": "bsn", "Schooljaar": "schooljaar", "Vestiging": "po_brin6"},
                **({"volume": volume} if volume else {}),
            },
            "wachtlijst_api": {
                "dataset": "youth_care_waitlist", "partner": "Gemeente Hoogeveen", "gemeente": "GM0118",
                "location": {"kind": "http", "url": f"http://127.0.0.1:{port}{path}", "max_retries": 0,
                             "pagination": {"type": "page", "page_size": 100}},
                "columns": {"bsn": "bsn", "gemeente": "woongemeente_code", "aangemeld": "aanmelddatum"},
            },
        },
    }
    target = tmp_path / "region.yaml"
    target.write_text(yaml.safe_dump(document))
    return target


class World:
    def __init__(self, tmp_path: Path, api, **volume):
        self.tmp_path, self.api = tmp_path, api
        self.region_path = region_file(tmp_path, api.server_address[1], **volume)
        self.sources = tmp_path / "sources"
        self.warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
        self.snapshots = RawSnapshots(root=str(tmp_path / "lake"))
        self.instance = dg.DagsterInstance.ephemeral()

    def deliver(self, name: str, rows: list[str]) -> None:
        path = self.sources / "po" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")

    def night(self, dataset: str = "po_transfers", *, region_path: Path | None = None):
        region = load_region(region_path or self.region_path)
        assets = [a for a in build_raw_assets(region) if a.key.path[0] == f"{dataset}_raw"]
        resources = {"region_config": RegionConfig(path=str(region_path or self.region_path)),
                     "source_files": SourceFiles(root=str(self.sources)), "json_api": JsonApi(),
                     "raw_snapshots": self.snapshots, "warehouse": self.warehouse,
                     "lake_io_manager": dg.mem_io_manager}
        return dg.materialize(assets, resources=resources, instance=self.instance)

    def raw(self, result, dataset: str = "po_transfers") -> pd.DataFrame:
        return result.output_for_node(f"{dataset}_raw")

    def checks(self, result) -> dict[str, dg.AssetCheckEvaluation]:
        return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def world(tmp_path, api):
    return World(tmp_path, api)


def test_a_header_only_delivery_is_held_back_and_the_last_good_one_is_used(world):
    world.deliver("bestuur_a.csv", ROWS)
    world.deliver("bestuur_b.csv", ROWS[:2])
    world.night()
    world.deliver("bestuur_a.csv", [])

    result = world.night()

    raw = world.raw(result)
    assert sorted(raw.groupby("delivery").size().items()) == [("po/bestuur_a.csv", 5), ("po/bestuur_b.csv", 2)]
    check = world.checks(result)["delivery_po_besturen"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    [held] = check.metadata["held_back"].value
    assert held["delivery"] == "po/bestuur_a.csv" and held["kind"] == "volume"
    assert "no data rows, fewer than the minimum of 1" in held["reason"]
    assert held["kept"].startswith("po/bestuur_a.csv (5 rows")


def test_a_sharp_drop_is_held_back_and_a_small_one_is_not(world):
    world.deliver("bestuur_a.csv", ROWS)
    world.night()
    world.deliver("bestuur_a.csv", ROWS[:3])  # 40 % fewer: within the default max_drop of 50 %
    assert world.checks(world.night())["delivery_po_besturen"].passed
    world.deliver("bestuur_a.csv", ROWS[:1])  # 67 % fewer than the last good (3 rows)

    result = world.night()

    assert len(world.raw(result)) == 3
    [held] = world.checks(result)["delivery_po_besturen"].metadata["held_back"].value
    assert "1 rows where the last good delivery had 3: 67% fewer, more than volume.max_drop 50%" in held["reason"]


def test_the_volume_limits_come_from_the_region_file(tmp_path, api):
    world = World(tmp_path, api, min_rows=3, max_drop=1)
    world.deliver("bestuur_a.csv", ROWS[:2])
    result = world.night()
    assert "2 data row(s), fewer than the minimum of 3" in world.checks(result)["delivery_po_besturen"].description
    source = load_region(world.region_path).sources["po_besturen"]
    assert volume_problem(0, 1000, source) is not None and volume_problem(3, 1000, source) is None


def test_a_steward_accepts_a_real_drop_and_the_next_run_takes_exactly_that_delivery(world, monkeypatch, capsys):
    monkeypatch.setenv("SWV_WAREHOUSE_URL", world.warehouse.url)
    world.deliver("bestuur_a.csv", ROWS)
    world.night()
    world.deliver("bestuur_a.csv", [])
    world.night()

    assert accept.main([]) == 0
    listed = capsys.readouterr().out
    assert "po_besturen  po/bestuur_a.csv  [volume]" in listed and "swv accept po_besturen" in listed
    assert accept.main(["po_besturen", "--reason", "school gesloten", "--by", "steward"]) == 0
    accepted = capsys.readouterr().out
    assert "Accepted po_besturen po/bestuur_a.csv (0 rows where the last good delivery had 5)" in accepted

    result = world.night()
    assert world.raw(result).empty and world.checks(result)["delivery_po_besturen"].passed
    holds = DeliveryHolds(world.warehouse.engine).holds(open_only=False)
    assert holds[["accepted_by", "acceptance_reason"]].values.tolist() == [["steward", "school gesloten"]]
    world.deliver("bestuur_a.csv", [])  # the same empty delivery again: the accepted low volume stands
    assert world.checks(world.night())["delivery_po_besturen"].passed
    assert accept.main(["po_besturen", "--reason", "x"]) == 1, "nothing left to accept"


def test_a_source_whose_api_url_changed_falls_back_on_one_pull_only(world, api, tmp_path):
    world.night("youth_care_waitlist")
    (tmp_path / "moved").mkdir()
    moved = region_file(tmp_path / "moved", api.server_address[1], path="/v2/wachtlijst")
    api.records = []  # the API at its new address answers with nobody: held back
    result = world.night("youth_care_waitlist", region_path=moved)
    raw = world.raw(result, "youth_care_waitlist")
    assert len(raw) == 3 and raw["delivery"].nunique() == 1, "one last good pull, never one per URL"
    assert [k.delivery for k in world.snapshots.last_good("wachtlijst_api")] == [
        f"http://127.0.0.1:{api.server_address[1]}/wachtlijst"]


def test_an_unreadable_file_is_held_back_alone_and_the_other_files_are_read(world):
    world.deliver("bestuur_a.csv", ROWS)
    world.deliver("bestuur_b.csv", ROWS[:2])
    world.night()
    (world.sources / "po" / "bestuur_b.csv").write_bytes(b"BSN;Schooljaar\r\n\xff\xfe\x00")
    world.deliver("bestuur_c.csv", ROWS[2:])

    result = world.night()

    assert sorted(world.raw(result).groupby("delivery").size().items()) == [
        ("po/bestuur_a.csv", 5), ("po/bestuur_b.csv", 2), ("po/bestuur_c.csv", 3)]
    [held] = world.checks(result)["delivery_po_besturen"].metadata["held_back"].value
    assert held["delivery"] == "po/bestuur_b.csv" and "po/bestuur_b.csv" in held["reason"]


def test_a_delivery_that_stopped_coming_is_flagged_as_a_warning(world):
    world.deliver("bestuur_a.csv", ROWS)
    world.deliver("bestuur_b.csv", ROWS[:1])
    world.night()
    (world.sources / "po" / "bestuur_b.csv").unlink()
    check = world.checks(world.night())["delivery_po_besturen"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["not_delivered_tonight"].value == [
        {"source_id": "po_besturen", "delivery": "po/bestuur_b.csv", "rows": 1}]


# --------------------------------------------------------------------------- the steward is told


def test_a_held_back_delivery_reaches_the_steward_by_email_and_webhook_although_the_run_succeeded(world, notifier,
                                                                                                  smtp, webhook):
    from pipelines.sensors import HELD_BACK_SENSOR, held_back_notification

    world.deliver("bestuur_a.csv", ROWS)
    world.night()
    world.deliver("bestuur_a.csv", [])
    result = world.night()
    assert result.success

    context = dg.build_run_status_sensor_context(
        sensor_name=HELD_BACK_SENSOR, dagster_event=result.get_run_success_event(),
        dagster_instance=world.instance, dagster_run=result.dagster_run, resources={"notifier": notifier})
    held_back_notification(context)

    [mail] = smtp.messages
    assert mail["Subject"] == "SWV pipeline: 1 delivery(ies) held back, last good used: po_besturen"
    body = mail.get_content()
    assert "  - po_besturen: po/bestuur_a.csv" in body
    assert "reason (volume): po/bestuur_a.csv: no data rows, fewer than the minimum of 1" in body
    assert "kept instead: po/bestuur_a.csv (5 rows" in body
    assert "swv accept" in body
    [post] = webhook.posts
    assert "po/bestuur_a.csv" in post["json"]["text"] and "kept instead" in post["json"]["body"]
    for sent in (body, post["json"]["text"]):
        assert "111222333" not in sent


def test_a_run_without_held_back_deliveries_sends_nothing(world, notifier, smtp, webhook):
    from pipelines.sensors import HELD_BACK_SENSOR, held_back_notification

    world.deliver("bestuur_a.csv", ROWS)
    result = world.night()
    context = dg.build_run_status_sensor_context(
        sensor_name=HELD_BACK_SENSOR, dagster_event=result.get_run_success_event(),
        dagster_instance=world.instance, dagster_run=result.dagster_run, resources={"notifier": notifier})
    held_back_notification(context)
    assert smtp.messages == [] and webhook.posts == []


@pytest.fixture
def smtp():
    from tests.test_failure_notification import SmtpReceiver, _serving

    server = _serving(SmtpReceiver())
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook():
    from tests.test_failure_notification import WebhookReceiver, _serving

    server = _serving(WebhookReceiver())
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def notifier(smtp, webhook):
    from connectors.notify import Notifier

    return Notifier(smtp_host="127.0.0.1", smtp_port=smtp.server_address[1], smtp_from="pipeline@swv.example",
                    smtp_to=["steward@swv.example"], webhook_url=f"http://127.0.0.1:{webhook.server_address[1]}/h",
                    timeout_s=5)

