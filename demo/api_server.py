"""A real HTTP server that plays the region's partner APIs, faults included.

Every ``kind: http`` source of the region is served on the path of its URL (so the base in
``${SWV_DEMO_API}`` can be anything) from ``<api_dir>/<source_id>.json``, a JSON list of records,
with that source's pagination and authentication. A fault plan per route makes the server answer
the way real partner APIs misbehave (rate limits, outages, HTML error pages, endless cursors, slow
or huge answers), so the demo and the tests exercise the connector's retries and protections.

    python -m demo.api_server --port 8765 --faults '{"wachtlijst_westerveld": {"rate_limit_every": 7}}'

The expected token of a source is read from its ``token_env`` when the server starts
(``demo-token`` when unset): start the server and the pipeline with the same environment.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from settings.paths import region_file, var_layout
from settings.region import HttpLocation, PagePagination, Region, load_region

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "demo-token"
MAX_PAGE_SIZE = 1000
OVERSIZED_BYTES = 128 * 2**20  # more than the connector's default max_response_bytes (50 MB)


@dataclass(frozen=True)
class FaultPlan:
    """How one route misbehaves; the default plan behaves. ``*_every=N``: every Nth request to the route."""

    rate_limit_every: int = 0  # 429 with Retry-After
    unavailable_every: int = 0  # 503 without Retry-After, so the client's own backoff applies
    retry_after_s: int = 1
    html_error: bool = False  # 200 with an HTML page, as a proxy or login wall would answer
    loop_cursor: bool = False  # cursor pagination hands out the same cursor forever
    delay_s: float = 0.0  # sleep before answering, for timeouts
    status: int | None = None  # always answer with this status
    oversized: bool = False  # a body of OVERSIZED_BYTES, streamed without Content-Length


@dataclass
class _Route:
    source_id: str
    location: HttpLocation
    token: str
    faults: FaultPlan = field(default_factory=FaultPlan)
    requests: int = 0


class DemoApiServer:
    """The region's HTTP sources on ``host:port`` (0: a free port); a context manager that serves in a thread.

    ``faults`` maps a source id (or the path it is served on) to a fault plan, e.g.
    ``{"wachtlijst_westerveld": {"rate_limit_every": 7, "unavailable_every": 11}}``.
    """

    def __init__(
        self,
        region: Region,
        api_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        self.api_dir = Path(api_dir)
        self._routes: dict[str, _Route] = {}
        for source_id, source in region.sources.items():
            location = source.location
            if location.kind != "http":
                continue
            path = urlsplit(location.url).path
            if path in self._routes:
                raise ValueError(f"sources {self._routes[path].source_id} and {source_id} share the path {path}")
            token = (os.environ.get(location.auth.token_env) or DEFAULT_TOKEN) if location.auth else ""
            self._routes[path] = _Route(source_id, location, token)
        self._lock = threading.Lock()
        for key, plan in (faults or {}).items():
            self.set_faults(key, **plan)
        self._stopping = threading.Event()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.demo = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def paths(self) -> dict[str, str]:
        """Source id -> the path it is served on."""
        return {route.source_id: path for path, route in self._routes.items()}

    def set_faults(self, key: str, **plan: object) -> None:
        """Replace the fault plan of a route (by source id or path) and restart its request count."""
        route = self._route(key)
        with self._lock:
            route.faults = FaultPlan(**plan)
            route.requests = 0

    def request_count(self, key: str) -> int:
        """Requests the route has answered since its fault plan was last set (retries included)."""
        return self._route(key).requests

    def start(self) -> DemoApiServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping for delay_s
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> DemoApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _count(self, route: _Route) -> tuple[int, FaultPlan]:
        with self._lock:
            route.requests += 1
            return route.requests, route.faults

    def _route(self, key: str) -> _Route:
        for path, route in self._routes.items():
            if key in (path, route.source_id):
                return route
        raise KeyError(f"{key!r} is neither an http source id nor a served path: {self.paths}")


class _Server(ThreadingHTTPServer):
    demo: DemoApiServer

    def handle_error(self, request, client_address) -> None:
        # A client that gives up (timeout, oversized body) closes its end mid-answer: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the connector's session pools connections
    timeout = 10  # seconds an idle kept-alive connection holds its thread
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't wait for an ACK in between

    def do_GET(self) -> None:
        demo = self.server.demo
        url = urlsplit(self.path)
        route = demo._routes.get(url.path)
        if route is None:
            self._json(404, {"error": f"no source is served on {url.path}", "paths": list(demo._routes)})
            return
        number, faults = demo._count(route)
        if faults.delay_s and demo._stopping.wait(faults.delay_s):
            return  # the server is stopping: drop the connection
        if faults.status is not None:
            self._json(faults.status, {"error": f"injected HTTP {faults.status}"})
        elif faults.rate_limit_every and number % faults.rate_limit_every == 0:
            self._json(429, {"error": "too many requests"}, {"Retry-After": str(faults.retry_after_s)})
        elif faults.unavailable_every and number % faults.unavailable_every == 0:
            self._json(503, {"error": "service unavailable"})
        elif not self._authorised(route.location, route.token):
            self._json(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        elif faults.html_error:
            self._send(200, b"<!DOCTYPE html><html><body><h1>Onderhoud</h1></body></html>", "text/html; charset=utf-8")
        elif faults.oversized:
            self._stream_oversized()
        else:
            self._page(route, faults, {k: v[-1] for k, v in parse_qs(url.query).items()})

    def _authorised(self, location: HttpLocation, token: str) -> bool:
        auth = location.auth
        if auth is None:
            return True
        if auth.type == "bearer":
            return self.headers.get("Authorization") == f"Bearer {token}"
        return self.headers.get(auth.header) == token

    def _page(self, route: _Route, faults: FaultPlan, query: dict[str, str]) -> None:
        pagination = route.location.pagination
        try:
            records = json.loads((self.server.demo.api_dir / f"{route.source_id}.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._json(404, {"error": f"no records file for source {route.source_id}"})
            return
        try:
            size = min(max(int(query.get(pagination.size_param, pagination.page_size)), 1), MAX_PAGE_SIZE)
            if isinstance(pagination, PagePagination):
                page = int(query.get(pagination.page_param, pagination.first_page))
                start = (page - pagination.first_page) * size
            else:
                start = _offset(query.get(pagination.cursor_param))
        except ValueError as error:
            self._json(400, {"error": f"bad query parameter: {error}"})
            return
        batch = records[max(start, 0) : max(start, 0) + size]
        if isinstance(pagination, PagePagination):
            body = {pagination.records_key: batch, "page": page, pagination.size_param: size, "total": len(records)}
        else:
            if faults.loop_cursor:
                following: str | None = _cursor(size)
            else:
                following = _cursor(start + size) if start + size < len(records) else None
            body = {pagination.records_key: batch, pagination.next_cursor_key: following}
        self._json(200, body)

    def _stream_oversized(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk = b" " * 2**20
        self.wfile.write(b'{"padding": "')
        for _ in range(OVERSIZED_BYTES // len(chunk)):
            self.wfile.write(chunk)

    def _json(self, status: int, body: object, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode("utf-8"), "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not one this server handed out") from None
    if kind != "offset":
        raise ValueError("cursor is not one this server handed out")
    return int(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.api_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", type=Path, default=region_file(), help="region YAML (default: %(default)s)")
    parser.add_argument(
        "--api-dir", type=Path, default=var_layout().root / "demo_api", help="folder with <source_id>.json record files"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--faults", type=json.loads, default={}, help='JSON: {"<source_id>": {"rate_limit_every": 7, ...}}'
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        server = DemoApiServer(load_region(args.region), args.api_dir, args.host, args.port, faults=args.faults)
    except (KeyError, TypeError) as error:  # an unknown source id or fault name
        parser.error(f"--faults: {error}")
    with server:
        for source_id, path in server.paths.items():
            log.info("%s%s  <- %s/%s.json", server.url, path, args.api_dir, source_id)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
