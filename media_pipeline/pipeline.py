"""The pipeline's stages as plain functions: what the Dagster assets and the CLI both call.

Each stage that does heavy work (listing, reading objects) works outside the catalog and writes
Parquet under ``work/``; the catalog is opened only for the short commit that merges it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media_pipeline.catalog import Catalog, DuplicateStats, InventoryDiff
from media_pipeline.fingerprint import fingerprint_objects, write_fragment
from media_pipeline.inventory import SnapshotStats, list_to_snapshot, read_inventory
from media_pipeline.records import FingerprintResult
from media_pipeline.settings import Settings
from media_pipeline.storage import RetryCounter

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
    report when one is configured, else from a live listing."""
    out = inventory_snapshot_path(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    if settings.inventory_location:
        return read_inventory(
            settings.inventory_location, client, out,
            work_dir=settings.work_dir / "inventory" / "download",
            expected_bucket=settings.bucket,
        )
    return list_to_snapshot(client, settings.bucket, out, counter=counter)


def commit_inventory(settings: Settings, run_id: str | None = None) -> InventoryDiff:
    snapshot = inventory_snapshot_path(settings)
    if not snapshot.exists():
        raise FileNotFoundError(
            f"no object snapshot at {snapshot}: materialize inventory_snapshot first"
        )
    source = "inventory" if settings.inventory_location else "listing"
    with open_catalog(settings) as catalog:
        return catalog.apply_inventory(snapshot, settings.bucket, source=source, run_id=run_id)


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
    leftovers = sorted(frag_dir.glob("*.parquet"))
    with open_catalog(settings) as catalog:
        if leftovers:
            catalog.apply_fingerprints(leftovers)
        pending = catalog.pending_fingerprints(limit=limit)
    for path in leftovers:
        path.unlink()
    if on_start is not None:
        on_start(len(pending), sum(p.size for p in pending))

    counter = RetryCounter()
    started = time.monotonic()
    fragments: list[Path] = []
    buffer: list[FingerprintResult] = []
    totals = {"active": 0, "quarantined": 0, "missing": 0, "error": 0}
    bytes_read = 0

    def flush() -> None:
        if buffer:
            path = frag_dir / f"{uuid.uuid4().hex}.parquet"
            write_fragment(buffer, path)
            fragments.append(path)
            buffer.clear()

    for result in fingerprint_objects(client, pending, settings, counter=counter):
        totals[result.status] = totals.get(result.status, 0) + 1
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
    return FingerprintStats(
        objects=len(pending),
        bytes_read=bytes_read,
        active=totals["active"],
        quarantined=totals["quarantined"],
        missing=totals["missing"],
        errors=totals["error"],
        s3_retries=counter.retries,
        seconds=time.monotonic() - started,
        resumed_fragments=len(leftovers),
    )


def rebuild_duplicates(settings: Settings) -> DuplicateStats:
    with open_catalog(settings) as catalog:
        return catalog.rebuild_duplicate_groups()


def rebuild_near_duplicates(settings: Settings) -> int:
    with open_catalog(settings) as catalog:
        return catalog.rebuild_near_duplicates(settings.near_duplicate_distance)
