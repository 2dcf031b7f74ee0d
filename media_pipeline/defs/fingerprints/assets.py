"""``fingerprints``: hash, sniffed type, metadata, perceptual hash and validation of new or
changed objects.

The nightly does the work in 16 pieces, ``fingerprints_0`` … ``fingerprints_f`` (the objects
whose media id starts with that hex digit), each its own step: with the multiprocess or Celery
executor they run at once, on as many processes or machines as there are. Each reads its
objects, then commits its results to the catalog in one short transaction (pieces touching the
same data file conflict and are run again: ``catalog.retry``). ``fingerprints`` follows them: it
takes whatever is still pending (all of it when materialized alone) and reports the run's
totals.
"""

from typing import Any

import dagster as dg

from media_pipeline import stages
from media_pipeline.defs.inventory import GROUP, media_files
from media_pipeline.defs.pieces import piece_key, run_totals
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource
from media_pipeline.stages.fingerprint import SHARDS, FingerprintStats

SUMMED = ("objects", "bytes_read", "active", "quarantined", "public_closed", "missing", "errors",
          "s3_retries")


def _metadata(stats: FingerprintStats) -> dict[str, Any]:
    return {
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


def _fingerprint(context: dg.AssetExecutionContext, media: MediaPipelineResource,
                 shard: str | None) -> FingerprintStats:
    done = 0

    def on_start(count: int, size: int) -> None:
        context.log.info(f"fingerprinting {count} objects ({size} bytes)")

    def on_result(_: object) -> None:
        nonlocal done
        done += 1
        if done % 1000 == 0:
            context.log.info(f"fingerprinted {done} objects")

    return stages.fingerprint_pending(media.settings(), media.s3_client(), on_start=on_start,
                                      on_result=on_result, shard=shard)


def _build_shard(shard: str) -> dg.AssetsDefinition:
    @dg.asset(name=piece_key("fingerprints", shard).path[0], group_name=GROUP, deps=[media_files],
              compute_kind="python")
    def _shard(context: dg.AssetExecutionContext,
               media: MediaPipelineResource) -> dg.MaterializeResult:
        """Fingerprints of the new or changed objects whose media id starts with this shard's
        hex digit."""
        return dg.MaterializeResult(metadata=_metadata(_fingerprint(context, media, shard)))

    return _shard


FINGERPRINT_SHARDS = [_build_shard(shard) for shard in SHARDS]


@dg.asset(group_name=GROUP, deps=[media_files, *FINGERPRINT_SHARDS], pool=CATALOG_POOL,
          compute_kind="python")
def fingerprints(
    context: dg.AssetExecutionContext, media: MediaPipelineResource
) -> dg.MaterializeResult:
    """SHA-256, sniffed type, image/PDF metadata, perceptual hash and validation, for new or
    changed objects only: what this run's shards did, and whatever is still pending."""
    stats = _fingerprint(context, media, None)
    metadata = _metadata(stats)
    shards = run_totals(context, "fingerprints", SUMMED)
    for name in SUMMED:
        metadata[name] += shards[name]
    metadata["in_shards"] = shards["objects"]
    seconds = metadata["seconds"]
    metadata["objects_per_second"] = (round(metadata["objects"] / seconds, 1)
                                      if seconds and not shards["objects"] else None)
    if metadata["objects_per_second"] is None:
        del metadata["objects_per_second"]  # the shards' own figures say it
    return dg.MaterializeResult(metadata=metadata)
