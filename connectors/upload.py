"""Delivery of a municipality's export to its own receiver over HTTP, verified file by file.

Each file is sent with ``PUT <url>/<periode>/<file>`` (idempotent, so a retry cannot duplicate it),
with the bearer token from the environment variable the configuration names (never the token
itself) and our sha256 in ``X-Content-SHA256``. The receiver answers ``2xx`` with JSON
``{"sha256": "<hex of the bytes it received>"}``; a different or missing checksum is a failed
delivery. Transient failures (429, 500/502/503/504, dropped connections) are retried by urllib3
with exponential backoff, honouring ``Retry-After`` up to a minute; redirects are refused so a
token never travels to another host. Plain ``http://`` is accepted only for 127.0.0.1/localhost.

Configuration per municipality, ``{gemeente: {url, token_env}}`` (docs/exports.md, "Upload").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator
from requests.adapters import HTTPAdapter

from connectors.export_log import UploadedFile
from connectors.http_api import retry_policy

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class UploadError(RuntimeError):
    """A file could not be delivered, or the receiver did not confirm the bytes we sent."""


class UploadTarget(BaseModel):
    """Where one municipality receives its export."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL; files go to {url}/{periode}/{file}.")
    token_env: str | None = Field(default=None, description="Environment variable holding the bearer token.")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    backoff_factor: float = Field(default=0.5, ge=0)

    @field_validator("url")
    @classmethod
    def _secure(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value.rstrip("/")
        if parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS:
            return value.rstrip("/")
        raise ValueError(f"{value!r}: exports go over https (plain http only to 127.0.0.1 or localhost)")


def upload_targets(config: Mapping[str, Mapping | UploadTarget] | None) -> dict[str, UploadTarget]:
    """``{gemeente: {url, token_env, ...}}`` validated into targets (empty when not configured)."""
    return {gemeente: UploadTarget.model_validate(target) for gemeente, target in (config or {}).items()}


class ExportUploader:
    """Uploads files to one target, one session with retries; use as a context manager."""

    def __init__(self, target: UploadTarget, environ: Mapping[str, str] = os.environ):
        self.target = target
        self._headers = _auth_headers(target, environ)
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


def _auth_headers(target: UploadTarget, environ: Mapping[str, str]) -> dict[str, str]:
    if target.token_env is None:
        return {}
    token = environ.get(target.token_env, "")
    if not token:
        raise UploadError(f"{target.url}: environment variable {target.token_env} (the upload token) is not set")
    return {"Authorization": f"Bearer {token}"}


def _receiver_sha256(response: requests.Response) -> str | None:
    try:
        document = response.json()
    except ValueError:
        return None
    value = document.get("sha256") if isinstance(document, dict) else None
    return value.lower() if isinstance(value, str) else None
