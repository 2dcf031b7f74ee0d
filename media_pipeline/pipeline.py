"""The pipeline's stages as plain functions: what the Dagster assets and the CLI both call.

Each stage that does heavy work (listing, reading objects) works outside the catalog and writes
Parquet under ``work/``; the catalog is opened only for the short commit that merges it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from media_pipeline.catalog import Catalog, DuplicateStats, InventoryDiff, ObjectsApplied
from media_pipeline.dedup.stage import NearDuplicateStats
from media_pipeline.fingerprint import fingerprint_objects, write_fragment
from media_pipeline.inventory import (
    SnapshotStats,
    list_to_snapshot,
    read_inventory,
    validate_snapshot,
)
from media_pipeline.locks import exclusive
from media_pipeline.records import FingerprintResult, PendingObject
from media_pipeline.settings import Settings
from media_pipeline.storage import RetryCounter, make_client
from media_pipeline.storage.s3 import is_not_found

FRAGMENT_ROWS = 2000


def open_catalog(settings: Settings, lock_timeout: float = 300.0) -> Any:
    """The catalog for writing; publishes the analysts' snapshot when the block ends."""
    return Catalog.open(
        settings.catalog_path, snapshot_path=settings.snapshot_path, lock_timeout=lock_timeout
    )


def inventory_snapshot_path(settings: Settings) -> Path:
    return settings.work_dir / "inventory" / "current.parquet"


def take_inventory(settings: Settings, client: Any, counter: RetryCounter | None = None
                   ) -> SnapshotStats:
    """Write the bucket's current objects to the snapshot Parquet: from the newest S3 Inventory
    report when one is configured, else from a live listing.

    Beside it goes a small JSON saying where the snapshot came from and as of when (an inventory
    report's creation time), which the committer needs so an old report rolls nothing back.
    """
    out = inventory_snapshot_path(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out.parent / ".lock"):
        if settings.inventory_location:
            stats = read_inventory(
                settings.inventory_location, client, out,
                work_dir=settings.work_dir / "inventory" / "download",
                expected_bucket=settings.bucket,
            )
            as_of = stats.report_created
        else:
            stats = list_to_snapshot(client, settings.bucket, out, counter=counter)
            as_of = None
        info = {
            "bucket": settings.bucket,
            "source": "inventory" if settings.inventory_location else "listing",
            "as_of": as_of.isoformat() if as_of is not None else None,
        }
        _write_atomic(out.with_suffix(".json"), json.dumps(info).encode())
    return stats


def commit_inventory(settings: Settings, run_id: str | None = None) -> InventoryDiff:
    snapshot = inventory_snapshot_path(settings)
    info_path = snapshot.with_suffix(".json")
    if not snapshot.exists() or not info_path.exists():
        raise FileNotFoundError(
            f"no object snapshot at {snapshot}: materialize inventory_snapshot first"
        )
    with exclusive(snapshot.parent / ".lock"):
        info = json.loads(info_path.read_text())
        if info.get("bucket") != settings.bucket:
            raise ValueError(
                f"the object snapshot at {snapshot} is of bucket {info.get('bucket')!r}, not "
                f"{settings.bucket!r}: materialize inventory_snapshot again"
            )
        validate_snapshot(snapshot)
        as_of = datetime.fromisoformat(info["as_of"]) if info.get("as_of") else None
        with open_catalog(settings) as catalog:
            return catalog.apply_inventory(
                snapshot, settings.bucket, source=info["source"], run_id=run_id, as_of=as_of
            )


@dataclass(frozen=True)
class FingerprintStats:
    objects: int
    bytes_read: int
    active: int
    quarantined: int
    missing: int
    errors: int
    s3_retries: int
    seconds: float
    resumed_fragments: int
    # Quarantined objects whose public-read ACL was closed.
    public_closed: int = 0


def fingerprint_pending(
    settings: Settings,
    client: Any,
    *,
    limit: int | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[FingerprintResult], None] | None = None,
) -> FingerprintStats:
    """Fingerprint every pending object and merge the results.

    Results are written in fragments of ``FRAGMENT_ROWS`` as they come; a crash loses at most the
    unwritten tail, and fragments left over by a crashed run are merged at the start of the next.
    """
    frag_dir = settings.work_dir / "fingerprints"
    frag_dir.mkdir(parents=True, exist_ok=True)
    # One fingerprint pass per catalog at a time: a second one waits, then finds nothing pending.
    # The lock dies with its process, so fragments found here belong to a pass that crashed.
    with exclusive(frag_dir / ".lock"):
        return _fingerprint_pending(settings, client, frag_dir, limit, on_start, on_result)


