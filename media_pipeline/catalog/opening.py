"""Opening the catalog for writing, from the settings (what every writer of the library uses)."""

from __future__ import annotations

from typing import Any

from media_pipeline.catalog.catalog import Catalog
from media_pipeline.settings import Settings


def open_catalog(settings: Settings, lock_timeout: float = 300.0) -> Any:
    """The catalog for writing; publishes the analysts' snapshot when the block ends."""
    return Catalog.open(
        settings.catalog_path, snapshot_path=settings.snapshot_path, lock_timeout=lock_timeout
    )
