"""The fingerprint stage: read every pending object (hash, type, metadata, perceptual hash,
validation) outside the catalog, writing Parquet fragments, then merge them in one short commit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from media_pipeline.catalog import open_catalog
from media_pipeline.fingerprint import fingerprint_objects, write_fragment
from media_pipeline.locks import exclusive
from media_pipeline.records import FingerprintResult, PendingObject
from media_pipeline.settings import Settings
from media_pipeline.storage import RetryCounter

FRAGMENT_ROWS = 2000
# The first hex digit of a media id: the nightly fingerprints the catalog in 16 pieces.
SHARDS = tuple("0123456789abcdef")


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
    shard: str | None = None,
) -> FingerprintStats:
    """Fingerprint every pending object and merge the results.

    Results are written in fragments of ``FRAGMENT_ROWS`` as they come; a crash loses at most the
    unwritten tail, and fragments left over by a crashed run are merged at the start of the next.
    ``shard`` (one of :data:`SHARDS`) takes only the objects whose media id starts with it:
    the nightly's pieces, which run at once, on any machine (``defs/fingerprints``).
    """
    if shard is not None and shard not in SHARDS:
        raise ValueError(f"shard must be one hex digit of {''.join(SHARDS)}, got {shard!r}")
    frag_dir = settings.work_dir / "fingerprints"
    if shard is not None:
        frag_dir = frag_dir / f"shard-{shard}"
    frag_dir.mkdir(parents=True, exist_ok=True)
    # One pass per folder (per shard) at a time on this machine: a second one waits, then finds
    # nothing pending. The lock dies with its process, so fragments found here belong to a pass
    # that crashed. Passes elsewhere may read the same object twice; the results are the same.
    with exclusive(frag_dir / ".lock"):
        return _fingerprint_pending(settings, client, frag_dir, limit, on_start, on_result, shard)


def _fingerprint_pending(
    settings: Settings,
    client: Any,
    frag_dir: Path,
    limit: int | None,
    on_start: Callable[[int, int], None] | None,
    on_result: Callable[[FingerprintResult], None] | None,
    shard: str | None,
) -> FingerprintStats:
    leftovers = sorted(frag_dir.glob("*.parquet"))
    # beside the fragments, not among them (a crash leaves it; it is no fragment)
    pending_file = frag_dir / "pending" / "objects.parquet"
    pending_file.parent.mkdir(parents=True, exist_ok=True)
    with open_catalog(settings) as catalog:
        if leftovers:
            catalog.fingerprints.apply_fingerprints(leftovers)
        count, size = catalog.fingerprints.export_pending_fingerprints(pending_file, limit=limit,
                                                                       shard=shard)
    for path in leftovers:
        path.unlink()
    if on_start is not None:
        on_start(count, size)
    pending = _read_pending(pending_file)

    counter = RetryCounter()
    started = time.monotonic()
    totals, bytes_read = fingerprint_and_merge(
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


def fingerprint_and_merge(
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
            catalog.fingerprints.apply_fingerprints(fragments)
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
