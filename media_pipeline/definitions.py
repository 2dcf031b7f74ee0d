"""The one Definitions object, loaded by `dagster dev` (workspace.yaml / pyproject.toml)."""

from __future__ import annotations

import dagster as dg

from media_pipeline.defs.ai import ai_analysis, ai_batch, ai_batch_schedule, ai_service_status
from media_pipeline.defs.assets import OBJECT_CATALOG_ASSETS
from media_pipeline.defs.checks import OBJECT_CATALOG_CHECKS
from media_pipeline.defs.resources import resources_from_env
from media_pipeline.defs.sensors import SENSOR_JOBS, SENSORS

nightly_reconciliation = dg.define_asset_job(
    "nightly_reconciliation",
    selection=dg.AssetSelection.assets(*OBJECT_CATALOG_ASSETS),
    description="Inventory the bucket, catalog it, fingerprint what changed, find duplicates.",
)

nightly_reconciliation_schedule = dg.ScheduleDefinition(
    name="nightly_reconciliation_schedule",
    job=nightly_reconciliation,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    # Running as soon as a daemon runs: reconciliation only catalogs, it never deletes.
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(
    assets=[*OBJECT_CATALOG_ASSETS, ai_analysis],
    asset_checks=[*OBJECT_CATALOG_CHECKS, ai_service_status],
    jobs=[nightly_reconciliation, ai_batch, *SENSOR_JOBS],
    schedules=[nightly_reconciliation_schedule, ai_batch_schedule],
    sensors=SENSORS,
    resources=resources_from_env(),
)
