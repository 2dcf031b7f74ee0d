"""Fingerprints: what each object is (the checks on what the bucket holds: ``defs/health``)."""

import dagster as dg

from media_pipeline.defs.fingerprints.assets import fingerprints

defs = dg.Definitions(assets=[fingerprints])

__all__ = ["defs", "fingerprints"]
