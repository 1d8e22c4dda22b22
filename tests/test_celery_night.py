"""Scale-out: the nightly job's steps run as Celery tasks on a real worker process.

The executor is chosen by ``SWV_EXECUTOR`` (``pipelines/executors.py``). The night test starts a
worker with ``deploy/celery/start-worker.sh`` on RabbitMQ (a queue of its own, so other runs on the
same broker never take its tasks), keeps the Dagster instance in PostgreSQL with the production
profile, ingests the waitlists in-process and runs ``nightly`` through ``dg.execute_job`` on the
Celery executor. Every step must have run in that worker and the outputs must have landed.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from pipelines.executors import DEFAULT_CELERY_BROKER, celery_config, nightly_executor
from tests.conftest import PROJECT, _service_missing
from tests.demo_region import (PRODUCTION_PROFILE, VENV_BIN, demo_environment, generate_demo, postgres_databases,
                               serve_demo_api, stop_process_group, url_with_driver)

BROKER = os.environ.get("SWV_TEST_CELERY_BROKER", DEFAULT_CELERY_BROKER)
WORKER_START_TIMEOUT_S = 60
NIGHT_TIMEOUT_S = 240

# dagster-celery registers its task once per submitted step; Celery warns about every repeat.
pytestmark = [pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning"),
              pytest.mark.slow]  # a Celery worker and a whole nightly job


def test_the_nightly_executor_is_in_process_by_default():
    assert nightly_executor({}) is dg.in_process_executor
    assert nightly_executor({"SWV_EXECUTOR": " "}) is dg.in_process_executor


def test_multiprocess_takes_its_limit_from_swv_max_concurrent():
    assert nightly_executor({"SWV_EXECUTOR": "multiprocess"}) is dg.multiprocess_executor
    limited = nightly_executor({"SWV_EXECUTOR": "multiprocess", "SWV_MAX_CONCURRENT": "3"})
    assert limited.name == "multiprocess"
    assert limited.apply_config_mapping({}).value["config"]["max_concurrent"] == 3


def test_celery_reads_broker_and_backend_when_the_run_starts_so_no_password_is_stored():
    config = celery_config({"SWV_CELERY_BROKER": "amqp://swv:secret@broker//", "SWV_CELERY_QUEUE": "vo2203"})
    assert config["broker"] == {"env": "SWV_CELERY_BROKER"}
    assert config["backend"] == "rpc://"
    assert config["config_source"] == {"task_default_queue": "vo2203"}
    assert "secret" not in repr(config)
    assert nightly_executor({"SWV_EXECUTOR": "celery"}).name == "celery"


def test_an_unknown_executor_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="in_process, multiprocess, celery"):
        nightly_executor({"SWV_EXECUTOR": "k8s"})


def _require_broker() -> None:
    """Skip (fail under CI) without RabbitMQ; under CI wait for one that is still starting."""
    from kombu import Connection

    attempts = 15 if os.environ.get("CI") else 1  # .ci/run starts it detached, just before the tests
    try:
        with Connection(BROKER, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=attempts, interval_start=2, interval_step=0, interval_max=2)
    except Exception as error:  # kombu raises the transport's own errors
        _service_missing(f"RabbitMQ at {BROKER.split('@')[-1]}", error)


def _delete_queue(queue: str) -> None:
    from kombu import Connection

    with Connection(BROKER, connect_timeout=3) as connection:
        connection.default_channel.queue_delete(queue)


def _start_worker(log: Path, name: str) -> subprocess.Popen:
    """``deploy/celery/start-worker.sh`` in its own process group; waits until Celery reports ready."""
    with log.open("w") as out:
        worker = subprocess.Popen([str(PROJECT / "deploy" / "celery" / "start-worker.sh"), "--without-gossip",
                                   "--without-mingle"],
                                  cwd=PROJECT, env={**os.environ, "SWV_CELERY_WORKER_NAME": name},
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while " ready." not in log.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            stop_process_group(worker)
            pytest.fail(f"the Celery worker did not start; its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return worker


def _execute_with_timeout(job, instance: dg.DagsterInstance, run_config: dict) -> dg.JobExecutionResult:
    """``dg.execute_job`` of a reconstructable ``job``; a lost worker fails the test instead of hanging it."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = dg.execute_job(job, instance, run_config=run_config)
        except BaseException as error:  # handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(NIGHT_TIMEOUT_S)
    if thread.is_alive():
        pytest.fail(f"the nightly job did not finish within {NIGHT_TIMEOUT_S} s on the Celery executor")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.fixture(scope="module")
