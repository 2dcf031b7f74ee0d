"""Fingerprints: what each object is (the checks on what the bucket holds: ``defs/health``)."""

import dagster as dg

from media_pipeline.defs.fingerprints.assets import FINGERPRINT_SHARDS, fingerprints

defs = dg.Definitions(assets=[*FINGERPRINT_SHARDS, fingerprints])

__all__ = ["FINGERPRINT_SHARDS", "defs", "fingerprints"]
