"""The catalog (a DuckLake): the one place that writes SQL against it."""

from media_pipeline.catalog.catalog import Catalog, CatalogError
from media_pipeline.catalog.dedup import DuplicateStats
from media_pipeline.catalog.lake import LakeLocation
from media_pipeline.catalog.objects import InventoryDiff, ObjectsApplied
from media_pipeline.catalog.opening import open_catalog
from media_pipeline.errors import CatalogConflict

__all__ = [
    "Catalog",
    "CatalogConflict",
    "CatalogError",
    "DuplicateStats",
    "InventoryDiff",
    "LakeLocation",
    "ObjectsApplied",
    "open_catalog",
]
