"""Inventory: the bucket's objects into the catalog (its checks: ``defs/health``)."""

import dagster as dg

from media_pipeline.defs.inventory.assets import GROUP, inventory_snapshot, media_files

ASSETS = [inventory_snapshot, media_files]

defs = dg.Definitions(assets=ASSETS)

__all__ = ["ASSETS", "GROUP", "defs", "inventory_snapshot", "media_files"]
