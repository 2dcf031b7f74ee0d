"""Lifecycle assets: ``auto_soft_delete`` and ``purged_files``, after the reference index."""

from typing import Any

import dagster as dg

from media_pipeline import lifecycle
from media_pipeline.catalog import open_catalog
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource

GROUP_LIFECYCLE = "lifecycle"
reference_index_key = dg.AssetKey("reference_index")


class PurgeConfig(dg.Config):
    """``dry_run``: report what would be purged and change nothing."""

    dry_run: bool = False


@dg.asset(group_name=GROUP_LIFECYCLE, deps=[reference_index_key], pool=CATALOG_POOL,
          compute_kind="duckdb")
def auto_soft_delete(context: dg.AssetExecutionContext, media: MediaPipelineResource
                     ) -> dg.MaterializeResult:
    """Soft-deletes files unreferenced for MEDIA_PIPELINE_AUTO_DELETE_DAYS (per namespace;
    off by default), as ``system``."""
    settings = media.settings()
    with open_catalog(settings) as cat:
        report = lifecycle.auto_soft_delete(
            cat, settings, enabled_sources=lifecycle.enabled_source_names(settings),
            run_id=context.run.run_id)
    if report.refused_reason:
        context.log.warning(report.refused_reason)
    return dg.MaterializeResult(metadata={
        "soft_deleted": report.total,
        "namespaces_enabled": len(settings.auto_delete_days),
        **{f"soft_deleted/{ns}": n for ns, n in sorted(report.deleted.items())},
    })


@dg.asset(group_name=GROUP_LIFECYCLE, deps=[auto_soft_delete], pool=CATALOG_POOL,
          compute_kind="s3")
def purged_files(context: dg.AssetExecutionContext, media: MediaPipelineResource,
                 config: PurgeConfig) -> dg.MaterializeResult:
    """Mark-then-sweep purge of files soft-deleted past the retention that nothing uses."""
    settings = media.settings()

    def on_step(step: str, info: dict[str, Any]) -> None:
        context.log.debug(f"purge {step}: {info}")

    report = lifecycle.purge(
        settings, media.s3_client(),
        enabled_sources=lifecycle.enabled_source_names(settings),
        dry_run=config.dry_run, on_step=on_step, run_id=context.run.run_id)
    if report.refused_reason:
        context.log.warning(f"purge refused: {report.refused_reason}")
    if report.errors:
        raise dg.Failure(description=f"{len(report.errors)} purge errors; those files "
                         f"stay soft-deleted: {report.errors[:5]}")
    return dg.MaterializeResult(metadata={
        "dry_run": config.dry_run,
        "candidates": report.candidates,
        "purged": report.purged,
        "bytes_freed": report.bytes_freed,
        "refused": report.refused_reason or "",
        "settled_from_interrupted_run": report.settled,
    })
