"""Inventory: the bucket's objects into the catalog (its checks: ``defs/health``)."""

import dagster as dg

from media_pipeline.defs.inventory.assets import GROUP, MEDIA_FILES, SNAPSHOT, inventory

ASSETS = [inventory]
# What other domains depend on (a key: the two assets are one multi-asset).
media_files = MEDIA_FILES.key
inventory_snapshot = SNAPSHOT.key

defs = dg.Definitions(assets=ASSETS)

__all__ = ["ASSETS", "GROUP", "defs", "inventory", "inventory_snapshot", "media_files"]
