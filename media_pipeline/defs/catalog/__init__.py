"""The catalog's own upkeep: the ``catalog_maintenance`` asset, its job and daily schedule."""

import dagster as dg

from media_pipeline.catalog.maintenance import maintain_catalog
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource

GROUP_CATALOG = "catalog"


@dg.asset(group_name=GROUP_CATALOG, pool=CATALOG_POOL, compute_kind="duckdb")
def catalog_maintenance(context: dg.AssetExecutionContext, media: MediaPipelineResource
                        ) -> dg.MaterializeResult:
    """DuckLake upkeep: flush inlined rows to Parquet, merge small files, expire snapshots past
    MEDIA_PIPELINE_CATALOG_SNAPSHOT_RETENTION_DAYS (keeping those purges decided on, for
    MEDIA_PIPELINE_PURGE_SNAPSHOT_RETENTION_DAYS), delete files nothing needs."""
    report = maintain_catalog(media.settings())
    context.log.info(f"catalog maintenance: {report.to_dict()}")
    return dg.MaterializeResult(metadata=report.to_dict())


maintain_catalog_job = dg.define_asset_job(
    "maintain_catalog",
    selection=dg.AssetSelection.assets(catalog_maintenance),
    description="Compact the catalog and expire its old snapshots (never a purge's within "
                "its retention).",
)

catalog_maintenance_schedule = dg.ScheduleDefinition(
    name="catalog_maintenance_schedule",
    job=maintain_catalog_job,
    cron_schedule="0 5 * * *",  # after the purge (04:00)
    execution_timezone="UTC",
    # It deletes no media and no snapshot a purge needs: on as soon as a daemon runs.
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(
    assets=[catalog_maintenance],
    jobs=[maintain_catalog_job],
    schedules=[catalog_maintenance_schedule],
)

__all__ = ["GROUP_CATALOG", "catalog_maintenance", "catalog_maintenance_schedule", "defs",
           "maintain_catalog_job"]
