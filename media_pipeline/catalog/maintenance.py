"""DuckLake maintenance of the catalog (the ``catalog_maintenance`` asset; no Dagster here).

In order, each a DuckLake function of 1.5.5:

1. ``ducklake_flush_inlined_data``: small writes kept inside the metadata database become
   Parquet files;
2. ``ducklake_merge_adjacent_files``: small files of a table are merged into larger ones;
3. ``ducklake_expire_snapshots``: snapshots older than ``snapshot_retention_days`` go, except
   the newest and those a purge decided on within ``purge_snapshot_retention_days``
   (``why-purged`` answers from them);
4. ``ducklake_cleanup_old_files`` and ``ducklake_delete_orphaned_files``: data files no kept
   snapshot needs, and files no commit ever recorded, are deleted once older than ``grace``
   (a reader still on an older snapshot, or a writer whose commit is under way, keeps its
   files meanwhile) — in practice from the next day on (see the comment in the code).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb

from media_pipeline.catalog import lake
from media_pipeline.catalog.catalog import ensure_schema
from media_pipeline.catalog.history import protected_snapshots
from media_pipeline.catalog.retry import FIRST_BACKOFF, MAX_BACKOFF, WRITE_ATTEMPTS, is_conflict

if TYPE_CHECKING:
    from media_pipeline.settings import Settings

__all__ = ["MaintenanceReport", "maintain_catalog", "run_maintenance"]

DEFAULT_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class MaintenanceReport:
    """What a maintenance run did; every figure is a number (Dagster plots them)."""

    files_before: int
    files_after: int
    data_bytes_before: int
    data_bytes_after: int
    rows_flushed: int
    files_merged: int  # small files merged away ...
    files_created: int  # ... into these
    snapshots_before: int
    snapshots_expired: int
    snapshots_kept_for_purges: int  # older than the retention, kept for why-purged
    files_deleted: int
    bytes_freed: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _all(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
         ) -> list[tuple[Any, ...]]:
    """Run one statement (its own transaction); again, with backoff, while it conflicts with
    another writer or SQLite metadata is locked by one (applications write all day)."""
    delay = FIRST_BACKOFF
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            # Always fetchall: an unread result keeps its transaction (and SQLite's lock) open.
            return con.execute(sql, params or []).fetchall()
        except duckdb.Error as exc:
            busy = is_conflict(exc) or "database is locked" in str(exc).lower()
            if not busy or attempt == WRITE_ATTEMPTS:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, MAX_BACKOFF)
    raise AssertionError("unreachable")


def _lake_name(con: duckdb.DuckDBPyConnection) -> str:
    """The lake ``con`` has selected, as a SQL string (its alias differs per lake on a shared
    instance)."""
    name = str(_all(con, "SELECT current_database()")[0][0])
    return "'" + name.replace("'", "''") + "'"


def _files(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    target = _lake_name(con)
    row = _all(con, "SELECT coalesce(sum(file_count + delete_file_count), 0), "
                    "coalesce(sum(file_size_bytes + delete_file_size_bytes), 0) "
                    f"FROM ducklake_table_info({target})")[0]
    return int(row[0]), int(row[1])


def _sizes(con: duckdb.DuckDBPyConnection, paths: list[str]) -> int:
    """Bytes of the files about to be deleted (local or on S3); a file gone meanwhile is 0."""
    if not paths:
        return 0
    try:
        return int(_all(con, "SELECT coalesce(sum(size), 0) FROM read_blob(?::VARCHAR[])",
                        [paths])[0][0])
    except duckdb.IOException:
        return sum(os.path.getsize(p) for p in paths if "://" not in p and os.path.exists(p))


def run_maintenance(con: duckdb.DuckDBPyConnection, *, snapshot_retention_days: int,
                    purge_snapshot_retention_days: int, now: datetime | None = None,
                    grace: timedelta = DEFAULT_GRACE) -> MaintenanceReport:
    """Flush, merge, expire and clean up the lake ``con`` has selected."""
    started = time.monotonic()
    target = _lake_name(con)
    now = now or datetime.now(UTC)
    files_before, bytes_before = _files(con)
    snapshots_before = int(_all(con, f"SELECT count(*) FROM ducklake_snapshots({target})")[0][0])

    flushed = _all(con, f"CALL ducklake_flush_inlined_data({target})")
    rows_flushed = sum(int(r[2] or 0) for r in flushed)
    merged = _all(con, f"CALL ducklake_merge_adjacent_files({target})")
    files_merged = sum(int(r[2] or 0) for r in merged)
    files_created = sum(int(r[3] or 0) for r in merged)

    snapshots = _all(con, f"SELECT snapshot_id, snapshot_time FROM ducklake_snapshots({target}) "
                          "ORDER BY snapshot_id")
    newest = snapshots[-1][0] if snapshots else None
    keep = protected_snapshots(con, now - timedelta(days=purge_snapshot_retention_days))
    old = [int(s) for s, at in snapshots
           if at < now - timedelta(days=snapshot_retention_days) and s != newest]
    expire = [s for s in old if s not in keep]
    if expire:
        _all(con, f"CALL ducklake_expire_snapshots({target}, versions => ?::UBIGINT[])",
             [expire])

    if grace <= timedelta(0):
        age = "cleanup_all => true"
        params: list[Any] = []
    else:
        # On SQLite metadata DuckLake 1.5.5 compares these times as text ('2026-12-07 02:12'
        # against '2026-12-07T01:12'), so any time on the same date matches. The end of the
        # day before the grace's cutoff is right either way: a file goes a day later at most.
        cutoff = (now - grace).astimezone(UTC)
        age = "older_than => ?::TIMESTAMPTZ"
        params = [cutoff.replace(hour=0, minute=0, second=0, microsecond=0)
                  - timedelta(microseconds=1)]
    doomed = [str(r[0]) for r in _all(
        con, f"CALL ducklake_cleanup_old_files({target}, dry_run => true, {age})", params)]
    doomed += [str(r[0]) for r in _all(
        con, f"CALL ducklake_delete_orphaned_files({target}, dry_run => true, {age})", params)]
    freed = _sizes(con, doomed)
    deleted = len(_all(con, f"CALL ducklake_cleanup_old_files({target}, {age})", params))
    deleted += len(_all(con, f"CALL ducklake_delete_orphaned_files({target}, {age})", params))

    files_after, bytes_after = _files(con)
    return MaintenanceReport(
        files_before=files_before, files_after=files_after,
        data_bytes_before=bytes_before, data_bytes_after=bytes_after,
        rows_flushed=rows_flushed, files_merged=files_merged, files_created=files_created,
        snapshots_before=snapshots_before, snapshots_expired=len(expire),
        snapshots_kept_for_purges=len(old) - len(expire), files_deleted=deleted,
        bytes_freed=freed if deleted else 0, seconds=round(time.monotonic() - started, 3))


def maintain_catalog(settings: Settings, *, grace: timedelta = DEFAULT_GRACE
                     ) -> MaintenanceReport:
    """Maintenance of the catalog the settings name, with their retentions."""
    with lake.session(settings.catalog_location) as con:
        ensure_schema(con, settings.catalog_location)
        return run_maintenance(
            con, snapshot_retention_days=settings.catalog_snapshot_retention_days,
            purge_snapshot_retention_days=settings.purge_snapshot_retention_days, grace=grace)
