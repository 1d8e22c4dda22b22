"""The code location: assets, checks, jobs, schedules and the resources they run with.

Everything here is wiring. The region YAML is loaded and validated when Definitions load, so a
broken configuration fails ``dagster definitions validate`` with the file, key and problem. Secrets
(warehouse URL, partner and upload tokens, export keys, alert salt) enter the resources as
``dg.EnvVar``: Dagster reads them when a run starts, and the UI shows only their names
(``connectors/secrets.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from assets.signalen.alert_assets import thuiszitter_alerts
from assets.gemeenten.export_assets import build_export_assets
from assets.overdracht.handover_assets import po_vo_handovers, vo_mbo_handovers
from assets.bronnen.freshness import build_freshness_checks, freshness_moment, stale_sources
from assets.bronnen.ingest import build_raw_assets
from assets.koppeling.pupils import linked_pupils
from assets.monitor.indicators import settings_problems
from assets.monitor.monitor_assets import build_monitor_assets
from assets.validatie.feedback import build_feedback_asset
from assets.validatie.validated import build_validated_assets
from connectors import private
from connectors.arrow_memory import use_system_allocator
from connectors.files import SourceFiles
from connectors.http_api import JsonApi
from connectors.lake import LakeIOManager, RawSnapshots
from connectors.notify import Notifier
from connectors.outbox import Outbox
from connectors.region_config import RegionConfig
from connectors.secrets import AlertSalt, ExportKeys
from connectors.upload import ExportUploads
from connectors.warehouse import Warehouse
from pipelines.executors import nightly_executor
from pipelines.freshness import build_freshness_job_and_schedule
from pipelines.jobs import build_jobs_and_schedules
from pipelines.sensors import (build_delivery_sensor, check_failure_notification, held_back_notification,
                               run_failure_notification)
from schemas.region_contract import load_checked_region
from settings.paths import region_file, var_layout
from settings.region import RegionConfigError


use_system_allocator()  # every process that loads the definitions runs steps (connectors/arrow_memory.py)
private.restrict_process()  # what they write (warehouse, lake, outbox, run history) is private (docs/runbook.md)


def build_definitions(region_path: Path | None = None) -> dg.Definitions:
    """Definitions for the region in ``region_path`` (default: ``SWV_REGION_FILE`` or the demo region)."""
    region_path = Path(region_path or region_file())
    region = load_checked_region(region_path)
    problems = settings_problems(region)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise RegionConfigError(f"{region_path}: invalid region configuration:\n{listed}")
    var = var_layout()

    def stale_tonight(context) -> list[str]:
        """Sources whose newest delivery is older than their cadence: named in the export manifest."""
        config = context.resources.region_config
        return stale_sources(config.region, var, freshness_moment(config.evaluation()))

    assets = [*build_raw_assets(region), *build_validated_assets(region), build_feedback_asset(region), linked_pupils,
              po_vo_handovers, vo_mbo_handovers, thuiszitter_alerts,
              *build_export_assets(region.gemeenten, exports=region.exports, retention=region.retention,
                                   stale_sources=stale_tonight),
              *build_monitor_assets(stale_sources=stale_tonight)]
    freshness_checks = build_freshness_checks(region)
    jobs, schedules = build_jobs_and_schedules(nightly_executor())
    freshness_job, freshness_schedule = build_freshness_job_and_schedule(freshness_checks)
    by_name = {job.name: job for job in jobs}
    sensors = [run_failure_notification, check_failure_notification, held_back_notification,
               build_delivery_sensor(region, nightly_job=by_name["nightly"], waitlist_job=by_name["waitlist_ingest"])]

    resources = {
        "region_config": RegionConfig(path=str(region_path)),
        "source_files": SourceFiles(root=str(var.sources)),
        "json_api": JsonApi.from_env(region.sources.values()),
        "raw_snapshots": RawSnapshots(root=str(var.lake)),
        "lake_io_manager": LakeIOManager(root=str(os.environ.get("SWV_LAKE_URL", var.lake))),
        "warehouse": Warehouse.from_env(default_url=var.warehouse_url),
        "outbox": Outbox(root=str(var.outbox)),
        "export_keys": ExportKeys.from_env(region.gemeente_codes),
        "export_uploads": ExportUploads.from_env(region.exports.upload.values()),
        "alert_salt": AlertSalt.from_env(),
        "notifier": Notifier.from_env(),
    }
    return dg.Definitions(assets=assets, asset_checks=freshness_checks, jobs=[*jobs, freshness_job],
                          schedules=[*schedules, freshness_schedule], sensors=sensors, resources=resources)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location Dagster loads (workspace.yaml): built when Dagster asks, not on import, so a
    process that imports this module for ``build_definitions`` (``swv night``, the demo) loads once."""
    return build_definitions()
