"""Lifecycle: auto soft-delete, the purge, its job and schedule."""

import dagster as dg

from media_pipeline.defs.lifecycle.assets import (
    GROUP_LIFECYCLE,
    PurgeConfig,
    auto_soft_delete,
    purged_files,
)
from media_pipeline.defs.references import GROUP_REFERENCES

purge = dg.define_asset_job(
    "purge",
    # Scans first: a file is purged only when every source was scanned after its deletion.
    selection=dg.AssetSelection.groups(GROUP_REFERENCES) | dg.AssetSelection.assets(purged_files),
    description="Rescan the content sources, then purge files soft-deleted past the "
                "retention that nothing references (mark, re-check, delete in batches).",
)

purge_schedule = dg.ScheduleDefinition(
    name="purge_schedule",
    job=purge,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    # Deleting from S3 is opt-in: turn it on in the UI once sources are configured.
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(
    assets=[auto_soft_delete, purged_files],
    jobs=[purge],
    schedules=[purge_schedule],
)

__all__ = ["GROUP_LIFECYCLE", "PurgeConfig", "auto_soft_delete", "defs", "purge", "purged_files"]
