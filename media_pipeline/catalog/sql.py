"""SQL fragments and helpers that several stores share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from media_pipeline.kinds import MediaStatus, sql_in

__all__ = [
    "ARCHIVED_FILTER", "DELETED_IDS", "FILE_STATE", "KEEP_LISTED_LAST_SEEN", "PRESENT", "aware",
    "keep_listed_last_seen", "sql_string", "utc_now",
]

# Rows whose object exists in the bucket (as far as the last inventory knows).
PRESENT = f"status NOT IN {sql_in(MediaStatus.MISSING, MediaStatus.PURGED)}"
# Each file's base row with its deletion state, as media_files shows them (status 'deleted'
# included), without the reference aggregation: what bulk reads and the lifecycle read.
FILE_STATE = """(SELECT o.* REPLACE (
               CASE WHEN d.is_deleted AND o.status NOT IN ('missing', 'purged') THEN 'deleted'
                    ELSE o.status END AS status),
           coalesce(d.is_deleted, false) AS is_deleted,
           CASE WHEN d.is_deleted THEN d.changed_at END AS deleted_at,
           CASE WHEN d.is_deleted THEN d.actor END AS deleted_by
    FROM media_objects o LEFT JOIN media_deletion_state d ON d.media_id = o.media_id)"""
# Files soft-deleted now (purged ones too): a small set, for filters on media_objects.
DELETED_IDS = "(SELECT media_id FROM media_deletion_state WHERE is_deleted)"
# SET clause for an object leaving the bucket (missing, purged): media_files stops deriving its
# last_seen from the bucket's latest whole listing (migration 6), so it keeps that time.
def keep_listed_last_seen(table: str = "media_objects") -> str:
    """The SET clause; ``table``: the updated table's name or alias."""
    return (f"last_seen = greatest({table}.last_seen, coalesce((SELECT max(r.started) "
            f"FROM inventory_runs r WHERE r.bucket = {table}.bucket AND r.prefix = ''), "
            f"{table}.last_seen))")


KEEP_LISTED_LAST_SEEN = keep_listed_last_seen()
# Objects in archive storage classes cannot be read without a restore; they wait, pending.
ARCHIVED_FILTER = (
    "AND coalesce(storage_class, 'STANDARD') NOT IN ('GLACIER', 'DEEP_ARCHIVE')"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def sql_string(path: Path) -> str:
    """A path inside a single-quoted SQL literal (COPY takes no parameters)."""
    return str(path).replace("'", "''")


def aware(value: datetime | None) -> Any:
    """Naive datetimes are taken as UTC (the catalog stores TIMESTAMPTZ)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
