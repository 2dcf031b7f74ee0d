"""Reference-index assets (their checks: ``defs/health``).

One asset per content source (``references_<name>``, built from the sources file when the
definitions are built), so the UI shows each source's last scan and its failures on their own;
they feed ``reference_index``, then the lifecycle assets (``defs/lifecycle``). A sources file
that cannot be read gives no per-source assets and a red ``content_sources``.
"""

import logging
import re
from typing import Any

import dagster as dg

from media_pipeline import lifecycle
from media_pipeline.catalog import open_catalog
from media_pipeline.defs.fingerprints import fingerprints
from media_pipeline.defs.inventory import media_files
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource
from media_pipeline.references.index import SourceScanOutcome, scan_source, select_sources
from media_pipeline.references.sources import sources_from_settings
from media_pipeline.settings import Settings

GROUP_REFERENCES = "references"
log = logging.getLogger(__name__)


def source_asset_name(source: str) -> str:
    """A valid asset name for a source name (letters, digits, underscores)."""
    return "references_" + re.sub(r"[^A-Za-z0-9_]", "_", source)


@dg.asset(group_name=GROUP_REFERENCES, compute_kind="yaml")
def content_sources(media: MediaPipelineResource) -> dg.MaterializeResult:
    """The content sources configured in MEDIA_PIPELINE_SOURCES (fails on a broken file)."""
    settings = media.settings()
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
    def _scan(context: dg.AssetExecutionContext, media: MediaPipelineResource
              ) -> dg.MaterializeResult:
        settings = media.settings()
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


def build_reference_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    source_assets = [build_source_asset(n) for n in _configured_source_names(settings)]

    @dg.asset(group_name=GROUP_REFERENCES, deps=[*source_assets, fingerprints],
              pool=CATALOG_POOL, compute_kind="duckdb")
    def reference_index(media: MediaPipelineResource) -> dg.MaterializeResult:
        """Scanned and API references side by side (the counts are derived from them)."""
        settings = media.settings()
        with open_catalog(settings) as cat:
            totals = cat.references.reference_totals()
            stale = cat.references.stale_sources(
                cat.references.required_sources(lifecycle.enabled_source_names(settings)))
        return dg.MaterializeResult(metadata={
            "dagster/row_count": totals["references"],
            "api_references": totals["api"],
            "scanned_references": totals["scan"],
            "referenced_files": totals["referenced_files"],
            "dangling": totals["dangling"],
            "stale_sources": len(stale),
            "stale": dg.MetadataValue.json(stale),
        })

    return [content_sources, *source_assets, reference_index]
