"""The bucket's objects: ``inventory_snapshot`` (S3 Inventory report or live listing) →
``media_files`` (the catalog's rows, diffed against the last inventory).

Each asset is a thin call into the library; what it reports as metadata is numeric so the UI
plots it over time.
"""

import dagster as dg

from media_pipeline import stages
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource
from media_pipeline.storage import RetryCounter

GROUP = "object_catalog"


@dg.asset(group_name=GROUP, compute_kind="s3")
def inventory_snapshot(
    context: dg.AssetExecutionContext, media: MediaPipelineResource
) -> dg.MaterializeResult:
    """The bucket's current objects, from the newest S3 Inventory report or a live listing."""
    settings = media.settings()
    counter = RetryCounter()
    stats = stages.take_inventory(settings, media.s3_client(), counter)
    context.log.info(f"{stats.rows} objects, {stats.bytes} bytes from {stats.source}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats.rows,
            "bytes": stats.bytes,
            "skipped_delete_markers": stats.skipped_delete_markers,
            "skipped_noncurrent": stats.skipped_noncurrent,
            "s3_retries": counter.retries,
            "source": stats.source,
        }
    )


@dg.asset(group_name=GROUP, deps=[inventory_snapshot], pool=CATALOG_POOL, compute_kind="duckdb")
def media_files(
    context: dg.AssetExecutionContext, media: MediaPipelineResource
) -> dg.MaterializeResult:
    """One row per object; the diff against the last inventory (gone objects become missing)."""
    diff = stages.commit_inventory(media.settings(), run_id=context.run.run_id)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": diff.rows,
            "bytes": diff.bytes,
            "new": diff.new,
            "changed": diff.changed,
            "unchanged": diff.unchanged,
            "missing": diff.missing,
            "reappeared": diff.reappeared,
        }
    )
