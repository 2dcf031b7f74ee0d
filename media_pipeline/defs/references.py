"""Reference-index and lifecycle assets, the purge job and their checks.

One asset per content source (``references_<name>``, built from the sources file when the
definitions load), so the UI shows each source's last scan and its failures on their own; they
feed ``reference_index``, then the lifecycle assets (``auto_soft_delete``, ``purged_files``).
A sources file that cannot be read gives no per-source assets and a red ``content_sources``.
"""

import logging
import re
from collections.abc import Sequence
from typing import Any

import dagster as dg

from media_pipeline import health, lifecycle
from media_pipeline.defs.assets import CATALOG_POOL, fingerprints, media_files
from media_pipeline.defs.resources import CatalogResource, MediaS3Resource
from media_pipeline.pipeline import open_catalog
from media_pipeline.references.index import SourceScanOutcome, scan_source, select_sources
from media_pipeline.references.sources import sources_from_settings
from media_pipeline.settings import Settings

GROUP_REFERENCES = "references"
GROUP_LIFECYCLE = "lifecycle"
MAX_SHOWN = 50
log = logging.getLogger(__name__)


class PurgeConfig(dg.Config):
    """``dry_run``: report what would be purged and change nothing."""

    dry_run: bool = False


def source_asset_name(source: str) -> str:
    """A valid asset name for a source name (letters, digits, underscores)."""
    return "references_" + re.sub(r"[^A-Za-z0-9_]", "_", source)


@dg.asset(group_name=GROUP_REFERENCES, compute_kind="yaml")
def content_sources(s3: MediaS3Resource, catalog: CatalogResource) -> dg.MaterializeResult:
    """The content sources configured in MEDIA_PIPELINE_SOURCES (fails on a broken file)."""
    settings = catalog.settings(s3)
    sources = sources_from_settings(settings)
    return dg.MaterializeResult(metadata={
        "sources": len(sources),
        "enabled": sum(1 for s in sources if s.enabled),
        "described": dg.MetadataValue.json({s.name: s.describe() for s in sources}),
    })


def _outcome_metadata(outcome: SourceScanOutcome) -> dict[str, Any]:
    return {
        "documents": outcome.documents,
        "bytes": outcome.bytes,
        "dagster/row_count": outcome.refs,
        "added": outcome.added,
        "removed": outcome.removed,
        "text_fallbacks": outcome.text_fallbacks,
        "seconds": round(outcome.seconds, 3),
        "mb_per_second": round(outcome.bytes / 1e6 / outcome.seconds, 1)
        if outcome.seconds else 0,
    }


def build_source_asset(source_name: str) -> dg.AssetsDefinition:
    @dg.asset(name=source_asset_name(source_name), group_name=GROUP_REFERENCES,
              deps=[content_sources, media_files], compute_kind="python",
              description=f"References found in the content source {source_name!r}.")
    def _scan(context: dg.AssetExecutionContext, s3: MediaS3Resource,
              catalog: CatalogResource) -> dg.MaterializeResult:
        settings = catalog.settings(s3)
        [source] = select_sources(settings, [source_name])

        def progress(name: str, documents: int, size: int) -> None:
            if documents and documents % 50_000 < 5_000:
                context.log.info(f"{name}: {documents} documents, {size / 1e6:.0f} MB")

        outcome = scan_source(settings, source, run_id=context.run.run_id, progress=progress)
        if outcome.state == "suspect":
            raise dg.Failure(
                description=f"content source {source_name!r} scan is suspect and was not "
                            f"applied ({'; '.join(outcome.reasons)}); its previous references "
                            "are kept and purges are blocked until an admin accepts it with "
                            f"media-pipeline scan {source_name} --accept-drop --user ADMIN",
                metadata={**_outcome_metadata(outcome),
                          "drift": dg.MetadataValue.json(outcome.reasons)})
        if not outcome.ok:
            # Old references are kept and the source is stale: purges refuse until it scans.
            raise dg.Failure(
                description=f"content source {source_name!r} failed; its previous references "
                            f"are kept and purges are blocked: {outcome.error}",
                metadata={"error": outcome.error or ""})
        return dg.MaterializeResult(metadata=_outcome_metadata(outcome))

    return _scan


def _configured_source_names(settings: Settings) -> list[str]:
    try:
        return [s.name for s in sources_from_settings(settings) if s.enabled]
    except Exception as exc:  # a broken file shows as a failing content_sources run
        log.warning("content sources not loaded: %s", exc)
        return []


