"""The JSON API connector against the real demo API server on 127.0.0.1: pagination, retries, protections."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import requests
from urllib3.response import HTTPResponse

from connectors.deliveries import DeliveryError
from connectors.http_api import MAX_RETRY_AFTER_S, JsonApi, retry_policy
from demo.api_server import DemoApiServer
from settings.region import HttpLocation, Region

PAGED_TOKEN = "paged-token-7f3a"
CURSOR_TOKEN = "cursor-token-91bc"

REGION = {
    "swv": {"code": "VO2203", "naam": "Test-SWV"},
    "gemeenten": [{"code": "GM1690", "naam": "De Wolden"}, {"code": "GM1701", "naam": "Westerveld"}],
    "sources": {
        "paged": {
            "dataset": "youth_care_waitlist",
            "gemeente": "GM1690",
            "partner": "Gemeente De Wolden",
            "location": {
                "kind": "http",
                # The base is never used: the server serves the path, the tests point at its port.
                "url": "http://partner.invalid/dewolden/api/v1/wachtlijst",
                "auth": {"type": "bearer", "token_env": "TEST_TOKEN_PAGED"},
                "pagination": {"type": "page", "page_size": 3, "records_key": "data"},
                "max_retries": 3,
                "backoff_factor": 0.001,
                "read_timeout_s": 5,
            },
            "columns": {"clientBsn": "bsn", "aanmelddatum": "aanmelddatum"},
        },
        "cursor": {
            "dataset": "youth_care_waitlist",
            "gemeente": "GM1701",
            "partner": "Gemeente Westerveld",
            "location": {
                "kind": "http",
                "url": "http://partner.invalid/westerveld/wachtlijst",
                "auth": {"type": "api_key", "token_env": "TEST_TOKEN_CURSOR", "header": "X-API-Key"},
                "pagination": {"type": "cursor", "page_size": 4, "records_key": "items", "next_cursor_key": "next"},
                "max_retries": 3,
                "backoff_factor": 0.001,
                "read_timeout_s": 5,
            },
            "columns": {"bsn": "bsn", "registeredOn": "aanmelddatum"},
        },
    },
}


def api(**tokens: str) -> JsonApi:
    """The connector with the tests' tokens, as the definitions give it the environment's (``from_env``)."""
    return JsonApi(tokens={"TEST_TOKEN_PAGED": PAGED_TOKEN, "TEST_TOKEN_CURSOR": CURSOR_TOKEN, **tokens})


def _records(prefix: str, count: int = 8) -> list[dict]:
    return [{prefix: f"{i:09d}", "aanmelddatum": f"2026-01-{i + 1:02d}", "volgnummer": i} for i in range(count)]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_TOKEN_PAGED", PAGED_TOKEN)
    monkeypatch.setenv("TEST_TOKEN_CURSOR", CURSOR_TOKEN)
    (tmp_path / "paged.json").write_text(json.dumps(_records("clientBsn")), encoding="utf-8")
    (tmp_path / "cursor.json").write_text(json.dumps(_records("bsn")), encoding="utf-8")
    with DemoApiServer(Region.model_validate(REGION), tmp_path) as running:
        yield running


def located(server: DemoApiServer, source_id: str, **changes: object) -> HttpLocation:
    """The source's location, pointed at the running server."""
    location = Region.model_validate(REGION).sources[source_id].location
    return location.model_copy(update={"url": server.url + server.paths[source_id], **changes})


def test_page_pagination_reads_every_page_in_order(server):
    delivery = api().fetch(located(server, "paged"), name="paged")
    assert delivery.frame["clientBsn"].tolist() == [f"{i:09d}" for i in range(8)]
    assert delivery.frame["delivery_row"].tolist() == list(range(1, 9))
    assert server.request_count("paged") == 3  # 3 + 3 + 2 records


def test_page_pagination_stops_at_an_empty_page(server, tmp_path):
    (tmp_path / "paged.json").write_text(json.dumps(_records("clientBsn", 6)), encoding="utf-8")
    delivery = api().fetch(located(server, "paged"), name="paged")
    assert len(delivery.frame) == 6
    assert server.request_count("paged") == 3  # 3 + 3 + 0 records


