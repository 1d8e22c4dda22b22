"""Delivery of a municipality's export to its own receiver over HTTP, verified file by file.

Each file is sent with ``PUT <url>/<periode>/<file>`` (idempotent, so a retry cannot duplicate it),
with the bearer token from the environment variable the configuration names (never the token
itself) and our sha256 in ``X-Content-SHA256``. The receiver answers ``2xx`` with JSON
``{"sha256": "<hex of the bytes it received>"}``; a different or missing checksum is a failed
delivery. Transient failures (429, 500/502/503/504, dropped connections) are retried by urllib3
with exponential backoff, honouring ``Retry-After`` up to a minute; redirects are refused so a
token never travels to another host. Plain ``http://`` is accepted only for 127.0.0.1/localhost.

Configuration per municipality in the region file, ``exports.upload.<GMcode>: {url, token_env}``
(``settings.region.UploadTarget``, docs/exports.md, "Upload"). The tokens reach ``ExportUploads``, the
resource the export asset sends through, as ``dg.EnvVar`` (``connectors.secrets``); a test swaps the
resource for one that records or fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import requests
from requests.adapters import HTTPAdapter

from connectors.export_log import UploadedFile
from connectors.http_api import retry_policy
from connectors.secrets import env_secrets, secret_value
from settings.region import UploadTarget


class UploadError(RuntimeError):
    """A file could not be delivered, or the receiver did not confirm the bytes we sent."""


class ExportUploads(dg.ConfigurableResource):
    """Opens an ``ExportUploader`` to a municipality's receiver, with the token its target names."""

    tokens: dict[str, str] = {}  # token_env -> the token, as dg.EnvVar(token_env)

    @classmethod
    def from_env(cls, targets: Iterable[UploadTarget]) -> ExportUploads:
        return cls(tokens=env_secrets(t.token_env for t in targets if t.token_env))

    def uploader(self, target: UploadTarget) -> ExportUploader:
        """An open uploader (a context manager); a token that is not set is an ``UploadError`` naming it."""
        if target.token_env is None:
            return ExportUploader(target, token=None)
        token = secret_value(self.tokens.get(target.token_env))
        if not token:
            raise UploadError(f"{target.url}: environment variable {target.token_env} (the upload token) is not set")
        return ExportUploader(target, token=token)


class ExportUploader:
    """Uploads files to one target, one session with retries; use as a context manager."""

    def __init__(self, target: UploadTarget, token: str | None):
        self.target = target
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = requests.Session()
        retry = retry_policy(target.max_retries, target.backoff_factor, "PUT")
        self._session.mount(target.url, HTTPAdapter(max_retries=retry))

    def __enter__(self) -> ExportUploader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def upload_file(self, path: Path, remote_folder: str) -> UploadedFile:
        """PUT one file to ``<url>/<remote_folder>/<name>`` and check the receiver's sha256."""
        data = path.read_bytes()
        ours = hashlib.sha256(data).hexdigest()
        url = f"{self.target.url}/{quote(remote_folder)}/{quote(path.name)}"
        where = f"upload of {path.name} to {self.target.url}"
        try:
            response = self._session.put(
                url, data=data, allow_redirects=False,
                headers={**self._headers, "Content-Type": "application/octet-stream", "X-Content-SHA256": ours},
                timeout=(self.target.connect_timeout_s, self.target.read_timeout_s),
            )
        except requests.RequestException as error:
            raise UploadError(f"{where}: {type(error).__name__} after {self.target.max_retries} retries") from None
        if response.status_code in (401, 403):
            raise UploadError(f"{where}: refused (HTTP {response.status_code}); check the token in "
                              f"{self.target.token_env}")
        if not 200 <= response.status_code < 300:
            raise UploadError(f"{where}: HTTP {response.status_code}")
        theirs = _receiver_sha256(response)
        if theirs is None:
            raise UploadError(f"{where}: the receiver did not answer with the sha256 of what it received")
        if theirs != ours:
            raise UploadError(f"{where}: checksum mismatch: we sent sha256 {ours}, the receiver has {theirs}")
        return UploadedFile(file=path.name, sha256=ours, receiver_sha256=theirs,
                            uploaded_at=dt.datetime.now(dt.UTC).replace(microsecond=0))


def _receiver_sha256(response: requests.Response) -> str | None:
    try:
        document = response.json()
    except ValueError:
        return None
    value = document.get("sha256") if isinstance(document, dict) else None
    return value.lower() if isinstance(value, str) else None
