"""Live listing of a bucket → object snapshot, for buckets without an S3 Inventory configuration.

Produces exactly the Parquet contract an inventory report produces, so the committer cannot tell
the two apart. Objects are written in batches as they arrive from the (parallel, paginated)
listing, so memory holds one batch of rows, not the bucket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from media_pipeline.inventory.snapshot import SNAPSHOT_SCHEMA, SnapshotStats, SnapshotWriter
from media_pipeline.storage import RetryCounter, S3Object, list_objects

LISTING_BATCH_ROWS = 50_000


def _batch(objects: list[S3Object]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            pa.array([o.bucket for o in objects], pa.string()),
            pa.array([o.key for o in objects], pa.string()),
            pa.array([o.version_id for o in objects], pa.string()),
            pa.array([o.size for o in objects], pa.int64()),
            pa.array([o.etag for o in objects], pa.string()),
            # boto3 returns aware datetimes; pyarrow converts them to UTC.
            pa.array([o.last_modified for o in objects], pa.timestamp("us", tz="UTC")),
            pa.array([o.storage_class for o in objects], pa.string()),
        ],
        schema=SNAPSHOT_SCHEMA,
    )


def list_to_snapshot(
    client: Any,
    bucket: str,
    out_path: Path,
    *,
    prefix: str = "",
    workers: int = 8,
    counter: RetryCounter | None = None,
    batch_rows: int = LISTING_BATCH_ROWS,
) -> SnapshotStats:
    """List every current object under ``prefix`` and write the snapshot to ``out_path``.

    An S3 error during listing propagates and leaves ``out_path`` untouched: a partial listing
    must never reach the committer, which would mark the unlisted objects missing.
    """
    out_path = Path(out_path)
    pending: list[S3Object] = []
    with SnapshotWriter(out_path) as writer:
        for obj in list_objects(client, bucket, prefix, workers=workers, counter=counter):
            pending.append(obj)
            if len(pending) >= batch_rows:
                writer.write(_batch(pending))
                pending = []
        if pending:
            writer.write(_batch(pending))
        writer.commit()
    return SnapshotStats(
        rows=writer.rows,
        bytes=writer.bytes,
        source=f"s3://{bucket}/{prefix} (live listing)",
        files_read=0,
        path=out_path,
        extra={"retries": counter.retries} if counter is not None else {},
    )
