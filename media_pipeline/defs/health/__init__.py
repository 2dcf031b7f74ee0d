"""Health: one Dagster asset check per check in ``media_pipeline.health.CHECKS`` (the list
`media-pipeline health` prints too)."""

from typing import Any

import dagster as dg

from media_pipeline import health
from media_pipeline.defs.resources import MediaPipelineResource

SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}


def _metadata_value(value: Any) -> Any:
    if isinstance(value, health.Markdown):
        return dg.MetadataValue.md(str(value))
    if isinstance(value, list | dict):
        return dg.MetadataValue.json(value)
    return value


def build_asset_check(check: health.Check) -> dg.AssetChecksDefinition:
    """The asset check that runs ``check`` for a run's settings."""

    @dg.asset_check(name=check.name, asset=dg.AssetKey(check.asset),
                    description=check.description)
    def _check(media: MediaPipelineResource) -> dg.AssetCheckResult:
        client = media.s3_client() if check.needs_s3 else None
        outcome = check.run(media.settings(), client, health.DEFAULT_SAMPLE)
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=SEVERITY[check.severity],
            metadata={k: _metadata_value(v) for k, v in outcome.metadata.items()},
            description=outcome.description,
        )

    return _check


# By name, for direct invocation (tests).
HEALTH_CHECKS = {check.name: build_asset_check(check) for check in health.CHECKS}

defs = dg.Definitions(asset_checks=list(HEALTH_CHECKS.values()))


def asset_check(name: str) -> dg.AssetChecksDefinition:
    """The asset check called ``name``."""
    return HEALTH_CHECKS[name]


__all__ = ["HEALTH_CHECKS", "asset_check", "build_asset_check", "defs"]
