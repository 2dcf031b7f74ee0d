"""compatibility: removed once the CLI imports stages/

The stages moved to ``media_pipeline.stages`` (one module per stage) and ``open_catalog`` to
``media_pipeline.catalog``; these names are re-exported for the callers not moved yet.
"""

from media_pipeline.catalog import open_catalog
from media_pipeline.stages import (
    FingerprintStats,
    IngestResult,
    commit_inventory,
    fingerprint_pending,
    ingest_keys,
    inventory_snapshot_path,
    rebuild_duplicates,
    rebuild_near_duplicates,
    take_inventory,
)

__all__ = [
    "FingerprintStats",
    "IngestResult",
    "commit_inventory",
    "fingerprint_pending",
    "ingest_keys",
    "inventory_snapshot_path",
    "open_catalog",
    "rebuild_duplicates",
    "rebuild_near_duplicates",
    "take_inventory",
]
