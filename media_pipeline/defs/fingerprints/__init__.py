"""Fingerprints: what each object is, and the checks on what the bucket holds."""

import dagster as dg

from media_pipeline.defs.fingerprints.assets import fingerprints
from media_pipeline.defs.fingerprints.checks import public_exposure, storage_usage

defs = dg.Definitions(assets=[fingerprints], asset_checks=[storage_usage, public_exposure])

__all__ = ["defs", "fingerprints"]
