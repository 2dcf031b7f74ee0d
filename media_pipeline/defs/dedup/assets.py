"""Duplicates: exact groups by (size, sha256), and near-duplicate image pairs."""

import dagster as dg

from media_pipeline import stages
from media_pipeline.defs.dedup.preview import duplicate_groups_preview, near_duplicates_preview
from media_pipeline.defs.fingerprints import fingerprints
from media_pipeline.defs.inventory import GROUP
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource


@dg.asset(group_name=GROUP, deps=[fingerprints], pool=CATALOG_POOL, compute_kind="duckdb")
def duplicate_groups(media: MediaPipelineResource) -> dg.MaterializeResult:
    """Exact duplicates by (size, sha256), with a canonical member and the bytes wasted."""
    settings = media.settings()
    stats = stages.rebuild_duplicates(settings)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats.groups,
            "duplicate_files": stats.duplicate_files,
            "wasted_bytes": stats.wasted_bytes,
            "top_groups": duplicate_groups_preview(settings),
        }
    )


@dg.asset(group_name=GROUP, deps=[duplicate_groups], pool=CATALOG_POOL, compute_kind="duckdb")
def near_duplicates(context: dg.AssetExecutionContext,
                    media: MediaPipelineResource) -> dg.MaterializeResult:
    """Image pairs that look alike (pHash, trimmed and mirror hashes, embeddings), each with the
    method that found it. Reported, never acted on."""
    settings = media.settings()
    stats = stages.rebuild_near_duplicates(settings, media.s3_client())
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
