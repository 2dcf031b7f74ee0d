"""Attaching the catalog from the settings (what every part of the library uses)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from media_pipeline.catalog.catalog import Catalog

if TYPE_CHECKING:
    from media_pipeline.settings import Settings


@contextmanager
def open_catalog(settings: Settings, *, read_only: bool = False) -> Iterator[Catalog]:
    """The catalog where the settings say it lives (``Settings.catalog_location``)."""
    with Catalog.open(settings.catalog_location, read_only=read_only) as catalog:
        yield catalog
