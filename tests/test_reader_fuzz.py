"""Fuzzing the readers with mutated real deliveries: whatever the bytes, a delivery is read or rejected.

Real deliveries of every format come from the demo generator (a PO board's Windows-1252 CSV, a
waitlist's UTF-8 CSV with BOM, a waitlist workbook, an API page); hypothesis flips, inserts and
deletes bytes (favouring the ones parsers trip over: quotes, delimiters, line ends, NUL, byte-order
marks), truncates them, or does the same inside the workbook's sheet XML. The reader must return the
rows as text or raise a ``DeliveryError`` that names the file or URL: never another exception, which
would stop the night, and not the readers' last resort for an error nobody foresaw (a message
with "in the reader"): every cause is said in plain words.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets.bronnen.ingest import to_canonical
from connectors.deliveries import DeliveryError
from connectors.files import read_file_delivery
from connectors.http_api import JsonApi
from tests.conftest import DEMO_REGION

SPECIAL = [b'"', b";", b",", b"\r", b"\n", b"\r\n", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"\t", b"\x1a",
           b"<", b"&", b"{", b"]", b"\\", b"\xe9", b"\xc3"]
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory):
    from demo.generate import generate_region
    from settings.region import load_region

    root = tmp_path_factory.mktemp("fuzz")
    region = load_region(DEMO_REGION)
    generate_region(region, root / "sources", root / "truth.json", seed=3, pupils=100)
    return region, root


edits = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]), st.floats(0, 1),
              st.one_of(st.sampled_from(SPECIAL), st.binary(min_size=1, max_size=6))),
    min_size=1, max_size=5)


def mutated(data: bytes, changes) -> bytes:
    data = bytearray(data)
    for kind, where, payload in changes:
        at = int(where * len(data)) if data else 0
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] ^= payload[0] or 0xFF
        elif kind == "insert":
            data[at:at] = payload
        elif kind == "delete":
            del data[at:at + len(payload) * 3]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


def read_or_reject(path: Path, source, name: str) -> None:
    """What ingest does with a file: read it and map it onto the canonical fields, or reject it by name."""
    try:
        delivery = read_file_delivery(path, source.location.format, name=name)
    except DeliveryError as error:
        assert str(error).startswith(name), error
        assert error.delivery == name
        assert "in the reader" not in str(error), error
        return
    assert str(delivery.frame["delivery_row"].dtype) == "int64"
    assert all(str(delivery.frame[c].dtype) == "str" for c in delivery.frame.columns if c != "delivery_row")
    try:
        frame = to_canonical(delivery, "fuzz", source, "2026-10-05T02:00:00+00:00")
    except DeliveryError as error:
        assert name in str(error), error
        return
    assert len(frame) == len(delivery.frame)


def _file_case(deliveries, source_id: str, pattern: str):
    region, root = deliveries
    path = sorted((root / "sources").glob(pattern), key=lambda p: -p.stat().st_size)[0]
    return region.sources[source_id], path.read_bytes()


@FUZZ
@given(changes=edits)
def test_a_mutated_windows_1252_csv_is_read_or_rejected_by_name(deliveries, tmp_path_factory, changes):
    source, data = _file_case(deliveries, "po_overdracht", "po/*.csv")
    path = tmp_path_factory.mktemp("po") / "bestuur.csv"
    path.write_bytes(mutated(data, changes))
    read_or_reject(path, source, "po/bestuur.csv")


@FUZZ
@given(changes=edits)
def test_a_mutated_utf8_csv_with_bom_is_read_or_rejected_by_name(deliveries, tmp_path_factory, changes):
    source, data = _file_case(deliveries, "wachtlijst_steenwijkerland", "jeugdhulp/steenwijkerland/*.csv")
    path = tmp_path_factory.mktemp("sw") / "wachtlijst.csv"
    path.write_bytes(mutated(data, changes))
    read_or_reject(path, source, "jeugdhulp/steenwijkerland/wachtlijst.csv")


@FUZZ
@given(changes=edits, inside=st.booleans())
def test_a_mutated_workbook_is_read_or_rejected_by_name(deliveries, tmp_path_factory, changes, inside):
    source, data = _file_case(deliveries, "wachtlijst_meppel", "jeugdhulp/meppel/*.xlsx")
    if inside:  # the sheet's XML changed, the package intact
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            parts = {name: package.read(name) for name in package.namelist()}
        sheet = next(name for name in parts if name.startswith("xl/worksheets/"))
        parts[sheet] = mutated(parts[sheet], changes)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as package:
            for name, content in parts.items():
                package.writestr(name, content)
        data = buffer.getvalue()
    else:
        data = mutated(data, changes)
    path = tmp_path_factory.mktemp("mp") / "wachtlijst.xlsx"
    path.write_bytes(data)
    read_or_reject(path, source, "jeugdhulp/meppel/wachtlijst.xlsx")


class _Body(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def api_page():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Body)
    server.body = b""
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@FUZZ
@given(changes=edits)
def test_a_mutated_api_page_is_read_or_rejected_by_url(deliveries, api_page, changes):
    region, root = deliveries
    source = region.sources["mbo_vva"]
    records = json.loads((root / "sources" / "api" / "mbo_vva.json").read_text(encoding="utf-8"))
    api_page.body = mutated(json.dumps({"results": records[:20]}).encode(), changes)
    url = f"http://127.0.0.1:{api_page.server_address[1]}/vva"
    location = source.location.model_copy(update={
        "url": url, "auth": None, "max_retries": 0,
        "pagination": source.location.pagination.model_copy(update={"page_size": 1000})})
    try:
        delivery = JsonApi().fetch(location, name=url)
    except DeliveryError as error:
        assert str(error).startswith(url), error
        assert "while reading the pages" not in str(error), error
        return
    try:
        to_canonical(delivery, "mbo_vva", source, "2026-10-05T02:00:00+00:00")
    except DeliveryError as error:
        assert url in str(error)
