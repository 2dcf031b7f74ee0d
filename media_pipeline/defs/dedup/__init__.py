"""Dedup: exact duplicate groups and near-duplicate pairs."""

import dagster as dg

from media_pipeline.defs.dedup.assets import duplicate_groups, near_duplicates

defs = dg.Definitions(assets=[duplicate_groups, near_duplicates])

__all__ = ["defs", "duplicate_groups", "near_duplicates"]
