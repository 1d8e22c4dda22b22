"""The night runner as an operator meets it: killed at any point, started twice, files left on disk.

A small demo region is generated once; its partner APIs are served on one port for the whole module
(API deliveries are named by their URL, so every night must pull from the same one). Each night runs
in a process of its own (``tests/night_process.py``), on a copy of the same starting folder, and one
uninterrupted night is the reference. Compared: every outbox file byte for byte (a manifest without
its ``generated_at`` moment) and every warehouse table without its wall-clock columns.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import DEMO_REGION, PROJECT
from tests.demo_region import LOCAL_PROFILE

pytestmark = pytest.mark.slow

PUPILS = 300
KILL_POINTS = ["ingest", "validation", "warehouse-commit", "handovers", "exports"]  # in the order a night reaches them
WALL_CLOCK = {"id", "first_seen", "last_seen", "resolved_at", "recorded_at", "generated_at", "uploaded_at",
              "first_held_at", "last_held_at"}


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """The starting folder (deliveries, instance profile), the environment of every night, and the API server."""
    from demo.__main__ import _demo_environment
    from demo.api_server import DemoApiServer
    from demo.generate import generate_region
    from settings.region import load_region

    root = tmp_path_factory.mktemp("nights")
    var = root / "start"
    (var / "dagster").mkdir(parents=True)
    (var / "dagster" / "dagster.yaml").write_text(LOCAL_PROFILE.read_text())
    region = load_region(DEMO_REGION)
    generate_region(region, var / "sources", var / "demo" / "truth.json", seed=7, pupils=PUPILS)
    saved = dict(os.environ)
    try:
        _demo_environment(region)  # the demo's tokens: the API server expects what the nights will send
        with DemoApiServer(region, var / "sources" / "api") as server:
            environment = {k: v for k, v in os.environ.items() if k.startswith("SWV_")}
            environment |= {"SWV_DEMO_API": server.url, "SWV_REGION_FILE": str(DEMO_REGION)}
            yield root, var, environment
    finally:
        os.environ.clear()
        os.environ.update(saved)


def night(start, name: str, *args: str, background: bool = False):
    """A night on a copy of the starting folder (or on the folder ``name`` if it exists): the process result."""
    root, clean_start, environment = start
    var = root / name
    if not var.exists():
        shutil.copytree(clean_start, var)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SWV_")}, **environment,
           "SWV_VAR_DIR": str(var), "DAGSTER_HOME": str(var / "dagster"), "PYTHONPATH": str(PROJECT)}
    env.pop("SWV_WAREHOUSE_URL", None)
    command = [sys.executable, "-m", "tests.night_process", *args]
    if background:
        return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def clean(start):
    result = night(start, "clean")
    assert result.returncode == 0, result.stderr[-3000:]
    return start[0] / "clean"


def outbox(var: Path) -> dict[str, object]:
    files = {}
    for path in sorted((var / "outbox").rglob("*")):
        if path.is_file():
            content: object = path.read_bytes()
            if path.name == "manifest.json":
                content = {k: v for k, v in json.loads(content).items() if k != "generated_at"}
            files[path.relative_to(var / "outbox").as_posix()] = content
    return files


def warehouse(var: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(var / "warehouse.sqlite") as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        content = {}
        for table in sorted(tables):
            columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")') if row[1] not in WALL_CLOCK]
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f'SELECT {quoted} FROM "{table}"').fetchall()
            if table == "export_log":  # a manifest's checksum covers its generated_at moment
                at, sha = columns.index("file"), columns.index("sha256")
                rows = [tuple("(manifest)" if i == sha and row[at] == "manifest.json" else v for i, v in enumerate(row))
                        for row in rows]
            content[table] = sorted(rows, key=repr)
    return content


def leftovers(var: Path) -> list[str]:
    """Temporary files anywhere, and hidden files beside the outputs."""
    found = [p for p in (var / "tmp").rglob("*") if p.is_file()] if (var / "tmp").exists() else []
    found += [p for p in (var / "lake" / "tmp").rglob("*") if p.is_file()] if (var / "lake" / "tmp").exists() else []
    for folder in ("outbox", "lake"):
        found += [p for p in (var / folder).rglob(".*")]
    return [str(p.relative_to(var)) for p in found]


def unfinished_runs(var: Path) -> list[str]:
    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(var / "dagster")  # the instance profile's storages read it
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING,
                                                             dg.DagsterRunStatus.STARTED]))
            return [f"{run.job_name} {run.run_id}" for run in runs]
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = saved


def test_a_night_killed_at_each_point_in_turn_and_run_again_ends_as_an_uninterrupted_night(start, clean):
    """Killed during ingest, validation, the pupil history's commit, the handovers and the exports: each
    night is killed at a later point than the one before (it redoes all before it), then one runs through."""
    var = start[0] / "killed"
    for point in KILL_POINTS:
        killed = night(start, "killed", "--kill-at", point)
        assert killed.returncode == -9, f"the night did not reach {point}: {killed.stderr[-2000:]}"
        assert unfinished_runs(var), f"killed at {point}, the night leaves a run STARTED"

    again = night(start, "killed")
    assert again.returncode == 0, again.stderr[-3000:]

    assert outbox(var) == outbox(clean)
    assert warehouse(var) == warehouse(clean), "no alert, quarantine entry or history row twice, none missing"
    assert leftovers(var) == []
    assert unfinished_runs(var) == []


def test_a_second_night_on_the_same_instance_is_refused_while_the_first_runs(start, clean):
    gate = start[0] / "gate"
    gate.mkdir()
    first = night(start, "two-nights", "--pause-at", "handovers", "--gate", str(gate), background=True)
    try:
        deadline = time.monotonic() + 300
        while not (gate / "paused").exists():
            assert first.poll() is None, first.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the first night never reached its handovers"
            time.sleep(0.2)
        second = night(start, "two-nights")
        assert second.returncode == 3
        assert "another night is running on this instance (pid" in second.stderr, second.stderr
    finally:
        (gate / "go").write_text("")
        first.wait(timeout=600)
    assert first.returncode == 0, first.stderr.read()[-3000:]
    var = start[0] / "two-nights"
    assert outbox(var) == outbox(clean)
    assert warehouse(var) == warehouse(clean)


def test_after_a_night_personal_data_on_disk_is_readable_by_its_owner_only(clean):
    loose = []
    for path in [clean, *clean.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            loose.append(f"{path.relative_to(clean)} {oct(mode)}")
    assert loose == []
    for part in ("outbox", "lake", "warehouse.sqlite", "dagster"):
        assert (clean / part).exists()