def build_reference_assets(settings: Settings | None = None) -> list[dg.AssetsDefinition]:
    settings = settings or Settings.from_env()
    source_assets = [build_source_asset(n) for n in _configured_source_names(settings)]

    @dg.asset(group_name=GROUP_REFERENCES, deps=[*source_assets, fingerprints],
              pool=CATALOG_POOL, compute_kind="duckdb")
    def reference_index(s3: MediaS3Resource, catalog: CatalogResource) -> dg.MaterializeResult:
        """Scanned and API references side by side; reference counts re-derived from them."""
        settings = catalog.settings(s3)
        with open_catalog(settings) as cat:
            cat.sync_reference_counts()
            totals = cat.reference_totals()
            stale = cat.stale_sources(
                cat.required_sources(lifecycle.enabled_source_names(settings)))
        return dg.MaterializeResult(metadata={
            "dagster/row_count": totals["references"],
            "api_references": totals["api"],
            "scanned_references": totals["scan"],
            "referenced_files": totals["referenced_files"],
            "dangling": totals["dangling"],
            "stale_sources": len(stale),
            "stale": dg.MetadataValue.json(stale),
        })

    @dg.asset(group_name=GROUP_LIFECYCLE, deps=[reference_index], pool=CATALOG_POOL,
              compute_kind="duckdb")
    def auto_soft_delete(context: dg.AssetExecutionContext, s3: MediaS3Resource,
                         catalog: CatalogResource) -> dg.MaterializeResult:
        """Soft-deletes files unreferenced for MEDIA_PIPELINE_AUTO_DELETE_DAYS (per namespace;
        off by default), as ``system``."""
        settings = catalog.settings(s3)
        with open_catalog(settings) as cat:
            report = lifecycle.auto_soft_delete(
                cat, settings, enabled_sources=lifecycle.enabled_source_names(settings),
                run_id=context.run.run_id)
        if report.refused_reason:
            context.log.warning(report.refused_reason)
        return dg.MaterializeResult(metadata={
            "soft_deleted": report.total,
            "namespaces_enabled": len(settings.auto_delete_days),
            **{f"soft_deleted/{ns}": n for ns, n in sorted(report.deleted.items())},
        })

    @dg.asset(group_name=GROUP_LIFECYCLE, deps=[auto_soft_delete], pool=CATALOG_POOL,
              compute_kind="s3")
    def purged_files(context: dg.AssetExecutionContext, s3: MediaS3Resource,
                     catalog: CatalogResource, config: PurgeConfig) -> dg.MaterializeResult:
        """Mark-then-sweep purge of files soft-deleted past the retention that nothing uses."""
        settings = catalog.settings(s3)

        def on_step(step: str, info: dict[str, Any]) -> None:
            context.log.debug(f"purge {step}: {info}")

        report = lifecycle.purge(
            settings, s3.get_client(),
            enabled_sources=lifecycle.enabled_source_names(settings),
            dry_run=config.dry_run, on_step=on_step, run_id=context.run.run_id)
        if report.refused_reason:
            context.log.warning(f"purge refused: {report.refused_reason}")
        if report.errors:
            raise dg.Failure(description=f"{len(report.errors)} purge errors; those files "
                             f"stay soft-deleted: {report.errors[:5]}")
        return dg.MaterializeResult(metadata={
            "dry_run": config.dry_run,
            "candidates": report.candidates,
            "purged": report.purged,
            "bytes_freed": report.bytes_freed,
            "refused": report.refused_reason or "",
            "settled_from_interrupted_run": report.settled,
        })

    return [content_sources, *source_assets, reference_index, auto_soft_delete, purged_files]


reference_index_key = dg.AssetKey("reference_index")


@dg.asset_check(asset=reference_index_key,
                description="Dangling references and references to purged or missing files.")
def reference_integrity(s3: MediaS3Resource, catalog: CatalogResource) -> dg.AssetCheckResult:
    found = health.reference_health(catalog.settings(s3), limit=MAX_SHOWN)
    dangling, gone = found.dangling, found.to_gone_files
    problems = len(dangling) + len(gone)
    return dg.AssetCheckResult(
        passed=problems == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "dangling": len(dangling),
            "to_purged_or_missing": len(gone),
            "examples": dg.MetadataValue.json(_jsonable([*dangling, *gone][:MAX_SHOWN])),
        },
        description=None if problems == 0 else (
            f"{len(dangling)} dangling references, {len(gone)} to purged or missing files"
            + (f" (first {MAX_SHOWN} of each listed)" if problems >= MAX_SHOWN else "")),
    )


@dg.asset_check(asset=reference_index_key,
                description="reference_count and referenced_in agree with the index.")
def catalog_consistency(s3: MediaS3Resource, catalog: CatalogResource) -> dg.AssetCheckResult:
    wrong = health.reference_health(catalog.settings(s3), limit=MAX_SHOWN).count_mismatches
    return dg.AssetCheckResult(
        passed=not wrong,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"mismatches": len(wrong),
                  "examples": dg.MetadataValue.json(_jsonable(wrong))},
        description=None if not wrong else f"{len(wrong)} files disagree with the index",
    )


def _jsonable(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v if isinstance(v, int | float | bool | None) else str(v)
             for k, v in row.items()} for row in rows]


@dg.asset_check(asset=reference_index_key,
                description="Every source a purge needs (configured or remembered) has a "
                            "trusted latest scan: not failed, not suspect.")
def content_sources_trusted(s3: MediaS3Resource, catalog: CatalogResource
                            ) -> dg.AssetCheckResult:
    status = health.source_health(catalog.settings(s3))
    stale = [s for s in status if s["stale"]]
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"sources": len(status), "stale": len(stale),
                  "reasons": dg.MetadataValue.json({s["source"]: s["reason"] for s in stale})},
        description=None if not stale else "; ".join(
            f"{s['source']}: {s['reason']}" for s in stale),
    )


@dg.asset_check(asset=dg.AssetKey("purged_files"),
                description="Whether a purge can be undone (versioned bucket, marker mode).")
def purge_undo_window(s3: MediaS3Resource, catalog: CatalogResource) -> dg.AssetCheckResult:
    undo = lifecycle.bucket_versioning(catalog.settings(s3), s3.get_client())
    return dg.AssetCheckResult(
        passed=bool(undo["undo"]), severity=dg.AssetCheckSeverity.WARN,
        metadata={"versioning": str(undo["versioning"]),
                  "noncurrent_days": undo.get("noncurrent_days") or 0},
        description=undo["detail"])


REFERENCE_CHECKS = [reference_integrity, catalog_consistency, content_sources_trusted,
                    purge_undo_window]