def _fingerprint_pending(
    settings: Settings,
    client: Any,
    frag_dir: Path,
    limit: int | None,
    on_start: Callable[[int, int], None] | None,
    on_result: Callable[[FingerprintResult], None] | None,
) -> FingerprintStats:
    leftovers = sorted(frag_dir.glob("*.parquet"))
    pending_file = settings.work_dir / "pending" / "fingerprints.parquet"
    pending_file.parent.mkdir(parents=True, exist_ok=True)
    with open_catalog(settings) as catalog:
        if leftovers:
            catalog.apply_fingerprints(leftovers)
        count, size = catalog.export_pending_fingerprints(pending_file, limit=limit)
    for path in leftovers:
        path.unlink()
    if on_start is not None:
        on_start(count, size)
    pending = _read_pending(pending_file)

    counter = RetryCounter()
    started = time.monotonic()
    totals, bytes_read = _fingerprint_and_merge(
        settings, client, pending, frag_dir, counter, on_result)
    pending_file.unlink(missing_ok=True)
    return FingerprintStats(
        objects=count,
        bytes_read=bytes_read,
        active=totals["active"],
        quarantined=totals["quarantined"],
        missing=totals["missing"],
        errors=totals["error"],
        s3_retries=counter.retries,
        seconds=time.monotonic() - started,
        resumed_fragments=len(leftovers),
        public_closed=totals["public_closed"],
    )


def _fingerprint_and_merge(
    settings: Settings,
    client: Any,
    pending: Iterable[PendingObject],
    frag_dir: Path,
    counter: RetryCounter,
    on_result: Callable[[FingerprintResult], None] | None,
) -> tuple[dict[str, int], int]:
    """Fingerprint ``pending``, writing fragments as results come, then merge them in one short
    commit; returns (results per status, bytes read). The caller holds ``frag_dir``'s lock."""
    fragments: list[Path] = []
    buffer: list[FingerprintResult] = []
    totals = {"active": 0, "quarantined": 0, "missing": 0, "error": 0, "public_closed": 0}
    bytes_read = 0

    def flush() -> None:
        if buffer:
            path = frag_dir / f"{uuid.uuid4().hex}.parquet"
            write_fragment(buffer, path)
            fragments.append(path)
            buffer.clear()

    for result in fingerprint_objects(client, pending, settings, counter=counter):
        totals[result.status] = totals.get(result.status, 0) + 1
        totals["public_closed"] += result.metadata.get("public_access") == "closed"
        bytes_read += result.bytes_read
        buffer.append(result)
        if on_result is not None:
            on_result(result)
        if len(buffer) >= FRAGMENT_ROWS:
            flush()
    flush()
    if fragments:
        with open_catalog(settings) as catalog:
            catalog.apply_fingerprints(fragments)
        for path in fragments:
            path.unlink()
    return totals, bytes_read


def _read_pending(path: Path) -> Iterator[PendingObject]:
    """The pending list, streamed from Parquet in batches: millions of objects, little memory."""
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            yield PendingObject(
                media_id=str(row["media_id"]), bucket=row["bucket"], key=row["key"],
                size=int(row["file_size"]), etag=row["etag"] or "",
            )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def rebuild_duplicates(settings: Settings) -> DuplicateStats:
    with open_catalog(settings) as catalog:
        return catalog.rebuild_duplicate_groups()


def rebuild_near_duplicates(settings: Settings, client: Any = None) -> NearDuplicateStats:
    """Near-duplicate pairs by every method available (see media_pipeline.dedup)."""
    from media_pipeline.dedup.stage import rebuild_near_duplicates as rebuild

    return rebuild(settings, client or make_client(settings), open_catalog)


# -- ingesting named keys (the new-object sensor's job) ----------------------------------------

HEAD_WORKERS = 16
MAX_KEY_BYTES = 1024  # S3's limit


@dataclass(frozen=True)
class IngestResult:
    """What ingesting a list of keys did.

    ``gone`` keys answered 404; ``missing`` counts catalogued objects that became missing
    (a gone key the catalog never knew, or knew as missing already, changes nothing).
    ``head_errors`` are keys S3 would not describe (other than 404): nothing was recorded for
    them, so the next ingest of the same key or the nightly reconciliation picks them up.
    ``fingerprint_errors`` stay pending for the same reason.
    """

    keys: int
    new: int
    changed: int
    reappeared: int
    unchanged: int
    gone: int
    missing: int
    fingerprinted: int
    active: int
    quarantined: int
    fingerprint_errors: int
    bytes_read: int
    s3_retries: int
    head_errors: dict[str, str]
    public_closed: int = 0

    @property
    def ok(self) -> bool:
        return not self.head_errors and not self.fingerprint_errors


