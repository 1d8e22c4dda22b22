"""The production lock is enough for a night, and holds nothing for tests, the demo or the benchmark.

What ``deploy/Dockerfile`` does, without a Docker engine: a fresh virtual environment gets exactly
the packages of ``requirements.lock`` (``--no-deps``) and finds the source tree through PYTHONPATH.
From it the code location must load and a small demo night must run; the deliveries and the partner
APIs come from this (development) environment, as partners would deliver them to a server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT, _service_missing
from tests.demo_region import VENV_BIN, demo_environment, generate_demo, serve_demo_api

pytestmark = pytest.mark.slow

DEVELOPMENT_ONLY = ("pytest", "hypothesis", "playwright", "faker")

NIGHT = """
import dagster as dg
from pipelines.definitions import build_definitions
from pipelines.night import run_night

with dg.DagsterInstance.get() as instance:
    result = run_night(build_definitions(), instance)
print("waitlists", sorted(result.waitlists.items()), "nightly", result.nightly.success,
      "exports", sorted(result.exports.items()))
raise SystemExit(0 if result.success and all(result.waitlists.values()) else 1)
"""


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=900, **options)


@pytest.fixture(scope="module")
def production_python(tmp_path_factory) -> Path:
    """A virtual environment with the production lock and nothing else; its python."""
    venv = tmp_path_factory.mktemp("production") / "venv"
    uv = VENV_BIN / "uv"
    made = _run([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)])
    assert made.returncode == 0, made.stderr
    installed = _run([str(uv), "pip", "install", "--quiet", "--no-deps", "-r", str(PROJECT / "requirements.lock")],
                     env={**os.environ, "VIRTUAL_ENV": str(venv)})
    if installed.returncode != 0:
        _service_missing("the package index (to install requirements.lock)", RuntimeError(installed.stderr[-2000:]))
    return venv / "bin" / "python"


def _environment(**settings: str) -> dict[str, str]:
    """This process's environment for a production process: the source tree on PYTHONPATH, as in the image."""
    return {**os.environ, "PYTHONPATH": str(PROJECT), **settings}


def test_the_production_lock_holds_no_test_demo_or_benchmark_package(production_python):
    probe = "import importlib.util as u; print(' '.join(m for m in %r if u.find_spec(m)))" % (DEVELOPMENT_ONLY,)
    found = _run([str(production_python), "-c", probe], cwd=PROJECT, env=_environment())
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []


def test_the_production_lock_installs_consistent_packages(production_python):
    checked = _run([str(VENV_BIN / "uv"), "pip", "check", "--python", str(production_python)])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_code_location_loads_from_the_production_lock(production_python, tmp_path):
    (tmp_path / "dagster").mkdir()
    command = [str(production_python), "-m", "dagster", "definitions", "validate", "-m", "pipelines.definitions"]
    validated = _run(command, cwd=PROJECT,
                     env=_environment(SWV_VAR_DIR=str(tmp_path / "var"), DAGSTER_HOME=str(tmp_path / "dagster")))
    assert validated.returncode == 0, validated.stdout[-3000:] + validated.stderr[-3000:]


def test_a_night_runs_from_the_production_lock(production_python, tmp_path):
    var = tmp_path / "var"
    with demo_environment(var) as environment:
        generate_demo(var)
        with serve_demo_api(var) as api:
            night = _run([str(production_python), "-c", NIGHT], cwd=PROJECT,
                         env={**environment, "PYTHONPATH": str(PROJECT), "SWV_DEMO_API": api})
    assert night.returncode == 0, night.stdout[-3000:] + night.stderr[-3000:]
    assert list((var / "outbox" / "overdracht").rglob("overdracht.csv"))
    assert len(list((var / "outbox" / "gemeenten").glob("GM*/*/manifest.json"))) == 5
