#!/usr/bin/env sh
# Start one Celery worker for the nightly job (SWV_EXECUTOR=celery); see deploy/celery/README.md.
#
# Run it on every worker machine with the environment of the code location: SWV_VAR_DIR (a shared
# path), SWV_REGION_FILE, SWV_WAREHOUSE_URL, DAGSTER_HOME with the PostgreSQL instance
# (SWV_DAGSTER_PG_URL), the partner tokens (SWV_TOKEN_*), the export keys (SWV_EXPORT_KEY_*) and
# the alert salt (SWV_ALERT_SALT).
# Extra arguments go to `celery worker`, e.g. `start-worker.sh --loglevel WARNING`.
set -eu

: "${SWV_CELERY_BROKER:=amqp://guest:guest@127.0.0.1:5672//}"
: "${SWV_CELERY_BACKEND:=rpc://}"
: "${SWV_CELERY_QUEUE:=dagster}"
: "${SWV_CELERY_CONCURRENCY:=2}"
: "${SWV_CELERY_WORKER_NAME:=swv-$$}"
export SWV_CELERY_BROKER SWV_CELERY_BACKEND SWV_EXECUTOR=celery

exec dagster-celery worker start \
    --app dagster_celery.app \
    --config-yaml "$(dirname "$0")/worker.yaml" \
    --queue "$SWV_CELERY_QUEUE" \
    --name "$SWV_CELERY_WORKER_NAME" \
    -- --concurrency "$SWV_CELERY_CONCURRENCY" "$@"
