"""Ingest: the new_s3_objects sensor and the ingest_new_objects job it triggers."""

from media_pipeline.defs.ingest.sensors import build_defs, ingest_new_objects, new_s3_objects

__all__ = ["build_defs", "ingest_new_objects", "new_s3_objects"]
