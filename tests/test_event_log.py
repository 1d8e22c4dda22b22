"""The instance's event log keeps its SQLite connections open, and stays Dagster's own format."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from connectors.event_log import RUN_DATABASES_KEPT_OPEN, SqliteEventLogStorage

PROJECT = Path(__file__).resolve().parent.parent


@dg.asset
def counted() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 3})


@dg.asset_check(asset=counted)
def counted_is_small() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME with the embedded default's dagster.yaml, as `make demo` makes it."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT / "deploy" / "dagster.local.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _materialize(instance: dg.DagsterInstance) -> str:
    result = dg.materialize([counted, counted_is_small], instance=instance)
    assert result.success
    return result.run_id


def _schema(database: Path) -> tuple:
    with sqlite3.connect(database) as connection:
        return (sorted(connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")),
                connection.execute("SELECT version_num FROM alembic_version").fetchall(),
                connection.execute("PRAGMA journal_mode").fetchone())


def _open_databases() -> list[str]:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith(".db"):
            names.append(Path(target).name)
    return names


def test_the_local_instance_profile_uses_it(dagster_home):
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, SqliteEventLogStorage)
        assert Path(storage._base_dir) == dagster_home / "history" / "runs"


def test_its_databases_are_the_ones_dagster_itself_makes(dagster_home, tmp_path):
    with dg.DagsterInstance.get() as instance:
        run_id = _materialize(instance)
    ours = [_schema(dagster_home / "history" / "runs" / f"{name}.db") for name in (run_id, "index")]
    default_home = tmp_path / "dagster_default"
    default_home.mkdir()
    (default_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(default_home)) as instance:
        assert type(instance.event_log_storage).__module__.startswith("dagster.")
        run_id = _materialize(instance)
    dagsters = [_schema(default_home / "history" / "runs" / f"{name}.db") for name in (run_id, "index")]
    assert ours == dagsters
    assert all(schema[2] == ("wal",) and len(schema[1]) == 1 for schema in ours)


def test_dagster_own_storage_reads_what_it_wrote_and_the_other_way_round(dagster_home):
    with dg.DagsterInstance.get() as instance:
        first = _materialize(instance)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # back to Dagster's default
    with dg.DagsterInstance.get() as instance:
        assert not isinstance(instance.event_log_storage, SqliteEventLogStorage)
        second = _materialize(instance)
        history = instance.fetch_materializations(counted.key, limit=10).records
        assert [record.run_id for record in history] == [second, first]
        assert instance.get_records_for_run(first).records
    (dagster_home / "dagster.yaml").write_text((PROJECT / "deploy" / "dagster.local.yaml").read_text())
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, SqliteEventLogStorage)
        third = _materialize(instance)
        history = instance.fetch_materializations(counted.key, limit=10).records
        assert [record.run_id for record in history] == [third, second, first]
        evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [counted_is_small.check_key])[counted_is_small.check_key]
        assert evaluation.run_id == third
        for run_id in (first, second, third):
            events = [record.event_log_entry.dagster_event_type for record in
                      instance.get_records_for_run(run_id).records if record.event_log_entry.is_dagster_event]
            assert dg.DagsterEventType.RUN_SUCCESS in events


def test_only_the_index_and_the_most_recent_run_databases_stay_open(dagster_home):
    with dg.DagsterInstance.get() as instance:
        runs = [_materialize(instance) for _ in range(RUN_DATABASES_KEPT_OPEN + 3)]
        open_now = set(_open_databases())
        assert "index.db" in open_now
        assert {f"{run_id}.db" for run_id in runs[-RUN_DATABASES_KEPT_OPEN:]} <= open_now
        assert not {f"{run_id}.db" for run_id in runs[:3]} & open_now
    assert not any(name == "index.db" or name[:-3] in runs for name in _open_databases())


def test_its_connections_sync_the_write_ahead_log_at_checkpoints_only(dagster_home):
    """``synchronous=NORMAL`` (1) on the run's and the index's connections; Dagster's default is FULL (2)."""
    with dg.DagsterInstance.get() as instance:
        run_id = _materialize(instance)
        storage = instance.event_log_storage
        for shard in (run_id, "index"):
            with storage._connect(shard) as connection:
                assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def _materialize_in_child(queue, instance: dg.DagsterInstance) -> None:
    try:
        inherited = len(instance.event_log_storage._engines)
        queue.put((inherited, _materialize(instance)))
    except BaseException as error:  # the parent reports it
        queue.put((None, repr(error)))


def test_a_forked_process_opens_its_own_connections(dagster_home):
    """SQLite connections must not cross a fork (sqlite.org/howtocorrupt.html, 2.6)."""
    with dg.DagsterInstance.get() as instance:
        before = _materialize(instance)
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_materialize_in_child, args=(queue, instance))
        child.start()
        inherited, in_child = queue.get(timeout=60)
        child.join(timeout=60)
        assert child.exitcode == 0 and inherited == 0, in_child
        after = _materialize(instance)
        history = instance.fetch_materializations(counted.key, limit=10).records
        assert [record.run_id for record in history] == [after, in_child, before]


@dg.asset(deps=[counted])
def doubled() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 6})


def steps_in_their_own_processes() -> dg.JobDefinition:
    """A job whose steps each run in a process of their own (for ``dg.reconstructable``)."""
    job = dg.define_asset_job("steps_apart", executor_def=dg.multiprocess_executor)
    return dg.Definitions(assets=[counted, doubled], asset_checks=[counted_is_small], jobs=[job]).resolve_job_def(
        "steps_apart")


def test_step_processes_write_one_run_database_side_by_side(dagster_home):
    """The multiprocess executor (``SWV_EXECUTOR=multiprocess``): every step process stores its events."""
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(steps_in_their_own_processes), instance)
        assert result.success
        records = instance.get_records_for_run(result.run_id).records
        finished = {record.event_log_entry.step_key for record in records
                    if record.event_log_entry.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS}
        assert finished == {"counted", "doubled", "counted_counted_is_small"}
        writers = {record.event_log_entry.dagster_event.pid for record in records
                   if record.event_log_entry.is_dagster_event}
        assert writers - {os.getpid(), None}  # the step processes wrote their own events
        assert [r.run_id for r in instance.fetch_materializations(doubled.key, limit=5).records] == [result.run_id]
