"""The inventory's asset check: catalogued objects are still in the bucket."""

import dagster as dg

from media_pipeline import health
from media_pipeline.defs.inventory.assets import media_files
from media_pipeline.defs.resources import MediaPipelineResource

MAX_KEYS_SHOWN = 50


@dg.asset_check(
    asset=media_files,
    description="HEAD a sample of catalogued objects; objects gone from the bucket fail it.",
)
def file_accessibility(media: MediaPipelineResource) -> dg.AssetCheckResult:
    report = health.check_accessibility(media.settings(), media.s3_client())
    shown = report.missing_keys[:MAX_KEYS_SHOWN]
    return dg.AssetCheckResult(
        passed=report.ok,
        metadata={
            "checked": report.checked,
            "missing": len(report.missing_keys),
            "errors": len(report.errors),
            "missing_keys": dg.MetadataValue.json(shown),
        },
        description=(
            None if report.ok else
            f"{len(report.missing_keys)} missing: " + ", ".join(shown[:10])
        ),
    )
