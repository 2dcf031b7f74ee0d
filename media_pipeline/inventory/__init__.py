"""S3 Inventory reports and live listings → object snapshots (one Parquet contract).

See :mod:`media_pipeline.inventory.snapshot` for the contract the catalog committer reads.
"""

from media_pipeline.inventory.generate import (
    WrittenReport,
    aws_url_encode,
    synthetic_kept_rows,
    write_inventory_report,
    write_synthetic_csv_inventory,
)
from media_pipeline.inventory.listing import list_to_snapshot
from media_pipeline.inventory.manifest import (
    InventoryLocation,
    Manifest,
    ManifestFile,
    ManifestRef,
    find_latest_manifest,
    load_manifest,
    parse_manifest,
    read_inventory,
)
from media_pipeline.inventory.snapshot import (
    SNAPSHOT_COLUMN_NAMES,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_SCHEMA,
    InventoryError,
    SnapshotStats,
    SnapshotWriter,
    validate_snapshot,
)

__all__ = [
    "SNAPSHOT_COLUMNS",
    "SNAPSHOT_COLUMN_NAMES",
    "SNAPSHOT_SCHEMA",
    "InventoryError",
    "InventoryLocation",
    "Manifest",
    "ManifestFile",
    "ManifestRef",
    "SnapshotStats",
    "SnapshotWriter",
    "WrittenReport",
    "aws_url_encode",
    "find_latest_manifest",
    "list_to_snapshot",
    "load_manifest",
    "parse_manifest",
    "read_inventory",
    "synthetic_kept_rows",
    "validate_snapshot",
    "write_inventory_report",
    "write_synthetic_csv_inventory",
]
