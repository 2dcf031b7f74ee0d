"""Table previews (top 10) for the duplicate assets' metadata in the Dagster UI."""

from __future__ import annotations

import dagster as dg

from media_pipeline.catalog import open_catalog
from media_pipeline.settings import Settings

PREVIEW_ROWS = 10


def duplicate_groups_preview(settings: Settings) -> dg.TableMetadataValue:
    """The groups wasting most bytes: the kept (canonical) key, copies, size, wasted bytes."""
    with open_catalog(settings) as catalog:
        groups = catalog.dedup.top_duplicate_groups(PREVIEW_ROWS)
    return dg.MetadataValue.table(
        records=[dg.TableRecord({
            "canonical_key": g["members"][0]["key"] if g["members"] else "",
            "other_keys": ", ".join(m["key"] for m in g["members"][1:4])
                          + (" …" if len(g["members"]) > 4 else ""),
            "copies": g["member_count"], "file_size": g["file_size"],
            "wasted_bytes": g["wasted_bytes"]}) for g in groups],
        schema=dg.TableSchema(columns=[
            dg.TableColumn("canonical_key", "string"), dg.TableColumn("other_keys", "string"),
            dg.TableColumn("copies", "int"), dg.TableColumn("file_size", "int"),
            dg.TableColumn("wasted_bytes", "int")]),
    )


def near_duplicates_preview(settings: Settings) -> dg.TableMetadataValue:
    """The closest pairs: both keys, their sizes, method and distance."""
    with open_catalog(settings) as catalog:
        pairs = catalog.dedup.top_near_duplicates(PREVIEW_ROWS)
    return dg.MetadataValue.table(
        records=[dg.TableRecord({
            "key_a": p["a"]["key"], "key_b": p["b"]["key"],
            "size_a": p["a"]["file_size"], "size_b": p["b"]["file_size"],
            "method": p["method"], "distance": round(p["method_distance"], 4)})
            for p in pairs],
        schema=dg.TableSchema(columns=[
            dg.TableColumn("key_a", "string"), dg.TableColumn("key_b", "string"),
            dg.TableColumn("size_a", "int"), dg.TableColumn("size_b", "int"),
            dg.TableColumn("method", "string"),
            dg.TableColumn("distance", "float", description="bits, or 1 - cosine")]),
    )
