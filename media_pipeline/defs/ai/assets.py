"""The ai_analysis asset, its job, hourly schedule and the ai_service_status check."""

from typing import Any

import dagster as dg

from media_pipeline.ai.runner import analyze_batch
from media_pipeline.ai.service import MediaAIService
from media_pipeline.ai.thresholds import Thresholds
from media_pipeline.catalog import open_catalog
from media_pipeline.defs.fingerprints import fingerprints
from media_pipeline.defs.pieces import SHARDS, piece_key, run_totals
from media_pipeline.defs.resources import MediaPipelineResource


class AIAnalysisConfig(dg.Config):
    batch_size: int = 20
    max_files: int = 500
    mode: str = "missing"  # "missing": only files without a current result; "all": redo


def make_service(media: MediaPipelineResource) -> MediaAIService:
    settings = media.settings()
    return MediaAIService(settings, thresholds=Thresholds.from_settings(
        settings.ai_confidence_threshold, settings.ai_detector_thresholds))


SHARD_FILES = 32  # a piece's default share of an hourly run (16 pieces, ~500 contents)
SUMMED = ("analysed", "failed", "deferred", "files_updated", "cached_applied")


class AIShardConfig(dg.Config):
    batch_size: int = 8
    max_files: int = SHARD_FILES
    mode: str = "missing"


def _analyse(context: dg.AssetExecutionContext, media: MediaPipelineResource,
             config: AIAnalysisConfig | AIShardConfig, shard: str | None
             ) -> dict[str, Any]:
    settings = media.settings()
    service = make_service(media)
    status = service.backend.status()
    if not status.get("ok"):
        context.log.warning(f"AI analysis skipped: {status}")
        return {"skipped": True, "reason": dg.MetadataValue.json(status), "analysed": 0}
    stats = analyze_batch(
        settings, media.s3_client(), service, lambda: open_catalog(settings),
        batch_size=config.batch_size, max_files=config.max_files, mode=config.mode,
        on_result=lambda key, _result: context.log.debug(f"analysed {key}"), shard=shard,
    )
    if stats.deferred:
        context.log.warning(f"{stats.deferred} files deferred: {stats.deferred_reason}")
    return {
        "analysed": stats.analysed,
        "failed": stats.failed,
        "deferred": stats.deferred,
        "files_updated": stats.files_updated,
        "cached_applied": stats.cached_applied,
        "seconds": round(stats.seconds, 2),
        "files_per_second": round(stats.analysed / stats.seconds, 2) if stats.seconds else 0.0,
        "backend": stats.backend,
        "model": stats.model,
    }


def _build_shard(shard: str) -> dg.AssetsDefinition:
    # No pool: the analysis holds the catalog only for short commits, so it must not block
    # reconciliation for the minutes a batch takes.
    @dg.asset(name=piece_key("ai_analysis", shard).path[0], group_name="ai", deps=[fingerprints],
              compute_kind="python")
    def _shard(context: dg.AssetExecutionContext, config: AIShardConfig,
               media: MediaPipelineResource) -> dg.MaterializeResult:
        """AI analysis of the next contents whose hash starts with this piece's hex digit."""
        return dg.MaterializeResult(metadata=_analyse(context, media, config, shard))

    return _shard


AI_SHARDS = [_build_shard(shard) for shard in SHARDS]


@dg.asset(group_name="ai", deps=[fingerprints, *AI_SHARDS], compute_kind="python")
def ai_analysis(
    context: dg.AssetExecutionContext,
    config: AIAnalysisConfig,
    media: MediaPipelineResource,
) -> dg.MaterializeResult:
    """Tags, titles, OCR text, labels, faces and moderation scores, per content hash, in batches.
    Skipped (with the reason) when no AI engine is installed; deferred when the service is down.
    The hourly job first runs 16 pieces (``ai_analysis_0`` … ``ai_analysis_f``, by the content
    hash's first hex digit) that may run at once on many workers; this takes what is left, up
    to ``max_files``, and reports the run's totals."""
    metadata = _analyse(context, media, config, None)
    shards = run_totals(context, "ai_analysis", SUMMED)
    if not metadata.get("skipped"):
        for name in SUMMED:
            metadata[name] += shards[name]
    metadata["in_shards"] = shards["analysed"]
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=ai_analysis, description="The AI backend answers (engines load, or the "
                "remote service responds).")
def ai_service_status(media: MediaPipelineResource) -> dg.AssetCheckResult:
    status = make_service(media).backend.status()
    return dg.AssetCheckResult(
        passed=bool(status.get("ok")),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"status": dg.MetadataValue.json(status)},
    )


ai_batch = dg.define_asset_job(
    "ai_batch", selection=dg.AssetSelection.assets(ai_analysis, *AI_SHARDS),
    description="Analyse the next files without AI results.",
)

ai_batch_schedule = dg.ScheduleDefinition(
    name="ai_batch_schedule", job=ai_batch, cron_schedule="15 * * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
)
