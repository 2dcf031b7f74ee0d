"""The bucket's objects: ``inventory_snapshot`` (S3 Inventory report or live listing) →
``media_files`` (the catalog's rows, diffed against the last inventory).

Each asset is a thin call into the library; what it reports as metadata is numeric so the UI
plots it over time.
"""

from collections.abc import Iterator

import dagster as dg

from media_pipeline import stages
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource
from media_pipeline.storage import RetryCounter

GROUP = "object_catalog"


SNAPSHOT = dg.AssetSpec(
    "inventory_snapshot", group_name=GROUP, kinds={"s3"},
    description="The bucket's current objects, from the newest S3 Inventory report or a live "
                "listing.")
MEDIA_FILES = dg.AssetSpec(
    "media_files", group_name=GROUP, kinds={"duckdb"}, deps=[SNAPSHOT],
    description="One row per object; the diff against the last inventory (gone objects "
                "become missing).")


# One step for both: the snapshot is a Parquet file under the work folder of the machine that
# took it, and a step of a distributed run may land on another machine (defs/distributed.py).
# Either one alone can still be selected.
@dg.multi_asset(specs=[SNAPSHOT, MEDIA_FILES], can_subset=True, pool=CATALOG_POOL)
def inventory(context: dg.AssetExecutionContext, media: MediaPipelineResource
              ) -> Iterator[dg.MaterializeResult]:
    settings = media.settings()
    if SNAPSHOT.key in context.selected_asset_keys:
        counter = RetryCounter()
        stats = stages.take_inventory(settings, media.s3_client(), counter)
        context.log.info(f"{stats.rows} objects, {stats.bytes} bytes from {stats.source}")
        yield dg.MaterializeResult(asset_key=SNAPSHOT.key, metadata={
            "dagster/row_count": stats.rows,
            "bytes": stats.bytes,
            "skipped_delete_markers": stats.skipped_delete_markers,
            "skipped_noncurrent": stats.skipped_noncurrent,
            "s3_retries": counter.retries,
            "source": stats.source,
        })
    if MEDIA_FILES.key in context.selected_asset_keys:
        diff = stages.commit_inventory(settings, run_id=context.run.run_id)
        yield dg.MaterializeResult(asset_key=MEDIA_FILES.key, metadata={
            "dagster/row_count": diff.rows,
            "bytes": diff.bytes,
            "new": diff.new,
            "changed": diff.changed,
            "unchanged": diff.unchanged,
            "missing": diff.missing,
            "reappeared": diff.reappeared,
        })
