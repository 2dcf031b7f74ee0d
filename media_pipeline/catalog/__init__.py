"""The DuckDB catalog: the one place that writes SQL against it."""

from media_pipeline.catalog.catalog import (
    Catalog,
    CatalogError,
    CatalogLockTimeout,
    DuplicateStats,
    InventoryDiff,
    open_reader,
    publish_snapshot,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogLockTimeout",
    "DuplicateStats",
    "InventoryDiff",
    "open_reader",
    "publish_snapshot",
]
