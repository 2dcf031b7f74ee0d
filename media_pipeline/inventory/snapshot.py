"""The object snapshot: the one file format every way of learning a bucket's contents produces.

An S3 Inventory report (CSV.gz or Parquet) and a live listing both end up as the same Parquet file,
so the catalog committer has one thing to read (DuckDB ``read_parquet``) and diff against the
catalog, whatever the source. One row per current object (latest version, not a delete marker),
keys in their real, decoded form.

The snapshot is written to a temporary name next to its destination and renamed at the end, so a
reader (or a rerun after a crash) never sees half a snapshot: on any error nothing is at
``out_path``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from media_pipeline.errors import InventoryError  # noqa: F401

# The contract shared with the catalog committer: (column, DuckDB type, nullable).
SNAPSHOT_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("bucket", "VARCHAR", False),
    ("key", "VARCHAR", False),
    ("version_id", "VARCHAR", True),
    ("size", "BIGINT", False),
    ("etag", "VARCHAR", False),  # without the surrounding quotes S3 puts in the header
    ("last_modified", "TIMESTAMP WITH TIME ZONE", False),
    ("storage_class", "VARCHAR", True),
)
SNAPSHOT_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _, _ in SNAPSHOT_COLUMNS)

# The same contract for pyarrow writers. Microsecond UTC timestamps are what DuckDB reads back as
# TIMESTAMP WITH TIME ZONE (Parquet isAdjustedToUTC=true).
SNAPSHOT_SCHEMA = pa.schema(
    [
        pa.field("bucket", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("version_id", pa.string()),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("etag", pa.string(), nullable=False),
        pa.field("last_modified", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("storage_class", pa.string()),
    ]
)

# Measured writing a 4.7M-row snapshot with pyarrow (random ETags and version ids, like real
# ones): uncompressed 1.3 s / 630 MB, snappy 2.4 s / 442 MB, lz4 1.8 s / 457 MB, zstd(1)
# 2.6 s / 241 MB. In read_inventory the writer runs on its own thread beside DuckDB's CSV
# parsing, and end to end all four took the same time within noise; zstd halves the disk and
# the committer's read, so it wins. (Hex strings defeat snappy/lz4; zstd's entropy coding does not.)
SNAPSHOT_COMPRESSION = "zstd"
SNAPSHOT_COMPRESSION_LEVEL = 1
# Columns with few distinct values; dictionary-encoding the unique ones (key, etag, version) only
# costs time.
_DICTIONARY_COLUMNS = ["bucket", "storage_class"]


@dataclass
class SnapshotStats:
    """What producing a snapshot found, for asset metadata and logs.

    ``skipped_*`` count what an all-versions inventory report held besides current objects, so an
    operator can see why a report's row count differs from the snapshot's.
    """

    rows: int = 0
    bytes: int = 0
    skipped_delete_markers: int = 0
    skipped_noncurrent: int = 0
    source: str = ""
    files_read: int = 0
    path: Path | None = None
    report_created: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        """Flat JSON-friendly values (numbers stay numbers so Dagster can plot them)."""
        out = asdict(self)
        out["path"] = str(self.path) if self.path is not None else None
        out["report_created"] = (
            self.report_created.isoformat() if self.report_created is not None else None
        )
        extra = out.pop("extra")
        out.update(extra)
        return out


def temp_path_for(out_path: Path) -> Path:
    """A unique sibling name, so the final rename stays on one filesystem (atomic)."""
    return out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.tmp")


class SnapshotWriter:
    """Writes snapshot batches to a temporary file; ``commit`` renames it into place.

    Used as a context manager: leaving the block with an exception (or without ``commit``) removes
    the temporary file, so ``out_path`` is either the complete new snapshot or untouched.
    """

    def __init__(self, out_path: Path) -> None:
        self.out_path = Path(out_path)
        self.tmp_path = temp_path_for(self.out_path)
        self.rows = 0
        self.bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._committed = False

    def __enter__(self) -> SnapshotWriter:
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(
            self.tmp_path,
            SNAPSHOT_SCHEMA,
            compression=SNAPSHOT_COMPRESSION,
            compression_level=SNAPSHOT_COMPRESSION_LEVEL,
            use_dictionary=_DICTIONARY_COLUMNS,
        )
        return self

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows whose columns are the snapshot's (by name; cast to the contract types)."""
        if self._writer is None:
            raise RuntimeError("SnapshotWriter used outside its 'with' block")
        if batch.num_rows == 0:
            return
        if batch.schema != SNAPSHOT_SCHEMA:
            batch = batch.select(list(SNAPSHOT_COLUMN_NAMES)).cast(SNAPSHOT_SCHEMA)
        self._writer.write(batch)
        self.rows += batch.num_rows
        total = pc.sum(batch.column("size")).as_py()
        self.bytes += int(total or 0)

    def commit(self) -> Path:
        """Close the file and move it to ``out_path`` (replacing an older snapshot atomically)."""
        if self._writer is None:
            raise RuntimeError("SnapshotWriter used outside its 'with' block")
        self._writer.close()
        os.replace(self.tmp_path, self.out_path)
        self._committed = True
        return self.out_path

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._committed:
            return
        if self._writer is not None:
            # The original error matters, not one from closing a half-written file.
            with contextlib.suppress(Exception):
                self._writer.close()
        self.tmp_path.unlink(missing_ok=True)


def validate_snapshot(path: Path) -> None:
    """Raise InventoryError unless ``path`` is a Parquet file with exactly the contract's columns.

    Cheap (reads only the footer); lets the committer refuse a file from an older or foreign
    writer before it diffs anything.
    """
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InventoryError(f"{path}: not a readable Parquet snapshot: {exc}") from None
    names = tuple(schema.names)
    if names != SNAPSHOT_COLUMN_NAMES:
        raise InventoryError(
            f"{path}: snapshot columns are {list(names)}, expected {list(SNAPSHOT_COLUMN_NAMES)}"
        )
    for expected in SNAPSHOT_SCHEMA:
        actual = schema.field(expected.name).type
        if not actual.equals(expected.type):
            # Parquet round-trips tz names like "UTC" vs "+00:00"; compare the unit and tz-ness.
            if (
                pa.types.is_timestamp(actual)
                and pa.types.is_timestamp(expected.type)
                and actual.tz is not None
            ):
                continue
            raise InventoryError(
                f"{path}: column {expected.name} is {actual}, expected {expected.type}"
            )
