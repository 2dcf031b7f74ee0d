"""References: the content sources, one scan asset per source, the reference index. Built
from the settings, because the per-source assets come from the sources file."""

import dagster as dg

from media_pipeline.defs.references.assets import (
    GROUP_REFERENCES,
    build_reference_assets,
    build_source_asset,
    content_sources,
    source_asset_name,
)
from media_pipeline.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    """The reference assets for the content sources ``settings`` names."""
    return dg.Definitions(assets=build_reference_assets(settings))


__all__ = ["GROUP_REFERENCES", "build_defs", "build_source_asset", "content_sources",
           "source_asset_name"]
