"""The inventory stage: the bucket's objects to a snapshot Parquet (S3 Inventory report or live
listing), then merged into ``media_files`` in one short commit."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from media_pipeline.catalog import InventoryDiff, open_catalog
from media_pipeline.errors import InventoryError
from media_pipeline.inventory import (
    SnapshotStats,
    list_to_snapshot,
    read_inventory,
    validate_snapshot,
)
from media_pipeline.locks import exclusive
from media_pipeline.settings import Settings
from media_pipeline.storage import RetryCounter


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
            # A listing takes time: an object written after it began (an upload through the
            # API) may not be in it and must not be called missing, as for a report.
            as_of = datetime.now(UTC)
            stats = list_to_snapshot(client, settings.bucket, out, counter=counter)
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
            raise InventoryError(
                f"the object snapshot at {snapshot} is of bucket {info.get('bucket')!r}, not "
                f"{settings.bucket!r}: materialize inventory_snapshot again"
            )
        validate_snapshot(snapshot)
        as_of = datetime.fromisoformat(info["as_of"]) if info.get("as_of") else None
        with open_catalog(settings) as catalog:
            return catalog.objects.apply_inventory(
                snapshot, settings.bucket, source=info["source"], run_id=run_id, as_of=as_of
            )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
