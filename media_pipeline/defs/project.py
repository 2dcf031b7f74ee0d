"""Everything Dagster sees, assembled in one place: assets, checks, jobs, schedules, sensors.

Built by a function because the per-source reference assets come from the content-sources file
named by the settings: `definitions.py` builds it once for `dagster dev`, `media-pipeline run`
builds it for the settings of its own process.
"""

import warnings
from typing import Any

import dagster as dg

from media_pipeline.defs.ai import ai_analysis, ai_batch, ai_batch_schedule, ai_service_status
from media_pipeline.defs.assets import OBJECT_CATALOG_ASSETS
from media_pipeline.defs.checks import OBJECT_CATALOG_CHECKS
from media_pipeline.defs.references import (
    GROUP_REFERENCES,
    REFERENCE_CHECKS,
    build_reference_assets,
)
from media_pipeline.defs.resources import resources_from_env
from media_pipeline.defs.sensors import SENSOR_JOBS, SENSORS
from media_pipeline.settings import Settings

NIGHTLY_LIFECYCLE = ("auto_soft_delete",)

# Dagster passes its own `owners` to SensorDefinition and warns about it being beta; nothing of
# ours uses owners.
warnings.filterwarnings("ignore", message=r"Parameter `owners` of initializer")


def build_definitions(settings: Settings | None = None,
                      extra_jobs: list[Any] | None = None,
                      resources: dict[str, Any] | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    reference_assets = build_reference_assets(settings)
    references = dg.AssetSelection.groups(GROUP_REFERENCES)

    nightly_reconciliation = dg.define_asset_job(
        "nightly_reconciliation",
        selection=(dg.AssetSelection.assets(*OBJECT_CATALOG_ASSETS) | references
                   | dg.AssetSelection.assets(*NIGHTLY_LIFECYCLE)),
        description="Inventory the bucket, catalog it, fingerprint what changed, find "
                    "duplicates, rebuild the reference index, auto soft-delete (when enabled).",
    )
    purge = dg.define_asset_job(
        "purge",
        # Scans first: a file is purged only when every source was scanned after its deletion.
        selection=references | dg.AssetSelection.assets("purged_files"),
        description="Rescan the content sources, then purge files soft-deleted past the "
                    "retention that nothing references (mark, re-check, delete in batches).",
    )
    return dg.Definitions(
        assets=[*OBJECT_CATALOG_ASSETS, ai_analysis, *reference_assets],
        asset_checks=[*OBJECT_CATALOG_CHECKS, ai_service_status, *REFERENCE_CHECKS],
        jobs=[nightly_reconciliation, purge, ai_batch, *SENSOR_JOBS, *(extra_jobs or [])],
        schedules=[
            dg.ScheduleDefinition(
                name="nightly_reconciliation_schedule",
                job=nightly_reconciliation,
                cron_schedule="0 2 * * *",
                execution_timezone="UTC",
                # On as soon as a daemon runs: it catalogs; it deletes nothing from S3.
                default_status=dg.DefaultScheduleStatus.RUNNING,
            ),
            dg.ScheduleDefinition(
                name="purge_schedule",
                job=purge,
                cron_schedule="0 4 * * *",
                execution_timezone="UTC",
                # Deleting from S3 is opt-in: turn it on in the UI once sources are configured.
                default_status=dg.DefaultScheduleStatus.STOPPED,
            ),
            ai_batch_schedule,
        ],
        sensors=SENSORS,
        resources=resources if resources is not None else resources_from_env(),
    )
