"""The dedup stage: exact duplicate groups and near-duplicate pairs, rebuilt in the catalog."""

from __future__ import annotations

from media_pipeline.catalog import DuplicateStats, open_catalog
from media_pipeline.settings import Settings


def rebuild_duplicates(settings: Settings) -> DuplicateStats:
    with open_catalog(settings) as catalog:
        return catalog.rebuild_duplicate_groups()


def rebuild_near_duplicates(settings: Settings) -> int:
    with open_catalog(settings) as catalog:
        return catalog.rebuild_near_duplicates(settings.near_duplicate_distance)