def test_cursor_pagination_follows_the_cursor_until_it_is_null(server):
    delivery = api().fetch(located(server, "cursor"), name="cursor")
    assert delivery.frame["bsn"].tolist() == [f"{i:09d}" for i in range(8)]
    assert delivery.frame["delivery_row"].tolist() == list(range(1, 9))
    assert server.request_count("cursor") == 2


def test_record_values_become_text(server, tmp_path):
    records = [
        {"clientBsn": "012345678", "n": 7, "x": 2.0, "y": 2.5, "actief": True, "leeg": None, "sub": {"a": [1, 2]}},
        {"clientBsn": " 111222333 ", "actief": False},
    ]
    (tmp_path / "paged.json").write_text(json.dumps(records), encoding="utf-8")
    frame = api().fetch(located(server, "paged"), name="paged").frame
    first, second = frame.iloc[0], frame.iloc[1]
    assert (first["clientBsn"], first["n"], first["x"], first["y"]) == ("012345678", "7", "2", "2.5")
    assert (first["actief"], second["actief"]) == ("true", "false")
    assert first["sub"] == '{"a":[1,2]}'
    assert pd.isna(first["leeg"]) and pd.isna(second["n"])
    assert second["clientBsn"] == "111222333"
    assert all(frame[c].dtype == "str" for c in frame.columns if c != "delivery_row")


def test_record_values_of_one_json_type_become_the_same_text(server, tmp_path):
    """Whole columns of numbers or flags take a vectorised path; the text is what ``text_value`` gives."""
    records = [{"clientBsn": f"{i:09d}", "niveau": [4, None, -2][i % 3], "diploma": [True, False, None][i % 3],
                "groot": 2**70 if i == 0 else 1, "mix": [1, True, 2.0][i % 3]} for i in range(6)]
    (tmp_path / "paged.json").write_text(json.dumps(records), encoding="utf-8")
    frame = api().fetch(located(server, "paged"), name="paged").frame
    assert frame["niveau"].fillna("-").tolist()[:3] == ["4", "-", "-2"]
    assert frame["diploma"].fillna("-").tolist()[:3] == ["true", "false", "-"]
    assert frame["groot"].tolist()[:2] == [str(2**70), "1"]
    assert frame["mix"].tolist()[:3] == ["1", "true", "2"]
    assert all(frame[c].dtype == "str" for c in frame.columns if c != "delivery_row")


class _ForwardProxy(BaseHTTPRequestHandler):
    """A forward proxy that refuses every request, remembering what it was asked and which headers came along."""

    seen: list[tuple[str, str, set[str]]] = []

    def _refuse(self) -> None:
        type(self).seen.append((self.command, self.path, {name.lower() for name in self.headers}))
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_CONNECT = do_GET = _refuse  # noqa: N815 (http.server's names)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def forward_proxy(monkeypatch):
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    _ForwardProxy.seen = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{proxy.server_address[1]}"
    proxy.shutdown()
    proxy.server_close()


def test_the_pull_goes_through_the_proxy_the_environment_names_and_the_token_stays_in_the_tunnel(
        forward_proxy, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy)
    # partner.invalid cannot be resolved: only the proxy could reach it (this one refuses the tunnel).
    location = Region.model_validate(REGION).sources["paged"].location.model_copy(
        update={"url": "https://partner.invalid/dewolden/api/v1/wachtlijst", "max_retries": 0})
    with pytest.raises(DeliveryError, match="connection failed"):
        api().fetch(location, name="paged")
    [(method, target, headers)] = _ForwardProxy.seen
    assert (method, target) == ("CONNECT", "partner.invalid:443")
    assert "authorization" not in headers  # the bearer token goes inside TLS, never to the proxy


