"""Dagster's webserver for the tests that look at what the UI shows: a free port, GraphQL, waiting
until the code location has loaded."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

LOCATION = "pipelines.definitions"
STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(base: str, query: str) -> dict:
    response = requests.post(f"{base}/graphql", json={"query": query}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]


def wait_for_code_location(base: str, server: subprocess.Popen, log: Path) -> None:
    """Until the webserver answers and the code location has loaded; a load error fails with its message."""
    query = """{ workspaceOrError { ... on Workspace { locationEntries { name
        locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the Dagster webserver exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            entries = graphql(base, query)["workspaceOrError"]["locationEntries"]
        except (requests.RequestException, KeyError, TypeError):
            entries = []
        for entry in entries:
            loaded = entry["locationOrLoadError"]
            if entry["name"] == LOCATION and loaded and loaded["__typename"] == "RepositoryLocation":
                return
            if entry["name"] == LOCATION and loaded and loaded["__typename"] == "PythonError":
                pytest.fail(f"the code location did not load: {loaded['message']}")
        time.sleep(1)
    pytest.fail(f"the webserver did not serve {LOCATION} within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
