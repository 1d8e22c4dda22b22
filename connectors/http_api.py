"""Partner JSON APIs pulled page by page into one text frame.

Transient failures (429, 500/502/503/504, timeouts, dropped connections) are retried by urllib3
with exponential backoff, honouring ``Retry-After``. Whatever still fails, and every answer that
cannot be trusted (not JSON, the wrong shape, too large, a pagination that never ends), rejects
the whole pull with a ``DeliveryError`` naming the URL and the page. Tokens reach the resource as
``dg.EnvVar`` (``connectors.secrets``: the UI shows only the variable's name), never appear in a
message, and never travel in clear: a pull over plain ``http://`` is refused except to this machine
(the demo and the tests), as are redirects.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
import os
from collections.abc import Iterable, Iterator, Mapping

import dagster as dg
import numpy as np
import pandas as pd
import requests
from pydantic import PrivateAttr
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Retry

from connectors.deliveries import Delivery, DeliveryError, text_column
from connectors.secrets import env_secrets, secret_value
from settings.region import HttpLocation, PagePagination, Source, secure_url

RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER_S = 60.0
CHUNK_BYTES = 64 * 1024


class _CappedRetry(Retry):
    """urllib3 Retry that honours Retry-After up to a minute: a partner asking for a day would stall the night."""

    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_AFTER_S)


def retry_policy(total: int, backoff_factor: float, method: str) -> Retry:
    """The retry policy of every partner call (pulls and uploads): 429 and 5xx, exponential backoff,
    Retry-After respected up to a minute; the final status is left to the caller to judge."""
    return _CappedRetry(
        total=total,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({method}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


class JsonApi(dg.ConfigurableResource):
    """Pulls every page of a partner's JSON API as one delivery (``HttpLocation`` in the region YAML).

    Page-number pagination stops at the first page shorter than ``page_size``, so ``page_size``
    must not exceed what the API is willing to return per page.
    """

    tokens: dict[str, str] = {}  # auth.token_env -> the token, as dg.EnvVar(token_env)

    _session: requests.Session | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, sources: Iterable[Source]) -> JsonApi:
        """The tokens of every HTTP source with ``auth``, as far as their variables are set."""
        return cls(tokens=env_secrets(s.location.auth.token_env for s in sources
                                      if isinstance(s.location, HttpLocation) and s.location.auth))

    def fetch(self, location: HttpLocation, *, name: str) -> Delivery:
        """Every record of every page; the fingerprint covers the raw page bodies in order."""
        if not secure_url(location.url):
            raise DeliveryError(f"{location.url}: refused: partner data and tokens go over https "
                                "(plain http only to 127.0.0.1 or localhost)")
        headers = _auth_headers(location, self.tokens)
        digest, size, records = hashlib.sha256(), 0, []
        session = self._session_for(location)
        try:
            for body, batch in _pages(session, location, headers, _proxies(location.url)):
                digest.update(body)
                size += len(body)
                records.extend(batch)
            frame = _frame(records)
        except DeliveryError as error:
            raise DeliveryError(str(error), delivery=name) from None
        except Exception as error:  # noqa: BLE001 - one partner's answer must never stop the night
            raise DeliveryError(f"{location.url}: cannot be read ({type(error).__name__} while reading the pages; "
                                "the pull is held back, please report it)", delivery=name) from None
        return Delivery(name=name, size=size, sha256=digest.hexdigest(), modified_at=None, frame=frame)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _session_for(self, location: HttpLocation) -> requests.Session:
        """The resource's one session, with this location's retry policy mounted on its URL."""
        if self._session is None:
            self._session = requests.Session()
            self._session.headers["Accept"] = "application/json"
            # The environment is read once per pull (``_proxies``), not by requests on every page: with
            # trust_env it scans os.environ for proxy settings on every request, a cost per page. What
            # trust_env gave besides the proxies is kept: a CA bundle from REQUESTS_CA_BUNDLE or
            # CURL_CA_BUNDLE; not ~/.netrc, whose credentials have no business with a partner API.
            self._session.trust_env = False
            self._session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        retry = retry_policy(location.max_retries, location.backoff_factor, "GET")
        replaced = self._session.adapters.get(location.url)
        if replaced is not None:
            replaced.close()
        self._session.mount(location.url, HTTPAdapter(max_retries=retry))
        return self._session


def _auth_headers(location: HttpLocation, tokens: Mapping[str, str]) -> dict[str, str]:
    auth = location.auth
    if auth is None:
        return {}
    token = secret_value(tokens.get(auth.token_env))
    if not token:
        raise DeliveryError(f"{location.url}: environment variable {auth.token_env} (the API token) is not set "
                            "where the code location loaded")
    return {"Authorization": f"Bearer {token}"} if auth.type == "bearer" else {auth.header: token}


def _proxies(url: str) -> dict[str, str]:
    """The proxy for ``url`` from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), as
    requests itself finds it."""
    return requests.utils.get_environ_proxies(url)


def _pages(session: requests.Session, location: HttpLocation, headers: dict,
           proxies: dict[str, str]) -> Iterator[tuple[bytes, list[dict]]]:
    """(raw body, records) per page until the pagination says done; a pagination that never ends is refused."""
    pagination = location.pagination
    cursor, seen_cursors, previous_body = None, set(), None
    for page in itertools.count(1):
        if page > location.max_pages:
            raise DeliveryError(
                f"{location.url}: more than max_pages={location.max_pages} pages; the pagination does not end"
            )
        params = {pagination.size_param: pagination.page_size}
        if isinstance(pagination, PagePagination):
            params[pagination.page_param] = pagination.first_page + page - 1
        elif cursor is not None:
            params[pagination.cursor_param] = cursor
        body = _get(session, location, params, headers, page, proxies)
        document = _document(body, location, page)
        batch = document[pagination.records_key]
        yield body, batch
        if isinstance(pagination, PagePagination):
            if len(batch) < pagination.page_size:
                return
            if body == previous_body:
                raise DeliveryError(
                    f"{location.url}: pagination loop: page {page} repeats page {page - 1} "
                    f"(the API ignores {pagination.page_param!r})"
                )
            previous_body = body
        else:
            cursor = document.get(pagination.next_cursor_key)
            if cursor is None or cursor == "":
                return
            if not isinstance(cursor, (str, int)) or cursor in seen_cursors:
                raise DeliveryError(
                    f"{location.url}: pagination loop: page {page} returns a "
                    f"{pagination.next_cursor_key!r} that is not a new cursor"
                )
            seen_cursors.add(cursor)


def _get(session: requests.Session, location: HttpLocation, params: dict, headers: dict, page: int,
         proxies: dict[str, str]) -> bytes:
    """One page's body after retries; redirects are refused so a token never travels to another host."""
    where = f"{location.url} page {page}"
    try:
        with session.get(
            location.url,
            params=params,
            headers=headers,
            proxies=proxies,
            timeout=(location.connect_timeout_s, location.read_timeout_s),
            stream=True,
            allow_redirects=False,
        ) as response:
            _check_status(response, location, page)
            return _read_limited(response, location.max_response_bytes, where)
    except requests.RequestException as error:
        raise DeliveryError(f"{where}: {_cause(error, location)} {_after(location.max_retries)}") from error


