"""One streaming read per object: sha256, sniffed type, metadata, pHash, validation.

Memory stays bounded whatever the object size: the body is read in chunks that feed the hash, and
bytes are kept only for types whose metadata we read (images, PDFs, SVG) and only up to
``max_file_size``, in a spool that moves to disk past ``SPOOL_MEMORY``. When S3 already has a
full-object SHA-256 checksum, it is the hash, and files that need no metadata are not read past
their first bytes. The ETag is never used as a hash (multipart and SSE-KMS ETags are not MD5s of
the content).

Nothing here raises for one bad object: every failure becomes a result (``quarantined``,
``missing`` or ``error``) so a batch of millions goes on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from media_pipeline.fingerprint.metadata import (
    ContentInfo,
    InspectLimits,
    allow_pillow_pixels,
    inspect_content,
)
from media_pipeline.fingerprint.sniff import SNIFF_BYTES, needs_content, sniff_mime
from media_pipeline.fingerprint.validate import validate
from media_pipeline.records import FINGERPRINT_COLUMNS, FingerprintResult, PendingObject
from media_pipeline.settings import Settings
from media_pipeline.storage.s3 import RetryCounter, close_public_access, is_not_found

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
BODY_READ_ATTEMPTS = 3
SPOOL_MEMORY = 16 * 1024 * 1024


def full_object_sha256(response: dict[str, Any]) -> str | None:
    """Hex SHA-256 of the whole object from a GetObject/HeadObject response, if S3 has one.

    A multipart upload's COMPOSITE checksum (``base64-N``) is a hash of part hashes, not of the
    content, so it is ignored; so is anything that does not decode to 32 bytes.
    """
    value = response.get("ChecksumSHA256")
    if not value or "-" in value:
        return None
    checksum_type = response.get("ChecksumType")
    if checksum_type not in (None, "FULL_OBJECT"):
        return None
    # A multipart object (ETag "…-N") has a full-object checksum only when S3 says so: some
    # S3-compatible servers (moto) return the composite value without the "-N" marker.
    if checksum_type is None and "-" in str(response.get("ETag", "")):
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest.hex() if len(digest) == 32 else None


def _read_head(body: Any, size: int) -> bytes:
    """The first bytes for libmagic; read() may return less than asked, so loop."""
    parts: list[bytes] = []
    have = 0
    while have < size:
        part = body.read(size - have)
        if not part:
            break
        parts.append(part)
        have += len(part)
    return b"".join(parts)


def _client_error_text(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = error.get("Code", "ClientError")
    message = error.get("Message") or str(exc)
    return f"{code}: {message}"[:500]


def fingerprint_object(
    client: Any,
    obj: PendingObject,
    settings: Settings,
    *,
    chunk_size: int = CHUNK_SIZE,
    counter: RetryCounter | None = None,
) -> FingerprintResult:
    """Fingerprint one object with a single streaming GetObject. Never raises for a bad object.

    The result's ``etag`` is the one GetObject returned, i.e. the version actually read, which
    may be newer than the listing's. ``counter`` adds up botocore's retries.
    """
    for attempt in range(BODY_READ_ATTEMPTS):
        result = FingerprintResult(media_id=obj.media_id, etag=obj.etag, status="error")
        try:
            _fingerprint(client, obj, settings, chunk_size, result, counter)
        except ClientError as exc:
            if counter is not None:
                counter.add_error(exc)
            if is_not_found(exc):
                result.status = "missing"  # deleted between listing and reading
            else:
                result.error = _client_error_text(exc)  # botocore has already retried
        except (BotoCoreError, OSError) as exc:  # connection dropped, incomplete read, disk full
            result.error = f"{type(exc).__name__}: {exc}"[:500]
            # botocore retries the request, not a body that breaks off mid-stream: read again.
            if attempt + 1 < BODY_READ_ATTEMPTS:
                if counter is not None:
                    counter.add_retry()
                continue
        except Exception as exc:  # a bug must cost one object, not the batch
            result.error = f"unexpected {type(exc).__name__}: {exc}"[:500]
        return result
    return result


def _fingerprint(
    client: Any,
    obj: PendingObject,
    settings: Settings,
    chunk_size: int,
    result: FingerprintResult,
    counter: RetryCounter | None,
) -> None:
    allow_pillow_pixels(settings.max_image_pixels)
    response = client.get_object(Bucket=obj.bucket, Key=obj.key, ChecksumMode="ENABLED")
    if counter is not None:
        counter.add(response)
    body = response["Body"]
    with ExitStack() as cleanup:  # the body and the spool are closed whatever happens
        cleanup.callback(body.close)
        result.etag = str(response.get("ETag") or obj.etag).strip('"')
        result.declared_content_type = response.get("ContentType")
        size = int(response.get("ContentLength", obj.size))

        head = _read_head(body, SNIFF_BYTES)
        result.bytes_read = len(head)
        mime = sniff_mime(head, key=obj.key, declared=result.declared_content_type)
        result.content_type = mime

        s3_hash = full_object_sha256(response)
        hasher = None if s3_hash else hashlib.sha256(head)
        spool: IO[bytes] | None = None
        if needs_content(mime) and size <= settings.max_file_size:
            spool = cleanup.enter_context(SpooledTemporaryFile(max_size=SPOOL_MEMORY))
            spool.write(head)
        # With the S3 checksum and no metadata to read, the first bytes were all we needed.
        if hasher is not None or spool is not None:
            for chunk in body.iter_chunks(chunk_size):
                result.bytes_read += len(chunk)
                if hasher is not None:
                    hasher.update(chunk)  # releases the GIL: threads hash in parallel
                if spool is not None:
                    spool.write(chunk)
        body.close()  # before the metadata work: gives the connection back (or drops it)

        if s3_hash:
            result.file_hash, result.hash_source = s3_hash, "s3-checksum"
        elif hasher is not None:
            result.file_hash, result.hash_source = hasher.hexdigest(), "computed"
        info = ContentInfo()
        if spool is not None:
            spool.seek(0)
            info = inspect_content(spool, mime, limits=InspectLimits.from_settings(settings))

    for name, value in info.columns().items():
        setattr(result, name, value)
    reason = validate(
        key=obj.key,
        size=size,
        content_type=mime,
        settings=settings,
        declared_content_type=result.declared_content_type,
        **info.validation_facts(),
    )
    result.status = "quarantined" if reason else "active"
    result.quarantine_reason = reason
    if reason:
        # A quarantined file is not served: not by a public ACL someone left on the object
        # either. Done here, before the result is committed, so a crash errs towards closed.
        closed = close_public_access(client, obj.bucket, obj.key, response.get("VersionId"))
        result.metadata["public_access"] = closed
        if closed not in ("closed", "not public"):
            log.warning("quarantined s3://%s/%s may still be public: %s", obj.bucket, obj.key,
                        closed)


def fingerprint_objects(
    client: Any,
    objects: Iterable[PendingObject],
    settings: Settings,
    *,
    workers: int | None = None,
    on_result: Callable[[FingerprintResult], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
    counter: RetryCounter | None = None,
) -> Iterator[FingerprintResult]:
    """Fingerprint objects concurrently, yielding results as they complete (not in input order).

    At most ``2 * workers`` objects are in flight, so ``objects`` may be a lazy iterator over
    millions of rows. ``on_result`` is called in the caller's thread, before each yield.
    """
    workers = workers or settings.fingerprint_workers
    max_in_flight = 2 * workers
    source = iter(objects)
    pending: dict[Future[FingerprintResult], PendingObject] = {}
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fingerprint")

    def fill() -> None:
        for obj in islice(source, max(0, max_in_flight - len(pending))):
            future = pool.submit(
                fingerprint_object, client, obj, settings, chunk_size=chunk_size, counter=counter
            )
            pending[future] = obj

    try:
        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                obj = pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # fingerprint_object catches everything; belt and braces
                    result = FingerprintResult(
                        media_id=obj.media_id, etag=obj.etag, status="error", error=str(exc)
                    )
                if on_result is not None:
                    on_result(result)
                yield result
            fill()
    finally:
        # Also reached when the consumer stops early: drop what has not started.
        pool.shutdown(wait=True, cancel_futures=True)


def _arrow_type(annotation: str) -> pa.DataType:
    if annotation.startswith("int"):
        return pa.int64()
    if annotation.startswith("float"):
        return pa.float64()
    if annotation.startswith("bool"):
        return pa.bool_()
    if annotation.startswith(("str", "dict")):
        return pa.string()
    raise TypeError(f"no Parquet type for a FingerprintResult field annotated {annotation!r}")


def fragment_schema() -> pa.Schema:
    """One column per ``FINGERPRINT_COLUMNS``: phash uint64, metadata a JSON string, ints int64."""
    fields = FingerprintResult.__dataclass_fields__
    columns = []
    for name in FINGERPRINT_COLUMNS:
        if name == "phash":
            columns.append(pa.field(name, pa.uint64()))
        else:
            columns.append(pa.field(name, _arrow_type(str(fields[name].type))))
    return pa.schema(columns)


def _row(result: FingerprintResult) -> dict[str, Any]:
    row = result.to_row()
    row["metadata"] = json.dumps(result.metadata, sort_keys=True, ensure_ascii=False)
    return row


def write_fragment(
    results: Iterable[FingerprintResult], path: Path, *, batch_size: int = 10_000
) -> int:
    """Write results as one Parquet file for the committer; returns the number of rows.

    Written in batches (memory bounded) to a hidden temporary name, then renamed, so a reader
    globbing ``*.parquet`` never sees half a file. An empty input still gives a file with the
    schema.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    schema = fragment_schema()
    rows = 0
    source = iter(results)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            while batch := list(islice(source, batch_size)):
                writer.write_table(pa.Table.from_pylist([_row(r) for r in batch], schema=schema))
                rows += len(batch)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows
