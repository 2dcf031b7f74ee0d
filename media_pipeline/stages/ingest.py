"""Ingesting named keys (the new-object sensor's job): HEAD them, catalog what exists, then
fingerprint and validate what is new or changed."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from media_pipeline.catalog import ObjectsApplied, open_catalog
from media_pipeline.errors import InvalidInput
from media_pipeline.locks import exclusive
from media_pipeline.settings import Settings
from media_pipeline.stages.fingerprint import fingerprint_and_merge
from media_pipeline.storage import RetryCounter, make_client
from media_pipeline.storage.s3 import is_not_found

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
        applied: ObjectsApplied = catalog.objects.apply_objects(
            present, settings.bucket, gone_keys=gone, run_id=run_id)
    totals = {"active": 0, "quarantined": 0, "missing": 0, "error": 0, "public_closed": 0}
    bytes_read = 0
    if applied.pending:
        frag_dir = settings.work_dir / "fingerprints"
        frag_dir.mkdir(parents=True, exist_ok=True)
        # The nightly fingerprint pass takes the same lock: fragments in frag_dir found by the
        # next pass belong to one that crashed, and are merged then.
        with exclusive(frag_dir / ".lock"):
            totals, bytes_read = fingerprint_and_merge(
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
        raise InvalidInput(
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
