"""Where the nightly job's steps run, chosen by the environment (see docs/deploy.md).

``SWV_EXECUTOR``:

- ``in_process`` (default): every step in the run's own process. Fastest for a region (the
  night's steps form a chain) and needs no service.
- ``multiprocess``: a process per step on the same machine, at most ``SWV_MAX_CONCURRENT`` at once
  (default: the number of CPUs). Costs about 1 s of start-up per step.
- ``celery``: each step is a Celery task, picked up by a worker on any machine. Broker
  ``SWV_CELERY_BROKER`` (default ``amqp://guest:guest@127.0.0.1:5672//``, RabbitMQ), result
  backend ``SWV_CELERY_BACKEND`` (default ``rpc://``, answers over the same RabbitMQ) and queue
  ``SWV_CELERY_QUEUE`` (default ``dagster``). Start the workers with
  ``deploy/celery/start-worker.sh`` and the same environment. A Redis broker needs the ``redis``
  package, which the lock does not include.

Steps hand data to each other through the lake, and read deliveries and write the outbox under
``SWV_VAR_DIR``: with Celery workers on several machines that folder (and ``SWV_LAKE_URL`` when set)
must be one shared path, and the instance and the warehouse must be on PostgreSQL.

Broker and backend are passed to Dagster as ``{"env": ...}`` so a URL with a password is read
when the run starts and never stored with the job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

EXECUTORS = ("in_process", "multiprocess", "celery")
DEFAULT_CELERY_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_CELERY_BACKEND = "rpc://"
DEFAULT_CELERY_QUEUE = "dagster"


def nightly_executor(environ: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor named by ``SWV_EXECUTOR`` (default ``in_process``); an unknown name is an error."""
    environ = os.environ if environ is None else environ
    choice = environ.get("SWV_EXECUTOR", "").strip().lower() or "in_process"
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        limit = environ.get("SWV_MAX_CONCURRENT", "").strip()
        return dg.multiprocess_executor.configured({"max_concurrent": int(limit)}) if limit else dg.multiprocess_executor
    if choice == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(environ), name="celery")
    raise ValueError(f"SWV_EXECUTOR={choice!r} is not one of {', '.join(EXECUTORS)}")


def celery_config(environ: Mapping[str, str] | None = None) -> dict:
    """Config of ``dagster_celery.celery_executor``; the workers must be started with the same values."""
    environ = os.environ if environ is None else environ

    def from_env(name: str, default: str):
        return {"env": name} if environ.get(name) else default

    return {
        "broker": from_env("SWV_CELERY_BROKER", DEFAULT_CELERY_BROKER),
        "backend": from_env("SWV_CELERY_BACKEND", DEFAULT_CELERY_BACKEND),
        # One broker can serve several deployments (test, production, another SWV): one queue each.
        "config_source": {"task_default_queue": environ.get("SWV_CELERY_QUEUE") or DEFAULT_CELERY_QUEUE},
    }


def nightly_job() -> dg.JobDefinition:
    """The nightly job of the code location, for ``dg.reconstructable(nightly_job)``.

    An executor that runs steps in other processes rebuilds the job there by importing this
    function; it builds the Definitions from the environment of that process.
    """
    from pipelines.definitions import build_definitions

    return build_definitions().resolve_job_def("nightly")