def _check_status(response: requests.Response, location: HttpLocation, page: int) -> None:
    status, where = response.status_code, f"{location.url} page {page}"
    if status in (401, 403):
        hint = f"; check the token in {location.auth.token_env}" if location.auth else ""
        raise DeliveryError(f"{where}: authentication failed (HTTP {status}){hint}")
    if 300 <= status < 400:
        raise DeliveryError(
            f"{where}: redirected (HTTP {status}) to {response.headers.get('Location')}; configure the final URL"
        )
    if status >= 400:
        retries = len(response.raw.retries.history) if response.raw.retries else 0
        raise DeliveryError(f"{where}: HTTP {status} {_after(retries)}")


def _read_limited(response: requests.Response, limit: int, where: str) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit``: by Content-Length or while streaming."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise DeliveryError(f"{where}: the response has {declared} bytes, more than max_response_bytes={limit}")
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            raise DeliveryError(f"{where}: the response exceeds max_response_bytes={limit}; stopped reading")
    return bytes(body)


def _after(retries: int) -> str:
    return f"after {retries} {'retry' if retries == 1 else 'retries'}"


def _cause(error: requests.RequestException, location: HttpLocation) -> str:
    """What went wrong, in words: urllib3 wraps the real reason in MaxRetryError.reason."""
    inner = error.args[0] if error.args else None
    reason = getattr(inner, "reason", inner)
    # NewConnectionError subclasses urllib3's TimeoutError for historical reasons: test it first.
    if isinstance(reason, NewConnectionError):
        return "connection failed (the server refused or could not be reached)"
    if isinstance(error, requests.Timeout) or isinstance(reason, Urllib3Timeout):
        return f"timed out (connect {location.connect_timeout_s} s, read {location.read_timeout_s} s)"
    return f"connection failed ({type(reason if isinstance(reason, Exception) else error).__name__})"