def ingest_keys(
    settings: Settings,
    keys: Sequence[str],
    client: Any = None,
    run_id: str | None = None,
) -> IngestResult:
    """Catalog and fingerprint just these keys of ``settings.bucket`` (e.g. from S3 events).

    Each key is HEADed (concurrently, at most ``HEAD_WORKERS`` at a time): S3's answer now, not
    what an event said, decides, so a late or repeated event is harmless. Present objects are
    merged like inventory rows (new → pending, changed → pending again); a key that answers 404
    is gone, and becomes ``missing`` if catalogued. Nothing else in the bucket is touched. Then
    the pending objects among these keys are fingerprinted and validated (failures are
    quarantined with a reason). Running it again with the same keys changes nothing.

    Keys are real keys, not the URL-encoded form S3 events carry: decode those first
    (``events.parse_message`` does).
    """
    unique = list(dict.fromkeys(_check_keys(keys)))
    client = client if client is not None else make_client(settings)
    counter = RetryCounter()
    present, gone, head_errors = _head_all(client, settings.bucket, unique, counter)
    if gone:
        _require_bucket(client, settings.bucket)
    with open_catalog(settings) as catalog:
        applied: ObjectsApplied = catalog.apply_objects(
            present, settings.bucket, gone_keys=gone, run_id=run_id)
    totals = {"active": 0, "quarantined": 0, "missing": 0, "error": 0, "public_closed": 0}
    bytes_read = 0
    if applied.pending:
        frag_dir = settings.work_dir / "fingerprints"
        frag_dir.mkdir(parents=True, exist_ok=True)
        # The nightly fingerprint pass takes the same lock: fragments in frag_dir found by the
        # next pass belong to one that crashed, and are merged then.
        with exclusive(frag_dir / ".lock"):
            totals, bytes_read = _fingerprint_and_merge(
                settings, client, applied.pending, frag_dir, counter, None)
    return IngestResult(
        keys=len(unique),
        new=applied.new,
        changed=applied.changed,
        reappeared=applied.reappeared,
        unchanged=applied.unchanged,
        gone=len(gone),
        missing=applied.missing + totals["missing"],
        fingerprinted=len(applied.pending),
        active=totals["active"],
        quarantined=totals["quarantined"],
        fingerprint_errors=totals["error"],
        bytes_read=bytes_read,
        s3_retries=counter.retries,
        head_errors=head_errors,
        public_closed=totals["public_closed"],
    )


def _check_keys(keys: Sequence[str]) -> list[str]:
    """Refuse the whole list, before any work, if a key cannot be an S3 key."""
    if isinstance(keys, str):
        raise TypeError("keys must be a list of keys, not one string")
    bad = [k for k in keys
           if not isinstance(k, str) or not k or len(k.encode("utf-8", "surrogatepass"))
           > MAX_KEY_BYTES]
    if bad:
        shown = ", ".join(repr(k)[:80] for k in bad[:5])
        raise ValueError(
            f"{len(bad)} of {len(keys)} keys are not S3 keys (empty, not text, or over "
            f"{MAX_KEY_BYTES} bytes): {shown}")
    return list(keys)


def _head_all(
    client: Any, bucket: str, keys: Sequence[str], counter: RetryCounter
) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """HEAD every key: (snapshot rows of present objects, keys that 404, key → error)."""
    present: list[dict[str, Any]] = []
    gone: list[str] = []
    errors: dict[str, str] = {}
    if not keys:
        return present, gone, errors

    def head(key: str) -> dict[str, Any] | None:
        try:
            response = client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            counter.add_error(exc)
            if is_not_found(exc):
                return None
            raise
        counter.add(response)
        return {
            "bucket": bucket,
            "key": key,
            "version_id": response.get("VersionId"),
            "size": int(response["ContentLength"]),
            "etag": str(response.get("ETag", "")).strip('"'),
            "last_modified": response["LastModified"],
            # HEAD leaves the header out for STANDARD; listings and inventories say it.
            "storage_class": response.get("StorageClass") or "STANDARD",
        }

    with ThreadPoolExecutor(max_workers=min(HEAD_WORKERS, len(keys)),
                            thread_name_prefix="head") as pool:
        for key, future in [(k, pool.submit(head, k)) for k in keys]:
            try:
                row = future.result()
            except (ClientError, BotoCoreError) as exc:
                errors[key] = _error_text(exc)
                continue
            if row is None:
                gone.append(key)
            else:
                present.append(row)
    return present, gone, errors


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message') or exc}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def _require_bucket(client: Any, bucket: str) -> None:
    """A HEAD in a bucket that does not exist also answers 404: before calling keys gone, make
    sure it is the keys that are missing, not the bucket (a wrong setting must not mark the
    catalog missing)."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        raise RuntimeError(
            f"bucket {bucket!r} cannot be read ({_error_text(exc)}); nothing was changed"
        ) from None
