"""What a source would deliver, asked without pulling it: the files that match, whether an API answers.

For ``swv check``: a delivered file is read as the night reads it (``read_file_delivery``), so its
header and rows are judged by the same code; an API is only asked for its headers (one HEAD request,
no retries, the source's own timeouts), with the token when one is configured. Nothing here returns
a delivered value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from connectors.deliveries import DeliveryError
from connectors.files import read_file_delivery
from settings.region import FileLocation, HttpLocation


@dataclass(frozen=True)
class FileRead:
    """One matching file: its name, rows and delivered column names, or why it cannot be read."""

    name: str
    modified: float
    rows: int = 0
    columns: tuple[str, ...] = ()
    problem: str | None = None


def matching_files(root: Path, location: FileLocation) -> list[Path]:
    """The files a source's glob matches: what the night reads (uploads in progress and lock files skipped)."""
    return sorted(p for p in root.glob(location.path) if p.is_file() and not p.name.startswith((".", "~$")))


def read_files(root: Path, location: FileLocation) -> list[FileRead]:
    """Every matching file read as the night reads it; a file that cannot be read says why."""
    reads = []
    for path in matching_files(root, location):
        name = path.relative_to(root).as_posix()
        try:
            delivery = read_file_delivery(path, location.format, name=name)
        except DeliveryError as error:
            reads.append(FileRead(name, path.stat().st_mtime, problem=str(error)))
            continue
        columns = tuple(c for c in delivery.frame.columns if c != "delivery_row")
        reads.append(FileRead(name, path.stat().st_mtime, len(delivery.frame), columns))
    return reads


@dataclass(frozen=True)
class Answer:
    """An API's answer to a HEAD request: the HTTP status, or why there was none."""

    status: int | None
    problem: str | None = None

    @property
    def refused_token(self) -> bool:
        return self.status in (401, 403)


def ask(location: HttpLocation, environ: Mapping[str, str] = os.environ) -> Answer:
    """One HEAD request to the source's URL with its token (if set); any HTTP status means it answers."""
    auth, headers = location.auth, {}
    token = environ.get(auth.token_env) if auth else None
    if token:
        headers = {"Authorization": f"Bearer {token}"} if auth.type == "bearer" else {auth.header: token}
    try:
        response = requests.head(location.url, headers=headers, allow_redirects=False,
                                 timeout=(location.connect_timeout_s, location.read_timeout_s))
    except requests.exceptions.Timeout:
        return Answer(None, f"no answer within {location.connect_timeout_s:g}+{location.read_timeout_s:g} s")
    except requests.exceptions.RequestException as error:
        return Answer(None, f"cannot connect ({type(error).__name__})")
    response.close()
    return Answer(response.status_code)
