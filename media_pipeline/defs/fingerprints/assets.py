"""``fingerprints``: hash, sniffed type, metadata, perceptual hash and validation of new or
changed objects."""

import dagster as dg

from media_pipeline import stages
from media_pipeline.defs.inventory import GROUP, media_files
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource


@dg.asset(group_name=GROUP, deps=[media_files], pool=CATALOG_POOL, compute_kind="python")
def fingerprints(
    context: dg.AssetExecutionContext, media: MediaPipelineResource
) -> dg.MaterializeResult:
    """SHA-256, sniffed type, image/PDF metadata, perceptual hash and validation, for new or
    changed objects only."""
    settings = media.settings()
    done = 0

    def on_start(count: int, size: int) -> None:
        context.log.info(f"fingerprinting {count} objects ({size} bytes)")

    def on_result(_: object) -> None:
        nonlocal done
        done += 1
        if done % 1000 == 0:
            context.log.info(f"fingerprinted {done} objects")

    stats = stages.fingerprint_pending(
        settings, media.s3_client(), on_start=on_start, on_result=on_result
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