def celery_night(tmp_path_factory):
    _require_broker()
    var = tmp_path_factory.mktemp("var")
    queue, worker_name = f"swv-test-{uuid.uuid4().hex[:8]}", f"swv-test-{uuid.uuid4().hex[:6]}"
    with postgres_databases("dagster") as urls, demo_environment(
        var,
        SWV_EXECUTOR="celery",
        SWV_CELERY_BROKER=BROKER,
        SWV_CELERY_QUEUE=queue,
        SWV_DAGSTER_PG_URL=url_with_driver(urls["dagster"], "postgresql+psycopg2"),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",  # start-worker.sh runs dagster-celery, it runs celery
    ):
        generate_demo(var, PRODUCTION_PROFILE)
        with serve_demo_api(var):
            worker = _start_worker(var / "worker.log", worker_name)
            try:
                yield _run_night_on_celery(var, worker_name)
            finally:
                stop_process_group(worker)
                _delete_queue(queue)


def _run_night_on_celery(var: Path, worker_name: str) -> dict:
    from pipelines.definitions import build_definitions
    from pipelines.executors import nightly_job
    from pipelines.night import night_run_config

    defs = build_definitions()
    run_config = night_run_config(None)
    with dg.DagsterInstance.get() as instance:
        result = _execute_with_timeout(dg.reconstructable(nightly_job), instance, run_config)
        waitlists = {e.check_name: e.passed for e in result.get_asset_check_evaluations()
                     if e.check_name.startswith("delivery_wachtlijst_")}
        run = instance.get_run_by_id(result.run_id)
        ran_in = {}  # step key -> the Celery worker that ran it
        for event in result.all_events:
            if event.is_engine_event and event.step_key and "in celery worker" in event.message:
                ran_in[event.step_key] = event.event_specific_data.metadata["Celery worker"].value
        return {
            "var": var,
            "worker": worker_name,
            "waitlists": waitlists,
            "success": result.success,
            "status": run.status,
            "executor": defs.resolve_job_def("nightly").executor_def.name,
            "steps": {event.step_key for event in result.all_events if event.is_step_success},
            "materialized": {event.asset_key.to_user_string() for event in result.all_events
                             if event.is_step_materialization},
            "ran_in": ran_in,
            "failures": [event.message for event in result.all_events if event.is_failure],
        }


@pytest.mark.postgres
def test_the_nightly_job_succeeds_on_the_celery_executor(celery_night):
    assert all(celery_night["waitlists"].values()), celery_night["waitlists"]
    assert celery_night["executor"] == "celery"
    assert celery_night["success"], celery_night["failures"]
    assert celery_night["status"] == dg.DagsterRunStatus.SUCCESS


@pytest.mark.postgres
def test_every_step_ran_in_the_celery_worker(celery_night):
    steps, ran_in = celery_night["steps"], celery_night["ran_in"]
    assert len(steps) >= 5
    assert set(ran_in) == steps
    assert {worker.split("@")[0] for worker in ran_in.values()} == {celery_night["worker"]}


@pytest.mark.postgres
def test_outputs_land_in_the_shared_lake_and_outbox(celery_night):
    var = celery_night["var"]
    for asset in ("po_transfers", "vo_enrolment", "pupils"):
        assert asset in celery_night["materialized"]
        # A fresh folder, and only the nightly run materializes these: the file is the Celery run's.
        assert (var / "lake" / "assets" / asset / "_all.parquet").exists(), f"{asset} is not in the shared lake"
    assert list((var / "outbox" / "overdracht").rglob("overdracht.csv"))
