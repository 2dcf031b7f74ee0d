"""The dedup stage: exact duplicate groups and near-duplicate pairs, rebuilt in the catalog."""

from __future__ import annotations

from typing import Any

from media_pipeline.catalog import DuplicateStats, open_catalog
from media_pipeline.dedup.stage import NearDuplicateStats
from media_pipeline.settings import Settings
from media_pipeline.storage import make_client


def rebuild_duplicates(settings: Settings) -> DuplicateStats:
    with open_catalog(settings) as catalog:
        return catalog.dedup.rebuild_duplicate_groups()


def rebuild_near_duplicates(settings: Settings, client: Any = None) -> NearDuplicateStats:
    """Near-duplicate pairs by every method available (see media_pipeline.dedup)."""
    from media_pipeline.dedup.stage import rebuild_near_duplicates as rebuild

    return rebuild(settings, client or make_client(settings), open_catalog)
