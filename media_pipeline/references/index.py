"""Rebuilding the reference index from the content sources: read, extract, commit per source.

Each source is scanned on its own and committed on its own: its rows are replaced in one
transaction only when the source was read to the end. A source that fails (cannot connect, breaks
off halfway, malformed page) keeps its old rows and is recorded as failed, which makes it stale:
purges refuse until it scans cleanly again. The catalog is held only to read the known keys and
to commit, never while content is read.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from media_pipeline.access import PermissionDenied
from media_pipeline.catalog import Catalog, open_catalog
from media_pipeline.catalog.references import DEFAULT_MAX_DROP
from media_pipeline.errors import InvalidInput
from media_pipeline.references.extract import ReferenceExtractor
from media_pipeline.references.mentions import MentionMatcher
from media_pipeline.references.scan import scan_documents
from media_pipeline.references.sources import ContentSource, SourceError, sources_from_settings
from media_pipeline.settings import Settings

log = logging.getLogger(__name__)

ScanProgress = Callable[[str, int, int], None]
"""Called with (source name, documents so far, bytes so far)."""


@dataclass
class SourceScanOutcome:
    """How one source's scan went; ``ok`` False means its old references were kept."""

    source: str
    ok: bool
    documents: int = 0
    bytes: int = 0
    refs: int = 0
    text_fallbacks: int = 0
    seconds: float = 0.0
    added: int = 0
    removed: int = 0
    error: str | None = None
    # trusted | accepted (a drop an operator accepted) | suspect (not applied) | failed
    state: str = "trusted"
    reasons: list[str] = field(default_factory=list)
    baseline: dict[str, Any] | None = None


def select_sources(settings: Settings, names: Sequence[str] | None = None
                   ) -> list[ContentSource]:
    """The enabled sources, or the named ones (an unknown or disabled name is an error)."""
    sources = sources_from_settings(settings)
    if not names:
        return [s for s in sources if s.enabled]
    by_name = {s.name: s for s in sources}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        configured = ", ".join(sorted(by_name)) or "none"
        where = settings.content_sources or "MEDIA_PIPELINE_SOURCES (not set)"
        raise InvalidInput(f"unknown content source {', '.join(unknown)} "
                           f"(configured in {where}: {configured})")
    disabled = [n for n in names if not by_name[n].enabled]
    if disabled:
        raise InvalidInput(f"content source {', '.join(disabled)} is disabled (enabled: false)")
    return [by_name[n] for n in dict.fromkeys(names)]


