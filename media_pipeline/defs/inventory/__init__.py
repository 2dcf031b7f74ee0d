"""Inventory: the bucket's objects into the catalog."""

import dagster as dg

from media_pipeline.defs.inventory.assets import GROUP, inventory_snapshot, media_files
from media_pipeline.defs.inventory.checks import file_accessibility

ASSETS = [inventory_snapshot, media_files]

defs = dg.Definitions(assets=ASSETS, asset_checks=[file_accessibility])

__all__ = ["ASSETS", "GROUP", "defs", "inventory_snapshot", "media_files"]