def test_no_proxy_sends_the_pull_past_the_proxy(server, forward_proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", forward_proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    frame = api().fetch(located(server, "paged"), name="paged").frame
    assert len(frame) == 8 and not _ForwardProxy.seen


def test_rate_limit_is_retried(server):
    server.set_faults("cursor", rate_limit_every=2, retry_after_s=0)
    delivery = api().fetch(located(server, "cursor", backoff_factor=0), name="cursor")
    assert len(delivery.frame) == 8
    assert server.request_count("cursor") == 3  # page 1, a 429, page 2 again


def test_a_retry_waits_as_long_as_retry_after_asks_but_at_most_a_minute():
    policy = retry_policy(total=3, backoff_factor=0, method="GET")

    def asked(seconds: str) -> float | None:
        return policy.get_retry_after(HTTPResponse(status=429, headers={"Retry-After": seconds}))

    assert policy.respect_retry_after_header
    assert (asked("1"), asked("45"), asked("86400")) == (1, 45, MAX_RETRY_AFTER_S) and MAX_RETRY_AFTER_S == 60


def test_service_unavailable_is_retried_with_backoff(server):
    server.set_faults("paged", unavailable_every=2)
    delivery = api().fetch(located(server, "paged"), name="paged")
    assert len(delivery.frame) == 8
    assert server.request_count("paged") == 5  # three pages, a 503 before pages 2 and 3


def test_a_status_that_persists_after_the_retries_rejects_the_pull(server):
    server.set_faults("paged", status=503)
    location = located(server, "paged")
    with pytest.raises(DeliveryError, match="HTTP 503 after 3 retries") as error:
        api().fetch(location, name="paged")
    assert f"{location.url} page 1" in str(error.value)
    assert server.request_count("paged") == 4


def test_a_timeout_rejects_the_pull_after_the_retries(server):
    server.set_faults("paged", delay_s=2)
    location = located(server, "paged", read_timeout_s=0.1, max_retries=1)
    with pytest.raises(DeliveryError, match="timed out") as error:
        api().fetch(location, name="paged")
    assert f"{location.url} page 1" in str(error.value)
    assert server.request_count("paged") == 2


def test_an_unreachable_server_names_the_url(server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    location = located(server, "paged", url=f"http://127.0.0.1:{closed_port}/api", max_retries=1)
    with pytest.raises(DeliveryError, match=f"127.0.0.1:{closed_port}/api page 1: connection failed"):
        api().fetch(location, name="paged")


def test_a_wrong_token_fails_authentication_without_showing_the_token(server):
    location = located(server, "paged")
    with pytest.raises(DeliveryError, match="authentication failed") as error:
        api(TEST_TOKEN_PAGED="wrong-s3cret-token").fetch(location, name="paged")
    message = str(error.value)
    assert location.url in message and "TEST_TOKEN_PAGED" in message
    assert "s3cret" not in message and PAGED_TOKEN not in message
    assert server.request_count("paged") == 1  # never retried


def test_an_api_key_is_sent_in_the_configured_header(server):
    with pytest.raises(DeliveryError, match="authentication failed"):
        api(TEST_TOKEN_CURSOR=PAGED_TOKEN).fetch(located(server, "cursor"), name="cursor")


def test_the_tokens_are_environment_variables_by_name_and_an_unset_one_is_left_out(monkeypatch):
    monkeypatch.setenv("TEST_TOKEN_CURSOR", CURSOR_TOKEN)
    monkeypatch.delenv("TEST_TOKEN_PAGED", raising=False)
    tokens = JsonApi.from_env(Region.model_validate(REGION).sources.values()).tokens
    assert list(tokens) == ["TEST_TOKEN_CURSOR"]
    assert isinstance(tokens["TEST_TOKEN_CURSOR"], dg.EnvVar)
    assert tokens["TEST_TOKEN_CURSOR"].env_var_name == "TEST_TOKEN_CURSOR"


def test_a_missing_token_variable_is_named_and_nothing_is_sent(server, monkeypatch):
    monkeypatch.delenv("TEST_TOKEN_PAGED")
    with dg.build_resources({"json_api": JsonApi.from_env(Region.model_validate(REGION).sources.values())}) as run:
        with pytest.raises(DeliveryError, match="environment variable TEST_TOKEN_PAGED .* is not set"):
            run.json_api.fetch(located(server, "paged"), name="paged")
        assert server.request_count("paged") == 0
        assert len(run.json_api.fetch(located(server, "cursor"), name="cursor").frame) == 8  # the other one is pulled


def test_plain_http_to_another_machine_is_refused_before_anything_is_sent(forward_proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", forward_proxy)  # would carry the request if one were made
    location = Region.model_validate(REGION).sources["paged"].location
    with pytest.raises(DeliveryError, match="refused: partner data and tokens go over https"):
        api().fetch(location, name="paged")
    assert not _ForwardProxy.seen


def test_an_html_page_instead_of_json_names_the_url_and_page(server):
    server.set_faults("paged", html_error=True)
    location = located(server, "paged")
    with pytest.raises(DeliveryError, match="not JSON") as error:
        api().fetch(location, name="paged")
    assert f"{location.url} page 1" in str(error.value)


def test_json_without_the_records_key_is_the_wrong_shape(server):
    location = located(server, "paged")
    elsewhere = location.pagination.model_copy(update={"records_key": "items"})
    with pytest.raises(DeliveryError, match="the JSON object has no 'items'"):
        api().fetch(location.model_copy(update={"pagination": elsewhere}), name="paged")


def test_a_repeated_cursor_is_a_pagination_loop(server):
    server.set_faults("cursor", loop_cursor=True)
    location = located(server, "cursor")
    with pytest.raises(DeliveryError, match="pagination loop: page 2") as error:
        api().fetch(location, name="cursor")
    assert location.url in str(error.value)


def test_an_api_that_ignores_the_page_parameter_is_a_pagination_loop(server):
    location = located(server, "paged")
    ignored = location.pagination.model_copy(update={"page_param": "pagina"})
    with pytest.raises(DeliveryError, match="pagination loop: page 2 repeats page 1"):
        api().fetch(location.model_copy(update={"pagination": ignored}), name="paged")


def test_more_pages_than_max_pages_rejects_the_pull(server):
    with pytest.raises(DeliveryError, match="more than max_pages=2 pages"):
        api().fetch(located(server, "paged", max_pages=2), name="paged")


def test_an_oversized_streamed_body_is_cut_off(server):
    server.set_faults("paged", oversized=True)
    with pytest.raises(DeliveryError, match="exceeds max_response_bytes=100000; stopped reading"):
        api().fetch(located(server, "paged", max_response_bytes=100_000), name="paged")


def test_a_body_declared_larger_than_the_limit_is_not_read(server):
    with pytest.raises(DeliveryError, match=r"has \d+ bytes, more than max_response_bytes=100"):
        api().fetch(located(server, "paged", max_response_bytes=100), name="paged")


def test_identical_pulls_have_identical_fingerprints(server, tmp_path):
    connector = api()
    first = connector.fetch(located(server, "paged"), name="paged")
    second = connector.fetch(located(server, "paged"), name="paged")
    assert (first.sha256, first.size) == (second.sha256, second.size)
    assert first.modified_at is None
    (tmp_path / "paged.json").write_text(json.dumps(_records("clientBsn", 7)), encoding="utf-8")
    assert connector.fetch(located(server, "paged"), name="paged").sha256 != first.sha256


def test_the_demo_server_takes_fault_plans_by_source_id(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_TOKEN_CURSOR", CURSOR_TOKEN)
    (tmp_path / "cursor.json").write_text(json.dumps(_records("bsn")), encoding="utf-8")
    faults = {"cursor": {"rate_limit_every": 2, "retry_after_s": 0}}
    with DemoApiServer(Region.model_validate(REGION), tmp_path, faults=faults) as running:
        assert len(api().fetch(located(running, "cursor"), name="cursor").frame) == 8
        assert running.request_count("cursor") == 3


def test_the_demo_server_caps_the_page_size_at_1000(server, tmp_path):
    (tmp_path / "paged.json").write_text(json.dumps(_records("clientBsn", 1200)), encoding="utf-8")
    answer = requests.get(
        located(server, "paged").url,
        params={"page": 1, "per_page": 5000},
        headers={"Authorization": f"Bearer {PAGED_TOKEN}"},
        timeout=5,
    )
    assert len(answer.json()["data"]) == 1000


def test_the_connector_is_a_dagster_resource(server):
    location = located(server, "paged")

    @dg.asset
    def waitlist_rows(json_api: JsonApi) -> int:
        return len(json_api.fetch(location, name="paged").frame)

    result = dg.materialize([waitlist_rows], resources={"json_api": api()})
    assert result.output_for_node("waitlist_rows") == 8
