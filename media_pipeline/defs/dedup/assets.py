"""Duplicates: exact groups by (size, sha256), and near-duplicate image pairs."""

import dagster as dg

from media_pipeline import stages
from media_pipeline.defs.fingerprints import fingerprints
from media_pipeline.defs.inventory import GROUP
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource


@dg.asset(group_name=GROUP, deps=[fingerprints], pool=CATALOG_POOL, compute_kind="duckdb")
def duplicate_groups(media: MediaPipelineResource) -> dg.MaterializeResult:
    """Exact duplicates by (size, sha256), with a canonical member and the bytes wasted."""
    stats = stages.rebuild_duplicates(media.settings())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats.groups,
            "duplicate_files": stats.duplicate_files,
            "wasted_bytes": stats.wasted_bytes,
        }
    )


@dg.asset(group_name=GROUP, deps=[duplicate_groups], pool=CATALOG_POOL, compute_kind="duckdb")
def near_duplicates(media: MediaPipelineResource) -> dg.MaterializeResult:
    """Image pairs within the configured perceptual-hash distance. Reported, never acted on."""
    settings = media.settings()
    pairs = stages.rebuild_near_duplicates(settings)
    return dg.MaterializeResult(
        metadata={"dagster/row_count": pairs, "max_distance": settings.near_duplicate_distance}
    )
