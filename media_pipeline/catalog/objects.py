"""The objects of the buckets in ``media_files``: merging an object snapshot (a listing or an
inventory report) or a few objects (from HEAD) into the catalog.

New objects are inserted ``pending`` (to be fingerprinted), changed ones go back to ``pending``,
absent ones become ``missing``; nothing is ever dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from media_pipeline.catalog.retry import retried
from media_pipeline.catalog.sql import (
    ARCHIVED_FILTER,
    DELETED_IDS,
    FILE_STATE,
    KEEP_LISTED_LAST_SEEN,
    PRESENT,
    utc_now,
)
from media_pipeline.catalog.store import Store
from media_pipeline.errors import CatalogError
from media_pipeline.records import PendingObject

__all__ = ["InventoryDiff", "ObjectStore", "ObjectsApplied"]


@dataclass(frozen=True)
class InventoryDiff:
    """How an object snapshot compares with the catalog."""

    rows: int
    bytes: int
    new: int
    changed: int
    unchanged: int
    missing: int
    reappeared: int


@dataclass(frozen=True)
class ObjectsApplied:
    """What merging a few objects (not a whole listing) changed, and what now needs a
    fingerprint."""

    new: int
    changed: int
    reappeared: int
    unchanged: int
    missing: int
    pending: list[PendingObject]


# The object snapshot's columns (inventory/snapshot.py SNAPSHOT_COLUMNS), for rows handed over
# in memory rather than as a Parquet file.
_OBJECT_COLUMNS = (
    ("bucket", "VARCHAR NOT NULL"),
    ("key", "VARCHAR NOT NULL"),
    ("version_id", "VARCHAR"),
    ("size", "BIGINT NOT NULL"),
    ("etag", "VARCHAR NOT NULL"),
    ("last_modified", "TIMESTAMPTZ NOT NULL"),
    ("storage_class", "VARCHAR"),
)


class ObjectStore(Store):
    """``catalog.objects``: the bucket's objects merged into ``media_files``."""

    @retried
    def apply_inventory(
        self,
        snapshot: Path,
        bucket: str,
        *,
        source: str = "listing",
        prefix: str = "",
        run_id: str | None = None,
        as_of: datetime | None = None,
    ) -> InventoryDiff:
        """Merge an object snapshot (Parquet) into ``media_files`` in one transaction.

        New objects are inserted as ``pending`` (to be fingerprinted), changed ones (size or
        ETag) go back to ``pending``, and catalogued objects of this bucket/prefix absent from the
        snapshot become ``missing``; nothing is ever dropped. An object that comes back is
        restored to the status its fingerprint gave it.

        ``as_of`` is when an inventory report was taken (reports lag by up to a day): objects
        modified after it are neither marked missing nor rolled back to the report's version.
        A live listing passes when it began (objects uploaded during it are not in it).

        Only new, changed and returning objects are materialized; unchanged ones (the bulk of a
        nightly run) are matched by key in a join and never copied.
        """
        now = utc_now()
        con = self.con
        like = _like_prefix(prefix)
        snap = "(SELECT * FROM read_parquet($snapshot) WHERE bucket = $bucket)"
        params: dict[str, Any] = {"snapshot": str(snapshot), "bucket": bucket}
        # A report older than what we know of an object must not roll it back nor call it gone:
        # objects written after the report was taken are not in it. (A listing has no lag.)
        not_newer_than_report = (
            "AND (last_modified IS NULL OR last_modified <= $as_of)" if as_of is not None else ""
        )
        as_of_param = {"as_of": as_of} if as_of is not None else {}
        with self.transaction():
            totals = con.execute(
                f"SELECT count(*), coalesce(sum(size), 0) FROM {snap}", params
            ).fetchone()
            assert totals is not None
            known = con.execute("SELECT count(*) FROM (SELECT 1 FROM media_objects "
                                "WHERE bucket = $bucket LIMIT 1)", {"bucket": bucket}
                                ).fetchall()[0][0]
            counts: dict[str, int] = {}
            missing = new = 0
            if not known:  # a first listing: every object is new
                new = self._insert_new(snap, params, now, unknown_only=False)
            else:
                # One join of the snapshot with the bucket's objects finds the new, changed,
                # returning and missing ones (a pass over both per kind cost 2-3x as much).
                counts = self._stage_changes(
                    snap, {**params, **as_of_param, "like": like},
                    not_newer_than_report.replace("last_modified", "m.last_modified"),
                    missing=True,
                )
                missing = counts.pop("missing", 0)
                new = counts.pop("new", 0)
                if new:
                    self._insert_new(
                        "(SELECT $bucket AS bucket, key, version_id, size, etag, last_modified, "
                        "storage_class FROM inventory_changes WHERE kind = 'new')",
                        {"bucket": bucket}, now, unknown_only=False)
                if missing:
                    con.execute(
                        f"""
                        UPDATE media_objects SET status = 'missing', missing_since = $now,
                            {KEEP_LISTED_LAST_SEEN}
                        WHERE media_id IN (SELECT media_id FROM inventory_changes
                                           WHERE kind = 'missing')
                        """,
                        {"now": now},
                    )
                if new or missing:
                    con.execute("DELETE FROM inventory_changes WHERE kind IN ('new', 'missing')")
            if counts:
                self._apply_staged_changes(now)
            # Every object of this bucket/prefix still present was in the snapshot just now. A
            # whole listing says so in inventory_runs (media_files derives last_seen from it:
            # no row rewritten); a prefix's listing updates its rows.
            if prefix:
                con.execute(
                    f"""
                    UPDATE media_objects SET last_seen = $now
                    WHERE bucket = $bucket AND {PRESENT} AND key LIKE $like ESCAPE '\\'
                      AND last_seen <> $now
                    """,
                    {"bucket": bucket, "now": now, "like": like},
                )
            changed = int(counts.get("changed", 0))
            reappeared = int(counts.get("reappeared", 0))
            # "moved": same content, another storage class; counted as unchanged.
            diff = InventoryDiff(
                rows=int(totals[0]),
                bytes=int(totals[1]),
                new=new,
                changed=changed,
                unchanged=int(totals[0]) - new - changed - reappeared,
                missing=missing,
                reappeared=reappeared,
            )
            con.execute(
                "INSERT INTO inventory_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [now, source, bucket, diff.rows, diff.new, diff.changed, diff.unchanged,
                 diff.missing, diff.reappeared, run_id, prefix],
            )
            con.execute("DROP TABLE IF EXISTS inventory_changes")
        return diff

    @retried
    def apply_objects(
        self,
        objects: Sequence[Mapping[str, Any]],
        bucket: str,
        *,
        gone_keys: Sequence[str] = (),
        source: str = "keys",
        run_id: str | None = None,
    ) -> ObjectsApplied:
        """Merge a few objects (snapshot-shaped rows, e.g. from HEAD) into ``media_files``.

        The same merge as :meth:`apply_inventory` for these keys only: new objects are inserted
        as ``pending``, changed or returning ones are updated the same way, and nothing outside
        ``objects`` is marked missing (they are not a listing of the bucket). ``gone_keys`` are
        objects known not to exist now (HEAD said 404): a catalogued one becomes ``missing``,
        an unknown one is ignored. Unchanged objects are not touched at all, so applying the
        same objects twice changes nothing the second time: only a merge that changed
        something is recorded in ``inventory_runs`` (with ``source`` and ``run_id``).

        Returns the counts and the objects of this batch that now wait for a fingerprint.
        """
        now = utc_now()
        con = self.con
        columns = [name for name, _ in _OBJECT_COLUMNS]
        for row in objects:
            if row.get("bucket") != bucket:
                raise CatalogError(
                    f"object {row.get('key')!r} is of bucket {row.get('bucket')!r}, not {bucket!r}")
        with self.transaction():
            con.execute(
                "CREATE OR REPLACE TEMP TABLE ingest_objects ("
                + ", ".join(f"{name} {sql_type}" for name, sql_type in _OBJECT_COLUMNS) + ")"
            )
            if objects:
                con.executemany(
                    f"INSERT INTO ingest_objects VALUES ({', '.join('?' for _ in columns)})",
                    [[row.get(name) for name in columns] for row in objects],
                )
            snap = "(SELECT * FROM ingest_objects WHERE bucket = $bucket)"
            params: dict[str, Any] = {"bucket": bucket}
            counts = self._stage_changes(snap, params)
            new = self._insert_new(snap, params, now)
            if counts:
                self._apply_staged_changes(now)
                # Changed and returning objects were just seen; unchanged ones stay as they are.
                con.execute(
                    "UPDATE media_objects SET last_seen = $now "
                    "WHERE media_id IN (SELECT media_id FROM inventory_changes)",
                    {"now": now},
                )
            con.execute("DROP TABLE inventory_changes")
            missing = 0
            if gone_keys:
                gone_row = con.execute(
                    f"""
                    UPDATE media_objects SET status = 'missing', missing_since = $now,
                        {KEEP_LISTED_LAST_SEEN}
                    WHERE bucket = $bucket AND {PRESENT} AND list_contains($gone, key)
                    """,
                    {"now": now, "bucket": bucket, "gone": list(gone_keys)},
                ).fetchone()
                missing = int(gone_row[0]) if gone_row else 0
            pending = con.execute(
                f"""
                SELECT media_id, bucket, key, file_size, etag FROM {FILE_STATE}
                WHERE bucket = $bucket AND status = 'pending' {ARCHIVED_FILTER}
                  AND key IN (SELECT key FROM ingest_objects)
                ORDER BY key
                """,
                params,
            ).fetchall()
            con.execute("DROP TABLE ingest_objects")
            changed = int(counts.get("changed", 0))
            reappeared = int(counts.get("reappeared", 0))
            unchanged = len(objects) - new - changed - reappeared
            if new or changed or reappeared or missing:
                con.execute(
                    "INSERT INTO inventory_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                    [now, source, bucket, len(objects), new, changed, unchanged, missing,
                     reappeared, run_id],
                )
        return ObjectsApplied(
            new=new,
            changed=changed,
            reappeared=reappeared,
            unchanged=unchanged,
            missing=missing,
            pending=[
                PendingObject(media_id=str(r[0]), bucket=r[1], key=r[2], size=int(r[3]),
                              etag=r[4] or "")
                for r in pending
            ],
        )

    # The merge pieces apply_inventory and apply_objects share. ``snap`` is a subquery over
    # snapshot-shaped rows of one bucket; ``params`` holds at least $bucket.

    def _stage_changes(self, snap: str, params: dict[str, Any], extra_filter: str = "",
                       *, missing: bool = False) -> dict[str, int]:
        """Known objects whose size, ETag, storage class or presence differ from ``snap``, into
        the temp table ``inventory_changes``; returns the count per kind. With ``missing`` also
        the present objects under ``$like`` that ``snap`` lacks (kind ``missing``; ``snap`` is
        then a whole listing of that prefix) and the objects of ``snap`` the catalog does not
        know (``new``). ``extra_filter`` (on ``m``) applies to known objects."""
        known = (
            "(SELECT media_id, key, file_size, etag, status, storage_class, last_modified "
            "FROM media_objects WHERE bucket = $bucket)"
        )
        gone = (f"""WHEN i.key IS NULL THEN CASE
                        WHEN m.status NOT IN ('missing', 'purged')
                             AND m.key LIKE $like ESCAPE '\\' {extra_filter}
                            THEN 'missing' END""" if missing else "")
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE inventory_changes AS
            SELECT * FROM (
                SELECT m.media_id, i.key, i.version_id, i.size, i.etag, i.last_modified,
                       i.storage_class,
                       CASE WHEN m.media_id IS NULL THEN {"'new'" if missing else "NULL"}
                            {gone}
                            WHEN NOT (m.file_size <> i.size OR m.etag IS DISTINCT FROM i.etag
                                      OR m.status IN ('missing', 'purged')
                                      OR m.storage_class IS DISTINCT FROM i.storage_class)
                                THEN NULL
                            WHEN NOT (true {extra_filter}) THEN NULL
                            WHEN m.file_size <> i.size OR m.etag IS DISTINCT FROM i.etag
                                 OR m.status = 'purged' THEN 'changed'
                            WHEN m.status = 'missing' THEN 'reappeared'
                            ELSE 'moved' END AS kind
                FROM {snap} i {"FULL OUTER" if missing else ""} JOIN {known} m ON m.key = i.key)
            WHERE kind IS NOT NULL
            """,
            params,
        )
        return {str(kind): int(n) for kind, n in self.con.execute(
            "SELECT kind, count(*) FROM inventory_changes GROUP BY kind").fetchall()}

    def _insert_new(self, snap: str, params: dict[str, Any], now: datetime, *,
                    unknown_only: bool = True) -> int:
        """Objects of ``snap`` the catalog does not know, inserted as pending (without
        ``unknown_only``, ``snap`` holds only such objects)."""
        unknown = ("WHERE NOT EXISTS (SELECT 1 FROM media_objects m "
                   "WHERE m.bucket = $bucket AND m.key = i.key)" if unknown_only else "")
        row = self.con.execute(
            f"""
            INSERT INTO media_objects (media_id, namespace, bucket, key, version_id, file_size,
                etag, last_modified, storage_class, original_filename, status,
                first_seen, last_seen)
            SELECT md5(i.bucket || chr(0) || i.key)::UUID,
                   CASE WHEN contains(i.key, '/') THEN split_part(i.key, '/', 1)
                        ELSE 'default' END,
                   i.bucket, i.key, i.version_id, i.size, i.etag, i.last_modified,
                   i.storage_class, split_part(i.key, '/', -1), 'pending', $now, $now
            FROM {snap} i {unknown}
            """,
            {**params, "now": now},
        ).fetchone()
        return int(row[0]) if row else 0

    def _apply_staged_changes(self, now: datetime) -> None:
        """Update the rows in ``inventory_changes``: new content goes back to pending, a
        returning object to the status its fingerprint gave it."""
        self.con.execute(
            """
            UPDATE media_objects AS m SET
                file_size = c.size, etag = c.etag, version_id = c.version_id,
                last_modified = c.last_modified, storage_class = c.storage_class,
                missing_since = NULL,
                status = CASE
                    WHEN c.kind = 'moved' THEN m.status
                    WHEN c.kind = 'changed' OR m.fingerprinted_etag IS DISTINCT FROM c.etag
                        THEN 'pending'
                    WHEN m.quarantine_reason IS NOT NULL THEN 'quarantined'
                    ELSE 'active' END,
                purged_at = CASE WHEN c.kind = 'changed' THEN NULL ELSE m.purged_at END
            FROM inventory_changes c
            WHERE m.media_id = c.media_id
            """
        )
        # New content at the key of a deleted or purged file is a new file: it is not deleted
        # (a purge must never take it for the old one).
        self.con.execute(
            f"""
            INSERT INTO media_deletions
            SELECT media_id, false, $now, NULL, 'new content', NULL FROM inventory_changes
            WHERE kind = 'changed' AND media_id IN {DELETED_IDS} ORDER BY media_id
            """,
            {"now": now},
        )


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"

