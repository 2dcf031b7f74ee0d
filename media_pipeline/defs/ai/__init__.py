"""AI: the ai_analysis asset, its hourly job and schedule, and the ai_service_status check."""

import dagster as dg

from media_pipeline.defs.ai.assets import (
    AI_SHARDS,
    ai_analysis,
    ai_batch,
    ai_batch_schedule,
    ai_service_status,
)

defs = dg.Definitions(assets=[*AI_SHARDS, ai_analysis], asset_checks=[ai_service_status],
                      jobs=[ai_batch], schedules=[ai_batch_schedule])

__all__ = ["ai_analysis", "defs"]