def scan_source(
    settings: Settings,
    source: ContentSource,
    *,
    extractor: ReferenceExtractor | None = None,
    run_id: str | None = None,
    progress: ScanProgress | None = None,
    workers: int = 2,
    accepted_by: str | None = None,
    started: datetime | None = None,
) -> SourceScanOutcome:
    """Scan one source and commit its references, or record its failure. Never raises for a
    failing source: the outcome says what happened. A scan that drops too far from the last
    trusted one is suspect and not applied (see ``replace_source_references``), unless
    ``accepted_by`` (an operator) accepts it."""
    extractor = extractor or ReferenceExtractor.from_settings(settings)
    started = started or datetime.now(UTC)  # tests may run a clock of their own
    clock = time.perf_counter()
    out_dir = settings.work_dir / "references" / source.name
    info = {"kind": source.kind, "description": source.describe()}
    with Catalog.open(settings.catalog_location) as catalog:
        others = catalog.references.other_buckets(settings.bucket)
    if others:
        # A scan replaces the source's references with what it recognises for this bucket and
        # looks for the mentions of this bucket's soft-deleted keys only: for the others' files
        # it would drop references and vouch for deletions it never looked for.
        error = (f"the catalog also holds objects of bucket {', '.join(map(repr, others))}, "
                 f"not only of {settings.bucket!r}: a scan reads references for one bucket, so "
                 "a catalog serves one bucket (use another MEDIA_PIPELINE_HOME or "
                 "MEDIA_PIPELINE_CATALOG_METADATA per bucket)")
        with open_catalog(settings) as catalog:
            catalog.references.record_source_failure(source.name, started, error, run_id=run_id,
                                                     source_info=info)
        return SourceScanOutcome(source.name, ok=False, error=error, state="failed",
                                 seconds=time.perf_counter() - clock)

    with Catalog.open(settings.catalog_location) as catalog:
        known = catalog.references.known_keys(settings.bucket)
        # loaded after ``started``: a file deleted before this scan is looked for by it, once
        # its deletion has committed; which deletions had is recorded with the scan (a
        # deletion's deleted_at is stamped before its commit, which may wait)
        with catalog.transaction():
            mentions = MentionMatcher.from_keys(catalog.references.mention_keys(settings.bucket))
            deletions_seen = catalog.references.deletions_seen()
        known_ids = catalog.references.known_media_ids(settings.bucket)
    extractor = extractor.with_evidence(mentions, known_ids)

    def on_progress(documents: int, size: int) -> None:
        if progress is not None:
            progress(source.name, documents, size)

    try:
        stats = scan_documents(source.documents(), extractor, out_dir, known_keys=known,
                               workers=workers, progress=on_progress)
    except Exception as exc:
        error = source.redact(str(exc) if isinstance(exc, SourceError)
                              else f"{type(exc).__name__}: {exc}")
        log.warning("content source %s failed, its old references are kept: %s",
                    source.name, error)
        with open_catalog(settings) as catalog:
            catalog.references.record_source_failure(source.name, started, error, run_id=run_id,
                                                     source_info=info)
        return SourceScanOutcome(source.name, ok=False, error=error, state="failed",
                                 seconds=time.perf_counter() - clock)
    try:
        with open_catalog(settings) as catalog:
            changes = catalog.references.replace_source_references(
                source.name, stats.fragments, started, stats={
                    "documents": stats.documents, "refs": stats.refs, "bytes": stats.bytes,
                    "text_fallbacks": stats.text_fallbacks,
                }, run_id=run_id,
                max_drop=settings.scan_max_drop if source.max_drop is None else source.max_drop,
                max_drop_origin=("sources file" if source.max_drop is not None else "environment"
                                 if settings.scan_max_drop != DEFAULT_MAX_DROP else "default"),
                accepted_by=accepted_by, source_info=info, deletions_seen=deletions_seen)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    drift = changes.get("drift") or {}
    if changes.get("state") == "suspect":
        log.warning("content source %s: suspect scan, not applied (%s)", source.name,
                    "; ".join(drift.get("reasons", [])))
    return SourceScanOutcome(
        source.name, ok=True, documents=stats.documents, bytes=stats.bytes, refs=stats.refs,
        text_fallbacks=stats.text_fallbacks, seconds=time.perf_counter() - clock,
        added=int(changes.get("added", 0)), removed=int(changes.get("removed", 0)),
        state=str(changes.get("state", "trusted")), reasons=list(drift.get("reasons", [])),
        baseline=drift.get("baseline"),
    )


def scan_sources(
    settings: Settings,
    names: Sequence[str] | None = None,
    *,
    run_id: str | None = None,
    progress: ScanProgress | None = None,
    workers: int = 2,
    accepted_by: str | None = None,
) -> list[SourceScanOutcome]:
    """Scan the enabled (or named) sources one after another; each commits on its own. Only a
    global admin (``settings.admins``) may accept a drop."""
    if accepted_by is not None and accepted_by not in settings.admins:
        raise PermissionDenied(f"{accepted_by} may not accept a scan drop: only admins "
                               "(MEDIA_PIPELINE_ADMINS) may")
    extractor = ReferenceExtractor.from_settings(settings)
    return [scan_source(settings, source, extractor=extractor, run_id=run_id,
                        progress=progress, workers=workers, accepted_by=accepted_by)
            for source in select_sources(settings, names)]
