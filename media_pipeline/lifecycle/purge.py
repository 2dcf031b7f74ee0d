"""Purge: permanently delete from S3 the files soft-deleted long enough that nothing uses.

Mark, then sweep. It fails closed at every step:

* it needs every source the catalog has ever scanned (not retired), whatever today's settings
  say, and refuses the whole run while one of them is stale (never scanned, its latest scan
  failed, or was suspect: far fewer documents than the last trusted one), and when the
  candidates exceed ``purge_max_count`` or ``purge_max_share`` of the catalog's non-purged
  files (a runaway purge: a human raises the cap);
* a candidate is soft-deleted longer than the retention (clock from ``deleted_at``), has no
  reference in ``media_references`` (the table, not only the counter), and every required
  source has a trusted scan that *started* after its deletion;
* marks are committed before any S3 call; each batch (≤ 1,000 keys, DeleteObjects' limit) is
  re-checked inside the catalog writer, which it holds until the batch's catalog update, so no
  restore or add_reference can slip in between the check and the delete; the object's ETag in
  S3 must still be the catalogued one (a re-upload is never deleted);
* a run killed at any point is settled by the next: marks whose S3 delete may have happened are
  looked up in S3 (gone: recorded as purged; still there: decided afresh), marks that never
  reached S3 are dropped and re-decided. S3 deletes are idempotent; the catalog is updated
  after S3 answered.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from media_pipeline.catalog import Catalog
from media_pipeline.catalog.history import record_purge_snapshot
from media_pipeline.catalog.lifecycle import PURGE_EXCLUSION, OverCap
from media_pipeline.catalog.sql import aware, utc_now
from media_pipeline.errors import InvalidInput, StorageError
from media_pipeline.lifecycle.sources import disabled_source_names
from media_pipeline.locks import exclusive
from media_pipeline.settings import Settings
from media_pipeline.storage.s3 import is_not_found

StepCallback = Callable[[str, dict[str, Any]], None]
S3_WORKERS = 16
DELETE_OBJECTS_MAX = 1000
DRY_RUN_LISTED = 1000
KEPT_LISTED = 100


@dataclass
class BatchInfo:
    batch: int
    marked: int
    deleting: int = 0
    purged: int = 0
    skipped: int = 0
    cancelled: int = 0  # restored between the mark and the batch
    errors: int = 0
    bytes_freed: int = 0


@dataclass
class PurgeReport:
    """What a purge did (or, with ``dry_run``, would do)."""

    dry_run: bool
    purge_id: str | None = None
    candidates: int = 0
    candidate_bytes: int = 0
    purged: int = 0
    bytes_freed: int = 0
    refused_reason: str | None = None
    errors: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    # marks cancelled before their batch (a concurrent restore): media_id, key, reason
    cancelled: list[dict[str, Any]] = field(default_factory=list)
    batches: list[BatchInfo] = field(default_factory=list)
    settled: int = 0  # deletes of an interrupted run found done in S3 and recorded
    unsettled: int = 0  # dry run: such deletes waiting for the next real run
    files: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would go
    sources: list[str] = field(default_factory=list)
    configured: list[str] = field(default_factory=list)  # the ones today's settings list
    disabled: list[str] = field(default_factory=list)  # configured with enabled: false
    source_status: list[dict[str, Any]] = field(default_factory=list)
    # soft-deleted past the retention but still referenced: why each one stays
    kept: list[dict[str, Any]] = field(default_factory=list)
    # past the retention but deleted less than MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS ago
    too_recent: int = 0

    @property
    def refused(self) -> bool:
        return self.refused_reason is not None

    @property
    def ok(self) -> bool:
        return not self.refused and not self.errors


class _S3Failed(StorageError):
    """S3 did not answer a delete: whether it happened is unknown, the marks stay in flight."""


def _purge_lock(settings: Settings) -> AbstractContextManager[None]:
    """One purge per catalog at a time; the lock dies with its process, so marks found in
    flight while holding it belong to a run that crashed."""
    return exclusive(settings.home / "purge.lock")


def purge(
    settings: Settings,
    client: Any,
    *,
    enabled_sources: Sequence[str],
    dry_run: bool = False,
    now: datetime | None = None,
    on_step: StepCallback | None = None,
    retention_days: int | None = None,
    batch_size: int | None = None,
    run_id: str | None = None,
) -> PurgeReport:
    """Purge eligible soft-deleted files (see the module docstring); ``now`` is the clock the
    retention is measured with. ``on_step(step, info)`` is called after each step: ``settled``,
    ``marked``, then per batch ``batch_checked``, ``s3_deleted``, ``catalog_updated``, and
    ``finished``."""
    now = aware(now) or utc_now()
    retention = settings.retention_days if retention_days is None else int(retention_days)
    size = settings.purge_batch_size if batch_size is None else int(batch_size)
    if retention < 0:
        raise InvalidInput("the retention must not be negative")
    if not 1 <= size <= DELETE_OBJECTS_MAX:
        raise InvalidInput(f"the purge batch size must be between 1 and {DELETE_OBJECTS_MAX}")
    step: StepCallback = on_step or (lambda name, info: None)
    configured = sorted(set(enabled_sources))
    # Disabling a source is not retiring it: the purge waits for it until it is retired.
    disabled = sorted(set(disabled_source_names(settings)) - set(configured))
    cutoff = now - timedelta(days=retention)
    min_age = timedelta(seconds=settings.purge_min_age_seconds)
    versions = settings.purge_versions
    report = PurgeReport(dry_run=dry_run, configured=configured, disabled=disabled)
    purge_id = uuid.uuid4().hex

    with _purge_lock(settings):
        with Catalog.open(settings.catalog_location) as catalog:
            if dry_run:
                report.unsettled = len(catalog.lifecycle.purge_marks_in(None, None, "deleting"))
            else:
                try:
                    report.settled = _settle(catalog, client, versions, report)
                except _S3Unsettled as exc:
                    report.refused_reason = str(exc)
                    return report
                step("settled", {"settled": report.settled})
            # Every source ever scanned counts, not only today's configuration.
            sources = catalog.references.required_sources(configured, disabled)
            report.sources = sources
            status = catalog.references.source_scan_status(sources)
            report.source_status = status
            stale = [s for s in status if s["stale"]]
            horizon = catalog.references.scan_horizon(sources)
            seen = catalog.references.scan_deletions_seen(sources)
            report.kept = catalog.references.kept_referenced(cutoff, KEPT_LISTED)
            if stale or horizon is None:
                report.refused_reason = "stale content sources, purging nothing: " + "; ".join(
                    _stale_text(s, configured, disabled) for s in stale)
            else:
                found = catalog.lifecycle.purge_candidates(
                    cutoff, horizon, DRY_RUN_LISTED if dry_run else 0, min_age=min_age,
                    seen=seen)
                report.candidates, report.candidate_bytes = found["count"], found["bytes"]
                report.too_recent = found["too_recent"]
                report.refused_reason = _over_cap(settings, found["count"], found["non_purged"])
                if dry_run:
                    report.files = found["files"]
            if dry_run:
                return report
            if report.refused_reason:
                catalog.lifecycle.record_refused_purge(
                    purge_id, now, report.refused_reason, retention_days=retention,
                    versions=versions, sources=sources, candidates=report.candidates,
                    run_id=run_id)
                return report
            assert horizon is not None
            try:
                count, total, batches = catalog.lifecycle.start_purge_run(
                    purge_id, now, retention_days=retention, versions=versions,
                    sources=sources, cutoff=cutoff, horizon=horizon, batch_size=size,
                    max_files=_cap(settings, found["non_purged"]), run_id=run_id,
                    min_age=min_age, seen=seen)
            except OverCap as exc:  # more became eligible since counted: still over the cap
                report.candidates = exc.count
                report.refused_reason = _over_cap(settings, exc.count, found["non_purged"])
                catalog.lifecycle.record_refused_purge(
                    purge_id, now, str(report.refused_reason), retention_days=retention,
                    versions=versions, sources=sources, candidates=exc.count, run_id=run_id)
                return report
            report.purge_id = purge_id
            report.candidates, report.candidate_bytes = count, total
            # History (issue 13): the catalog snapshot this run decided on, for `why-purged`.
            record_purge_snapshot(catalog.con, purge_id)
        step("marked", {"purge_id": purge_id, "candidates": count, "bytes": total,
                        "batches": batches})

        state = "done"
        for batch in range(batches):
            try:
                _sweep_batch(settings, client, purge_id, batch, cutoff, now, sources, report,
                             step, run_id)
            except _S3Failed as exc:
                report.errors.append(str(exc))
                state = "failed"
                break
            if report.refused_reason:
                state = "refused"
                break
        with Catalog.open(settings.catalog_location) as catalog:
            if state != "done":
                catalog.lifecycle.skip_remaining_marks(purge_id,
                                                       report.refused_reason or "run failed")
            catalog.lifecycle.finish_purge_run(purge_id, state, report.purged, report.bytes_freed,
                                               report.errors, report.refused_reason)
        step("finished", {"purge_id": purge_id, "purged": report.purged,
                          "bytes_freed": report.bytes_freed, "state": state})
    return report


def _stale_text(status: dict[str, Any], configured: Sequence[str],
                disabled: Sequence[str]) -> str:
    name = status["source"]
    if name in configured:
        return f"{name} ({status['reason']})"
    if name in disabled:
        return (f"{name} (disabled with enabled: false, not retired: {status['reason']}; "
                f"enable and scan it, or if its content is gone, retire it with "
                f"media-pipeline sources retire {name} --user ADMIN)")
    return (f"{name} (remembered; not in today's configuration: {status['reason']}; if its "
            f"content is gone, retire it with media-pipeline sources retire {name} "
            "--user ADMIN)")


def _cap(settings: Settings, non_purged: int) -> int:
    """The most files one run may purge."""
    share = max(settings.purge_share_floor, math.floor(settings.purge_max_share * non_purged))
    return min(settings.purge_max_count, share)


def _over_cap(settings: Settings, count: int, non_purged: int) -> str | None:
    if count > settings.purge_max_count:
        return (f"runaway purge refused: {count} files would be purged, more than "
                f"MEDIA_PIPELINE_PURGE_MAX_COUNT={settings.purge_max_count}; nothing was "
                "deleted (raise the cap if this is intended)")
    if (non_purged and count > settings.purge_share_floor
            and count > settings.purge_max_share * non_purged):
        return (f"runaway purge refused: {count} of {non_purged} files "
                f"({count / non_purged:.1%}) would be purged, more than "
                f"MEDIA_PIPELINE_PURGE_MAX_SHARE={settings.purge_max_share:g} (which applies "
                f"above MEDIA_PIPELINE_PURGE_SHARE_FLOOR={settings.purge_share_floor} files); "
                "nothing was deleted (raise MEDIA_PIPELINE_PURGE_MAX_SHARE if this is intended)")
    return None


def _sweep_batch(
    settings: Settings, client: Any, purge_id: str, batch: int, cutoff: datetime,
    now: datetime, sources: list[str], report: PurgeReport, step: StepCallback,
    run_id: str | None,
) -> None:
    """Re-check, delete in S3 and record one batch, holding the catalog writer throughout."""
    with PURGE_EXCLUSION, Catalog.open(settings.catalog_location) as catalog:
        sources = catalog.references.required_sources(sources)
        stale = catalog.references.stale_sources(sources)
        horizon = catalog.references.scan_horizon(sources)
        if stale or horizon is None:
            report.refused_reason = (
                f"content sources became stale during the purge ({', '.join(stale)}); "
                "the rest was not purged")
            return
        marks = catalog.lifecycle.recheck_purge_batch(
            purge_id, batch, cutoff, horizon,
            min_age=timedelta(seconds=settings.purge_min_age_seconds),
            seen=catalog.references.scan_deletions_seen(sources))
        skipped = catalog.lifecycle.purge_marks_in(purge_id, batch, "skipped")
        cancelled = catalog.lifecycle.purge_marks_in(purge_id, batch, "cancelled")
        info = BatchInfo(batch=batch, marked=len(marks) + len(skipped) + len(cancelled),
                         deleting=len(marks), skipped=len(skipped), cancelled=len(cancelled))
        report.batches.append(info)
        report.skipped += [{"media_id": m["media_id"], "key": m["key"], "reason": m["reason"]}
                           for m in skipped]
        report.cancelled += [{"media_id": m["media_id"], "key": m["key"],
                              "reason": m["reason"]} for m in cancelled]
        step("batch_checked", {"batch": batch, "deleting": len(marks),
                               "skipped": len(skipped)})
        outcomes = _delete_in_s3(client, marks, settings.purge_versions)
        step("s3_deleted", {"batch": batch, "outcomes": len(outcomes)})
        purged = catalog.lifecycle.finish_purge_marks(
            [(purge_id, o.media_id, o.state, o.reason) for o in outcomes], now,
            settings.purge_versions, run_id)
        catalog.lifecycle.set_purge_markers(purge_id, [(o.media_id, o.marker) for o in outcomes
                                                       if o.state == "purged" and o.marker])
        size_of = {m["media_id"]: int(m["file_size"]) for m in marks}
        for o in outcomes:
            if o.state == "purged":
                info.bytes_freed += size_of[o.media_id]
            elif o.state == "skipped":
                info.skipped += 1
                report.skipped.append({"media_id": o.media_id, "key": o.key,
                                       "reason": o.reason})
            else:
                info.errors += 1
                report.errors.append(f"{o.key}: {o.reason}")
        info.purged = purged
        report.purged += purged
        report.bytes_freed += info.bytes_freed
        step("catalog_updated", {"batch": batch, "purged": purged})


@dataclass(frozen=True)
class _Outcome:
    media_id: str
    key: str
    state: str  # purged | skipped | error
    reason: str | None = None
    marker: str | None = None  # the delete marker S3 created (versioned bucket, marker mode)


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


def _delete_in_s3(client: Any, marks: Sequence[dict[str, Any]], versions: str
                  ) -> list[_Outcome]:
    """Delete the marked objects whose S3 ETag is still the catalogued one."""
    if not marks:
        return []
    with ThreadPoolExecutor(max_workers=min(S3_WORKERS, len(marks))) as pool:
        looks = list(pool.map(lambda m: _look(client, m, versions), marks))
    outcomes: list[_Outcome] = []
    to_delete: list[tuple[dict[str, Any], list[dict[str, str]]]] = []
    for mark, (outcome, objects) in zip(marks, looks, strict=True):
        if outcome is not None:
            outcomes.append(outcome)
        elif not objects:
            outcomes.append(_Outcome(mark["media_id"], mark["key"], "purged", "already gone"))
        else:
            to_delete.append((mark, objects))
    outcomes += _delete_objects(client, to_delete)
    return outcomes


def _look(client: Any, mark: dict[str, Any], versions: str
          ) -> tuple[_Outcome | None, list[dict[str, str]]]:
    """What to delete for one mark: (an outcome if decided already, the objects to delete)."""
    media_id, bucket, key = mark["media_id"], mark["bucket"], mark["key"]
    expected = _etag(mark["etag"])
    try:
        if versions == "all":
            found = _versions_of(client, bucket, key)
            latest = next((v for v in found if v["latest"]), None)
            if latest is not None and not latest["marker"] and latest["etag"] != expected:
                return _Outcome(media_id, key, "skipped",
                                "the object in S3 changed since it was catalogued"), []
            return None, [{"Key": key, "VersionId": v["version_id"]} for v in found]
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return None, []
        return _Outcome(media_id, key, "error", _client_error(exc)), []
    except BotoCoreError as exc:
        return _Outcome(media_id, key, "error", str(exc)), []
    if not expected or _etag(head.get("ETag")) != expected:
        return _Outcome(media_id, key, "skipped",
                        "the object in S3 changed since it was catalogued"), []
    return None, [{"Key": key}]


def _versions_of(client: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for v in page.get("Versions", []):
            if v["Key"] == key:
                found.append({"version_id": v["VersionId"], "latest": v.get("IsLatest"),
                              "marker": False, "etag": _etag(v.get("ETag"))})
        for v in page.get("DeleteMarkers", []):
            if v["Key"] == key:
                found.append({"version_id": v["VersionId"], "latest": v.get("IsLatest"),
                              "marker": True, "etag": ""})
    return found


def _client_error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()


def _delete_objects(client: Any, work: Sequence[tuple[dict[str, Any], list[dict[str, str]]]]
                    ) -> list[_Outcome]:
    """DeleteObjects in requests of at most 1,000 entries; a key is purged when every entry of
    it was deleted (or was gone already)."""
    by_bucket: dict[str, list[tuple[dict[str, Any], dict[str, str]]]] = {}
    for mark, objects in work:
        for obj in objects:
            by_bucket.setdefault(mark["bucket"], []).append((mark, obj))
    failed: dict[str, str] = {}
    markers: dict[str, str] = {}
    for bucket, entries in by_bucket.items():
        for start in range(0, len(entries), DELETE_OBJECTS_MAX):
            chunk = entries[start:start + DELETE_OBJECTS_MAX]
            try:
                response = client.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [obj for _, obj in chunk], "Quiet": False})
            except (ClientError, BotoCoreError) as exc:
                raise _S3Failed(f"S3 DeleteObjects on {bucket} failed: {exc}") from exc
            done = {(d["Key"], d.get("VersionId")) for d in response.get("Deleted", [])}
            marker_of = {d["Key"]: d["DeleteMarkerVersionId"]
                         for d in response.get("Deleted", [])
                         if d.get("DeleteMarker") and d.get("DeleteMarkerVersionId")}
            errors = {(e["Key"], e.get("VersionId")): e for e in response.get("Errors", [])}
            for mark, obj in chunk:
                if obj.get("VersionId") is None and obj["Key"] in marker_of:
                    markers[mark["media_id"]] = marker_of[obj["Key"]]
                entry = (obj["Key"], obj.get("VersionId"))
                if entry in done or (entry[0], None) in done and entry[1] is None:
                    continue
                error = errors.get(entry) or errors.get((entry[0], None))
                if error is not None and error.get("Code") in ("NoSuchKey", "NoSuchVersion"):
                    continue
                failed[mark["media_id"]] = (
                    f"{error.get('Code')}: {error.get('Message', '')}" if error
                    else "S3 did not confirm the delete")
    return [
        _Outcome(mark["media_id"], mark["key"], "error", failed[mark["media_id"]])
        if mark["media_id"] in failed
        else _Outcome(mark["media_id"], mark["key"], "purged", marker=markers.get(mark["media_id"]))
        for mark, _ in work
    ]


def _settle(catalog: Catalog, client: Any, versions: str, report: PurgeReport) -> int:
    """Finish what a killed run left: deletes that may have reached S3 are looked up (gone:
    purged; there: decided afresh by this run), marks that never reached S3 are dropped."""
    in_flight = catalog.lifecycle.purge_marks_in(None, None, "deleting")
    still_there: list[str] = []
    outcomes: list[tuple[str, str, str, str | None]] = []
    for mark in in_flight:
        try:
            head_gone = _is_gone(client, mark["bucket"], mark["key"])
        except (ClientError, BotoCoreError) as exc:
            raise _S3Unsettled(mark["key"], exc) from exc
        if not head_gone:
            still_there.append(mark["media_id"])
            continue
        if versions == "all":
            leftovers = _versions_of(client, mark["bucket"], mark["key"])
            if leftovers:
                done = _delete_objects(client, [(mark, [
                    {"Key": mark["key"], "VersionId": v["version_id"]} for v in leftovers])])
                if done[0].state != "purged":
                    still_there.append(mark["media_id"])
                    continue
        refs = catalog.references.references_of(mark["media_id"])
        if refs:
            report.errors.append(
                f"{mark['key']}: deleted from S3 by an interrupted purge while unreferenced, "
                f"but referenced since: {refs}")
        outcomes.append((mark["purge_id"], mark["media_id"], "purged",
                         "finished after an interrupted run"))
    settled = catalog.lifecycle.finish_purge_marks(outcomes, utc_now(), versions)
    if still_there:
        catalog.lifecycle.abandon_purge_marks(still_there, "interrupted before S3 deleted it")
    catalog.lifecycle.abandon_purge_marks(None, "interrupted before its S3 deletes")
    return settled


class _S3Unsettled(StorageError):
    def __init__(self, key: str, exc: Exception) -> None:
        super().__init__(f"cannot settle an interrupted purge: looking up {key} in S3 failed "
                         f"({exc}); nothing was purged")


def _is_gone(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return True
        raise
    return False
