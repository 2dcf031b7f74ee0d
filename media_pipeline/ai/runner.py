"""The AI stage: analyse files that have no result yet, in batches, and apply the results.

Results are keyed by content (SHA-256) and by backend, model, version and parameters, so exact
duplicates are analysed once and a new model version analyses again. Reading the catalog and
writing results are short commits; the analysis in between holds nothing. When the remote service
is unavailable the rest of the batch is deferred to the next run and nothing fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from media_pipeline.ai.model import AIServiceError, AIServiceUnavailable, AnalysisResult
from media_pipeline.ai.service import (
    IMAGE_TYPES,
    PDF_TYPE,
    AIBackend,
    MediaAIService,
    params_key,
    summarize,
)
from media_pipeline.catalog import Catalog
from media_pipeline.settings import Settings

ANALYSABLE_TYPES = (*IMAGE_TYPES, PDF_TYPE)


@dataclass
class AIRunStats:
    analysed: int = 0
    cached_applied: int = 0
    failed: int = 0
    deferred: int = 0
    files_updated: int = 0
    seconds: float = 0.0
    backend: str = ""
    model: str = ""
    deferred_reason: str | None = None
    errors: dict[str, str] = field(default_factory=dict)


def backend_key(backend: AIBackend) -> tuple[str, str, str, str]:
    return backend.name, backend.model, backend.version, params_key(backend.params())


def analyze_batch(
    settings: Settings,
    client: Any,
    service: MediaAIService,
    open_catalog: Callable[[], Any],
    *,
    batch_size: int = 20,
    max_files: int | None = None,
    mode: str = "missing",
    media_ids: Sequence[str] | None = None,
    on_result: Callable[[str, AnalysisResult], None] | None = None,
    shard: str | None = None,
) -> AIRunStats:
    """Analyse up to ``max_files`` distinct contents (all when None), ``batch_size`` per commit.

    ``mode`` "missing" analyses what has no current result; "all" redoes everything once.
    ``shard`` (a hex digit) takes only the contents whose hash starts with it: pieces that run
    at once never analyse the same content.
    """
    if mode not in ("missing", "all"):
        raise ValueError(f"mode must be 'missing' or 'all', got {mode!r}")
    backend = service.backend
    key = backend_key(backend)
    stats = AIRunStats(backend=backend.name, model=backend.model)
    started = time.monotonic()
    run_started = datetime.now(UTC)
    redo_before = run_started if mode == "all" else None
    expires_at = (
        datetime.now(UTC) + timedelta(seconds=settings.ai_cache_timeout)
        if backend.name != "local" else None
    )
    while max_files is None or stats.analysed + stats.failed < max_files:
        take = batch_size if max_files is None else min(
            batch_size, max_files - stats.analysed - stats.failed)
        with Catalog.open(settings.catalog_location) as catalog:
            work = catalog.ai.ai_work(key, ANALYSABLE_TYPES, limit=take, media_ids=media_ids,
                                      shard=shard,
                                      redo_before=redo_before, run_started=run_started)
        if not work:
            break
        results: list[tuple[str, str]] = []
        failures: list[tuple[str, str]] = []
        for item in work:
            try:
                data = _read(client, item, settings.max_file_size)
                result = backend.analyze(data, filename=item["key"],
                                         content_type=item["content_type"])
            except AIServiceUnavailable as exc:
                stats.deferred = len(work) - len(results) - len(failures)
                stats.deferred_reason = str(exc)
                break
            except AIServiceError as exc:
                if exc.status_code in (401, 403):  # a wrong key is not the files' fault
                    stats.deferred = len(work) - len(results) - len(failures)
                    stats.deferred_reason = str(exc)
                    break
                failures.append((item["file_hash"], f"{type(exc).__name__}: {exc}"))
                stats.errors[item["key"]] = failures[-1][1]
                continue
            except Exception as exc:  # one file failing never fails the batch
                failures.append((item["file_hash"], f"{type(exc).__name__}: {exc}"))
                stats.errors[item["key"]] = failures[-1][1]
                continue
            unusable = {k: v for k, v in result.errors.items() if k in ("decode", "type")}
            if unusable:  # a corrupt file is a failure to see in the metadata, not a result
                failures.append((item["file_hash"], "; ".join(unusable.values())))
                stats.errors[item["key"]] = failures[-1][1]
                continue
            results.append((item["file_hash"], json.dumps(result.to_dict())))
            if on_result is not None:
                on_result(item["key"], result)
        stats.analysed += len(results)
        stats.failed += len(failures)
        with open_catalog() as catalog:
            catalog.ai.record_ai_outcomes(key, results, failures, expires_at)
            stats.files_updated += _apply(catalog, key, service)
        if stats.deferred:
            break
    # Contents analysed earlier whose new duplicates (or whose files) do not show results yet.
    with open_catalog() as catalog:
        stats.files_updated += _apply(catalog, key, service, count=stats)
    stats.seconds = time.monotonic() - started
    return stats


def _apply(catalog: Catalog, key: tuple[str, str, str, str], service: MediaAIService,
           count: AIRunStats | None = None) -> int:
    pending = catalog.ai.ai_results_to_apply(key)
    if not pending:
        return 0
    files, tags = [], []
    for file_hash, doc in pending:
        result = AnalysisResult.from_dict(json.loads(doc))
        summary = summarize(result, service.thresholds)
        files.append({
            "file_hash": file_hash,
            "title": summary["title"],
            "tags": json.dumps([t["name"] for t in summary["tags"]]),
            "text": summary["extracted_text"] or None,
            "labels": json.dumps(summary["labels"]),
            "scores": json.dumps({"tags": summary["tags"], "moderation": summary["moderation"],
                                  "faces": summary["faces"], "errors": summary["errors"]}),
            "backend": result.backend,
        })
        tags += [(file_hash, t["name"], t["confidence"], t["detector"]) for t in summary["tags"]]
    if count is not None:
        count.cached_applied += len(pending)
    return catalog.ai.apply_ai(files, tags)


def _read(client: Any, item: dict[str, Any], max_size: int) -> bytes:
    if int(item["file_size"]) > max_size:
        raise ValueError(f"{item['key']} is larger than MAX_FILE_SIZE")
    try:
        response = client.get_object(Bucket=item["bucket"], Key=item["key"])
    except ClientError as exc:
        raise RuntimeError(f"cannot read s3://{item['bucket']}/{item['key']}: {exc}") from None
    return bytes(response["Body"].read())
