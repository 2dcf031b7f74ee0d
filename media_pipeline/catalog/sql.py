"""SQL fragments and helpers that several stores share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from media_pipeline.kinds import MediaStatus, sql_in

__all__ = ["ARCHIVED_FILTER", "PRESENT", "sql_string", "utc_now"]

# Rows whose object exists in the bucket (as far as the last inventory knows).
PRESENT = f"status NOT IN {sql_in(MediaStatus.MISSING, MediaStatus.PURGED)}"
# Objects in archive storage classes cannot be read without a restore; they wait, pending.
ARCHIVED_FILTER = (
    "AND coalesce(storage_class, 'STANDARD') NOT IN ('GLACIER', 'DEEP_ARCHIVE')"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def sql_string(path: Path) -> str:
    """A path inside a single-quoted SQL literal (COPY takes no parameters)."""
    return str(path).replace("'", "''")