def _document(body: bytes, location: HttpLocation, page: int) -> dict:
    """The page as a JSON object whose ``records_key`` holds a list of objects."""
    key = location.pagination.records_key
    where = f"{location.url} page {page}"
    if not body.strip():
        raise DeliveryError(f"{where}: the response is empty (expected a JSON object)")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DeliveryError(f"{where}: the response is not valid UTF-8 (byte {error.start + 1}); JSON must be UTF-8") \
            from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if text.lstrip()[:1] == "<":
            raise DeliveryError(f"{where}: the response is HTML or XML, not JSON (an error page?)") from None
        raise DeliveryError(f"{where}: the response is not valid JSON ({error.msg} at line {error.lineno}, "
                            f"column {error.colno})") from None
    except RecursionError:
        raise DeliveryError(f"{where}: the response is nested too deeply to be read as JSON") from None
    if not isinstance(document, dict):
        raise DeliveryError(f"{where}: expected a JSON object with a list of objects under {key!r}, got a "
                            f"{_json_kind(document)}")
    records = document.get(key)
    if key not in document:
        raise DeliveryError(f"{where}: the JSON object has no {key!r} (pagination.records_key); it has "
                            f"{sorted(document)[:10]}")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        kind = _json_kind(records) if not isinstance(records, list) else "list with something else than objects"
        raise DeliveryError(f"{where}: expected a list of objects under {key!r}, got a {kind}")
    reserved = next((f for r in records for f in r if f == "delivery_row"), None)
    if reserved:
        raise DeliveryError(f"{where}: a record has a field named {reserved!r}, a name the pipeline reserves")
    return document


def _json_kind(value: object) -> str:
    return {dict: "JSON object", list: "JSON list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "number")


def _frame(records: list[dict]) -> pd.DataFrame:
    """Records as text columns, in the order fields first appear; a field a record lacks is NA."""
    fields = list(dict.fromkeys(itertools.chain.from_iterable(records)))  # a record iterates over its fields
    if all(len(record) == len(fields) for record in records):
        # Every record has every field (the usual API page): a C-level pass per field picks its values.
        values = (list(map(operator.itemgetter(f), records)) for f in fields)
    else:
        values = ([record.get(f) for record in records] for f in fields)
    frame = pd.DataFrame(
        {f: text_column(column) for f, column in zip(fields, values)},
        index=range(len(records)),
    )
    frame["delivery_row"] = np.arange(1, len(records) + 1)
    return frame
