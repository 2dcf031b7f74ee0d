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
from media_pipeline.catalog.opening import open_catalog

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogLockTimeout",
    "DuplicateStats",
    "InventoryDiff",
    "ObjectsApplied",
    "open_catalog",
    "open_reader",
    "publish_snapshot",
    "reader_path",
]
