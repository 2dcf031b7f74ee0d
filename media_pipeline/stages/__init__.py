"""The pipeline's stages as plain functions, one module per stage: what the Dagster assets and
the CLI both call.

Each stage that does heavy work (listing, reading objects) works outside the catalog and writes
Parquet under ``work/``; the catalog is opened only for the short commit that merges it.
"""

from media_pipeline.stages.dedup import rebuild_duplicates, rebuild_near_duplicates
from media_pipeline.stages.fingerprint import FingerprintStats, fingerprint_pending
from media_pipeline.stages.ingest import IngestResult, ingest_keys
from media_pipeline.stages.inventory import (
    commit_inventory,
    inventory_snapshot_path,
    take_inventory,
)

__all__ = [
    "FingerprintStats",
    "IngestResult",
    "commit_inventory",
    "fingerprint_pending",
    "ingest_keys",
    "inventory_snapshot_path",
    "rebuild_duplicates",
    "rebuild_near_duplicates",
    "take_inventory",
]
