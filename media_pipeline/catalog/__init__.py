"""The DuckDB catalog: the one place that writes SQL against it."""

from media_pipeline.catalog.catalog import (
    Catalog,
    CatalogError,
    CatalogLockTimeout,
    DuplicateStats,
    InventoryDiff,
    ObjectsApplied,
    open_reader,
    publish_snapshot,
    reader_path,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogLockTimeout",
    "DuplicateStats",
    "InventoryDiff",
    "ObjectsApplied",
    "open_reader",
    "publish_snapshot",
    "reader_path",
]
