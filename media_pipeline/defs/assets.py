"""The object-catalog assets: inventory → media_files → fingerprints → duplicates.

Each asset is a thin call into ``media_pipeline.pipeline``; what it reports as metadata is numeric
so the UI plots it over time.
"""


import dagster as dg

from media_pipeline import pipeline
from media_pipeline.defs.dedup_preview import duplicate_groups_preview, near_duplicates_preview
from media_pipeline.defs.resources import CatalogResource, MediaS3Resource
from media_pipeline.storage import RetryCounter

CATALOG_POOL = "catalog"
GROUP = "object_catalog"


@dg.asset(group_name=GROUP, compute_kind="s3")
def inventory_snapshot(
    context: dg.AssetExecutionContext, s3: MediaS3Resource, catalog: CatalogResource
) -> dg.MaterializeResult:
    """The bucket's current objects, from the newest S3 Inventory report or a live listing."""
    settings = catalog.settings(s3)
    counter = RetryCounter()
    stats = pipeline.take_inventory(settings, s3.get_client(), counter)
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
    context: dg.AssetExecutionContext, s3: MediaS3Resource, catalog: CatalogResource
) -> dg.MaterializeResult:
    """One row per object; the diff against the last inventory (gone objects become missing)."""
    diff = pipeline.commit_inventory(catalog.settings(s3), run_id=context.run.run_id)
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


@dg.asset(group_name=GROUP, deps=[media_files], pool=CATALOG_POOL, compute_kind="python")
def fingerprints(
    context: dg.AssetExecutionContext, s3: MediaS3Resource, catalog: CatalogResource
) -> dg.MaterializeResult:
    """SHA-256, sniffed type, image/PDF metadata, perceptual hash and validation, for new or
    changed objects only."""
    settings = catalog.settings(s3)
    done = 0

    def on_start(count: int, size: int) -> None:
        context.log.info(f"fingerprinting {count} objects ({size} bytes)")

    def on_result(_: object) -> None:
        nonlocal done
        done += 1
        if done % 1000 == 0:
            context.log.info(f"fingerprinted {done} objects")

    stats = pipeline.fingerprint_pending(
        settings, s3.get_client(), on_start=on_start, on_result=on_result
    )
    return dg.MaterializeResult(
        metadata={
            "objects": stats.objects,
            "bytes_read": stats.bytes_read,
            "active": stats.active,
            "quarantined": stats.quarantined,
            "public_closed": stats.public_closed,
            "missing": stats.missing,
            "errors": stats.errors,
            "s3_retries": stats.s3_retries,
            "seconds": round(stats.seconds, 3),
            "objects_per_second": round(stats.objects / stats.seconds, 1) if stats.seconds else 0,
        }
    )


@dg.asset(group_name=GROUP, deps=[fingerprints], pool=CATALOG_POOL, compute_kind="duckdb")
def duplicate_groups(s3: MediaS3Resource, catalog: CatalogResource) -> dg.MaterializeResult:
    """Exact duplicates by (size, sha256), with a canonical member and the bytes wasted."""
    settings = catalog.settings(s3)
    stats = pipeline.rebuild_duplicates(settings)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats.groups,
            "duplicate_files": stats.duplicate_files,
            "wasted_bytes": stats.wasted_bytes,
            "top_groups": duplicate_groups_preview(settings),
        }
    )


@dg.asset(group_name=GROUP, deps=[duplicate_groups], pool=CATALOG_POOL, compute_kind="duckdb")
def near_duplicates(context: dg.AssetExecutionContext, s3: MediaS3Resource,
                    catalog: CatalogResource) -> dg.MaterializeResult:
    """Image pairs that look alike (pHash, trimmed and mirror hashes, embeddings), each with the
    method that found it. Reported, never acted on."""
    settings = catalog.settings(s3)
    stats = pipeline.rebuild_near_duplicates(settings, s3.get_client())
    for reason in stats.skipped:
        context.log.warning(f"skipped {reason}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats.pairs,
            **{f"pairs_{method.replace('-', '_')}": n for method, n in stats.by_method.items()},
            "max_distance": settings.near_duplicate_distance,
            "features_computed": stats.features_computed,
            "feature_errors": stats.feature_errors,
            "skipped": "; ".join(stats.skipped) or "nothing",
            "top_pairs": near_duplicates_preview(settings),
        }
    )


OBJECT_CATALOG_ASSETS = [inventory_snapshot, media_files, fingerprints, duplicate_groups,
                         near_duplicates]
