"""The catalog: a DuckLake that every process attaches at once (see ``lake.py``).

Writers, readers and analysts attach the same lake and see committed data at once: there is no
file lock, no copy and no "one writer process". Two transactions that change rows of the same
data file conflict; :meth:`Catalog.write` runs a transaction body again (from its start, so the
body must only touch the catalog) when that happens, and gives up with ``CatalogConflict``.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from media_pipeline.catalog import lake
from media_pipeline.catalog.application import ApplicationSQL
from media_pipeline.catalog.dedup_sql import DedupSQL
from media_pipeline.catalog.lake import LakeLocation
from media_pipeline.catalog.lifecycle_sql import DELETED_IDS, FILE_STATE
from media_pipeline.catalog.migrations import LATEST_VERSION, MIGRATIONS
from media_pipeline.catalog.references import ReferenceSQL
from media_pipeline.catalog.retry import (
    FIRST_BACKOFF,
    MAX_BACKOFF,
    WRITE_ATTEMPTS,
    is_conflict,
    retried,
)
from media_pipeline.errors import CatalogConflict, CatalogError
from media_pipeline.kinds import MediaStatus, sql_in
from media_pipeline.records import STORED_FINGERPRINT_COLUMNS, FingerprintResult, PendingObject

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


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


@dataclass(frozen=True)
class DuplicateStats:
    groups: int
    duplicate_files: int
    wasted_bytes: int


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
# The committer copies each stored fingerprint column (records.py); dicts are JSON columns.
_FINGERPRINT_SET = ", ".join(
    f"{c} = f.{c}::JSON" if str(FingerprintResult.__dataclass_fields__[c].type).startswith("dict")
    else f"{c} = f.{c}" for c in STORED_FINGERPRINT_COLUMNS)
# Rows whose object exists in the bucket (as far as the last inventory knows).
PRESENT = f"status NOT IN {sql_in(MediaStatus.MISSING, MediaStatus.PURGED)}"
# Near-duplicate search probes up to distance // 4 flipped bits per band: 137 probes at 8-11.
MAX_NEAR_DISTANCE = 11
DEGENERATE_PHASH_FILES = 50
# Objects in archive storage classes cannot be read without a restore; they wait, pending.
# media_files without the reference aggregation (status 'deleted' included): for bulk reads
FILES = FILE_STATE
ARCHIVED_FILTER = (
    "AND coalesce(storage_class, 'STANDARD') NOT IN ('GLACIER', 'DEEP_ARCHIVE')"
)


class Catalog(ReferenceSQL, ApplicationSQL, DedupSQL):
    """A session on the catalog (the lake attached). Use :meth:`open` as a context manager."""

    def __init__(self, con: duckdb.DuckDBPyConnection, location: LakeLocation,
                 read_only: bool = False):
        self.con = con
        self.location = location
        self.read_only = read_only
        self._in_transaction = False

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def open(cls, location: LakeLocation | Path, *, read_only: bool = False
             ) -> Iterator[Catalog]:
        """Attach the catalog; a writer applies pending migrations first.

        ``location`` is where the lake lives; a folder stands for the embedded lake under it
        (``LakeLocation.embedded``). ``read_only`` attaches it read-only (DuckLake's
        ``READ_ONLY``): for checks, reports and analysts.
        """
        if not isinstance(location, LakeLocation):
            location = LakeLocation.embedded(Path(location))
        if read_only and not location.is_postgres and not Path(location.metadata).exists():
            raise CatalogError(f"no catalog at {location.metadata}: run `media-pipeline run` "
                               "or `media-pipeline demo` first")
        con = lake.session(location, read_only=read_only)
        try:
            catalog = cls(con, location, read_only)
            catalog.migrate()
            yield catalog
        finally:
            con.close()

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version.

        Safe when several processes attach a new lake at once: the migrations run in one
        transaction that reads the version first, so the loser of a race conflicts, finds the
        winner's version on its next try and has nothing left to do.
        """
        delay = FIRST_BACKOFF
        for _ in range(WRITE_ATTEMPTS):
            try:
                current = self.schema_version()
            except CatalogConflict:
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            self._refuse_newer(current)
            if current == LATEST_VERSION or self.read_only:
                if self.read_only and current == 0:
                    raise CatalogError(
                        f"the catalog ({self.location.describe()}) is empty: run "
                        "`media-pipeline run` or `media-pipeline demo` first")
                return current
            try:
                with self.transaction():
                    current = self.schema_version()
                    self._refuse_newer(current)
                    self.con.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version "
                        "(version INTEGER NOT NULL, description VARCHAR, applied_at TIMESTAMPTZ)")
                    for version, description, sql in sorted(MIGRATIONS):
                        if version > current:
                            self.con.execute(sql)
                            self.con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                                             [version, description, _now()])
                return LATEST_VERSION
            except CatalogConflict:
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, MAX_BACKOFF)
        raise CatalogConflict(f"the catalog's migrations kept conflicting with another "
                              f"process's after {WRITE_ATTEMPTS} attempts")

    def _refuse_newer(self, current: int) -> None:
        if current > LATEST_VERSION:
            raise CatalogError(
                f"the catalog ({self.location.describe()}) has schema version {current}, newer "
                f"than this media-pipeline understands ({LATEST_VERSION}); upgrade media-pipeline")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One attempt at a transaction; a conflict raises ``CatalogConflict`` with nothing
        applied. Inside another transaction it joins that one. Prefer :meth:`write`, which
        retries."""
        if self._in_transaction:
            yield self.con
            return
        self.con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield self.con
            self.con.execute("COMMIT")
        except BaseException as exc:
            _rollback(self.con)
            if isinstance(exc, duckdb.Error) and is_conflict(exc):
                raise CatalogConflict(
                    f"a catalog transaction conflicted with another writer's: {_first_line(exc)}"
                ) from exc
            raise
        finally:
            self._in_transaction = False

    def write(self, body: Callable[[], T]) -> T:
        """Run ``body`` in one transaction, again from its start (with backoff) while it
        conflicts with other writers; ``CatalogConflict`` after the last attempt. ``body`` must
        change nothing but the catalog, so running it twice is running it once. Inside another
        transaction it runs once, as part of that one (the outer ``write`` retries)."""
        if self._in_transaction:
            return body()
        delay = FIRST_BACKOFF
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self.transaction():
                    return body()
            except CatalogConflict as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise CatalogConflict(
                        f"a catalog write kept conflicting with other writers after "
                        f"{WRITE_ATTEMPTS} attempts; nothing of it was applied "
                        f"({_first_line(exc.__cause__ or exc)})") from exc
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, MAX_BACKOFF)
        raise AssertionError("unreachable")

    def schema_version(self) -> int:
        """The highest migration applied; 0 for a new lake."""
        if self._in_transaction:  # a failed statement would abort the transaction: look first
            exists = self.con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                "AND table_name = 'schema_version'").fetchall()
            if not exists[0][0]:
                return 0
        try:
            rows = self.con.execute("SELECT max(version) FROM schema_version").fetchall()
        except duckdb.Error as exc:
            if "ducklake_inlined_data" in str(exc):
                # another process is committing the lake's first tables at this moment
                raise CatalogConflict(f"the catalog is being created: {_first_line(exc)}"
                                      ) from exc
            if isinstance(exc, duckdb.CatalogException):
                return 0
            raise
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    # -- inventory ---------------------------------------------------------------------------

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
        now = _now()
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
            counts = self._stage_changes(
                snap, {**params, **as_of_param},
                not_newer_than_report.replace("last_modified", "m.last_modified"),
            )
            missing_row = con.execute(
                f"""
                UPDATE media_objects SET status = 'missing', missing_since = $now
                WHERE bucket = $bucket AND {PRESENT} AND key LIKE $like ESCAPE '\\'
                  AND NOT EXISTS (SELECT 1 FROM {snap} i WHERE i.key = media_objects.key)
                  {not_newer_than_report}
                """,
                {**params, "now": now, "like": like, **as_of_param},
            ).fetchone()
            missing = int(missing_row[0]) if missing_row else 0
            new = self._insert_new(snap, params, now)
            if counts:
                self._apply_staged_changes(now)
            # Every object of this bucket/prefix still present was in the snapshot just now.
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
                "INSERT INTO inventory_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [now, source, bucket, diff.rows, diff.new, diff.changed, diff.unchanged,
                 diff.missing, diff.reappeared, run_id],
            )
            con.execute("DROP TABLE inventory_changes")
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
        now = _now()
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
                    UPDATE media_objects SET status = 'missing', missing_since = $now
                    WHERE bucket = $bucket AND {PRESENT} AND list_contains($gone, key)
                    """,
                    {"now": now, "bucket": bucket, "gone": list(gone_keys)},
                ).fetchone()
                missing = int(gone_row[0]) if gone_row else 0
            pending = con.execute(
                f"""
                SELECT media_id, bucket, key, file_size, etag FROM {FILES}
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
                    "INSERT INTO inventory_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    def _stage_changes(self, snap: str, params: dict[str, Any], extra_filter: str = ""
                       ) -> dict[str, int]:
        """Known objects whose size, ETag, storage class or presence differ from ``snap``, into
        the temp table ``inventory_changes``; returns the count per kind."""
        known = (
            "(SELECT media_id, key, file_size, etag, status, storage_class, last_modified "
            "FROM media_objects WHERE bucket = $bucket)"
        )
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE inventory_changes AS
            SELECT m.media_id, i.version_id, i.size, i.etag, i.last_modified, i.storage_class,
                   CASE WHEN m.file_size <> i.size OR m.etag IS DISTINCT FROM i.etag
                             OR m.status = 'purged' THEN 'changed'
                        WHEN m.status = 'missing' THEN 'reappeared'
                        ELSE 'moved' END AS kind
            FROM {snap} i JOIN {known} m ON m.key = i.key
            WHERE (m.file_size <> i.size OR m.etag IS DISTINCT FROM i.etag
                   OR m.status IN ('missing', 'purged')
                   OR m.storage_class IS DISTINCT FROM i.storage_class)
              {extra_filter}
            """,
            params,
        )
        return {str(kind): int(n) for kind, n in self.con.execute(
            "SELECT kind, count(*) FROM inventory_changes GROUP BY kind").fetchall()}

    def _insert_new(self, snap: str, params: dict[str, Any], now: datetime) -> int:
        """Objects of ``snap`` the catalog does not know, inserted as pending."""
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
            FROM {snap} i
            WHERE NOT EXISTS (SELECT 1 FROM media_objects m
                              WHERE m.bucket = $bucket AND m.key = i.key)
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

    # -- fingerprints ------------------------------------------------------------------------

    def export_pending_fingerprints(self, path: Path, limit: int | None = None
                                    ) -> tuple[int, int]:
        """Write the pending list to Parquet (so the long fingerprint pass does not hold the
        catalog, nor millions of rows in memory); returns (objects, bytes)."""
        limit_sql = f"LIMIT {int(limit)}" if limit is not None else ""
        self.con.execute(
            f"""
            COPY (SELECT media_id::VARCHAR AS media_id, bucket, key, file_size, etag
                  FROM {FILES} WHERE status = 'pending' {ARCHIVED_FILTER}
                  ORDER BY bucket, key {limit_sql})
            TO '{_sql_string(path)}' (FORMAT parquet)
            """
        )
        row = self.con.execute(
            f"SELECT count(*), coalesce(sum(file_size), 0) FROM read_parquet('{_sql_string(path)}')"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def pending_fingerprints(self, limit: int | None = None) -> list[PendingObject]:
        """Objects that need a (new) fingerprint: new or changed since their last one."""
        sql = (
            f"SELECT media_id, bucket, key, file_size, etag FROM {FILES} "
            f"WHERE status = 'pending' {ARCHIVED_FILTER} ORDER BY bucket, key"
        )
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [
            PendingObject(
                media_id=str(r[0]), bucket=r[1], key=r[2], size=int(r[3]), etag=r[4] or ""
            )
            for r in self.con.execute(sql, params).fetchall()
        ]

    @retried
    def apply_fingerprints(self, fragments: Sequence[Path]) -> dict[str, int]:
        """Merge fingerprint fragments (Parquet, ``records.FINGERPRINT_COLUMNS``).

        A result only applies to the object version it read (matching ETag); an object that changed
        again meanwhile stays pending for the next run. Results with status ``error`` leave the
        object pending, to be retried.
        """
        if not fragments:
            return {"applied": 0, "active": 0, "quarantined": 0, "missing": 0, "errors": 0,
                    "public_closed": 0}
        now = _now()
        con = self.con
        files = [str(p) for p in fragments]
        with self.transaction():
            con.execute(
                "CREATE OR REPLACE TEMP TABLE fp AS "
                "SELECT * REPLACE (media_id::UUID AS media_id) "
                "FROM read_parquet(?, union_by_name = true)",
                [files],
            )
            con.execute(
                """
                UPDATE media_objects AS m SET
                    """ + _FINGERPRINT_SET + """,
                    -- quarantined files are private from then on (also if released later)
                    visibility = CASE WHEN f.status = 'quarantined' THEN 'private'
                                      ELSE m.visibility END,
                    fingerprinted_etag = f.etag, fingerprinted_at = ?,
                    -- new content: the AI findings were about the old one
                    ai_analyzed_at = CASE WHEN m.file_hash IS DISTINCT FROM f.file_hash
                                          THEN NULL ELSE m.ai_analyzed_at END
                FROM fp f
                WHERE m.media_id = f.media_id AND m.etag IS NOT DISTINCT FROM f.etag
                  AND m.status = 'pending' AND f.status IN ('active', 'quarantined')
                """,
                [now],
            )
            con.execute(
                """
                INSERT INTO audit_log
                SELECT ?, 'system', 'quarantine', f.media_id,
                       json_object('reason', f.quarantine_reason, 'key', m.key,
                                   'public_access',
                                   json_extract_string(f.metadata::JSON, '$.public_access')),
                       NULL
                FROM fp f JOIN media_objects m USING (media_id)
                WHERE f.status = 'quarantined' AND m.status = 'quarantined'
                  AND m.fingerprinted_at = ?
                """,
                [now, now],
            )
            public_closed = con.execute(
                "SELECT count(*) FROM fp WHERE status = 'quarantined' AND "
                "json_extract_string(metadata::JSON, '$.public_access') = 'closed'"
            ).fetchone()
            con.execute(
                """
                DELETE FROM media_tags WHERE source = 'ai' AND media_id IN (
                    SELECT media_id FROM media_objects WHERE ai_analyzed_at IS NULL)
                """
            )
            con.execute(
                """
                UPDATE media_objects SET ai_title = NULL, ai_generated_tags = NULL,
                    ai_extracted_text = NULL, ai_labels = NULL, ai_scores = NULL,
                    ai_backend = NULL
                WHERE ai_analyzed_at IS NULL AND ai_backend IS NOT NULL
                """
            )
            con.execute(
                """
                UPDATE media_objects AS m SET status = 'missing', missing_since = ?
                FROM fp f
                WHERE m.media_id = f.media_id AND f.status = 'missing' AND m.status = 'pending'
                  AND m.etag IS NOT DISTINCT FROM f.etag
                """,
                [now],
            )
            counts = dict(
                con.execute("SELECT status, count(*) FROM fp GROUP BY status").fetchall()
            )
            con.execute("DROP TABLE fp")
        return {
            "applied": int(sum(counts.values())),
            "active": int(counts.get("active", 0)),
            "quarantined": int(counts.get("quarantined", 0)),
            "missing": int(counts.get("missing", 0)),
            "errors": int(counts.get("error", 0)),
            "public_closed": int(public_closed[0]) if public_closed else 0,
        }

    # -- duplicates --------------------------------------------------------------------------

    @retried
    def rebuild_duplicate_groups(self) -> DuplicateStats:
        """Exact duplicates: files with the same (size, sha256); the canonical member is the one
        seen first (then the smallest key), the others are wasted bytes."""
        con = self.con
        with self.transaction():
            con.execute("DELETE FROM duplicate_groups")
            con.execute(
                f"""
                INSERT INTO duplicate_groups
                SELECT file_hash || ':' || file_size AS group_id, file_hash, file_size,
                       count(*) AS member_count,
                       arg_min(media_id, (first_seen, key)) AS canonical_media_id,
                       file_size * (count(*) - 1) AS wasted_bytes
                FROM media_objects
                WHERE file_hash IS NOT NULL AND {PRESENT} AND status <> 'pending'
                GROUP BY file_hash, file_size
                HAVING count(*) > 1
                """
            )
            row = con.execute(
                "SELECT count(*), coalesce(sum(member_count), 0), coalesce(sum(wasted_bytes), 0) "
                "FROM duplicate_groups"
            ).fetchone()
        assert row is not None
        return DuplicateStats(groups=int(row[0]), duplicate_files=int(row[1]),
                              wasted_bytes=int(row[2]))

    @retried
    def rebuild_near_duplicates(self, max_distance: int) -> int:
        """Near-duplicate image pairs by perceptual-hash Hamming distance, without all pairs.

        The 64-bit hash is cut into 4 bands of 16 bits. Two hashes within distance d differ in
        at most d // 4 bits in at least one band (pigeonhole), so joining each band against its
        variants with up to d // 4 flipped bits finds every pair; the exact distance is then
        checked. Pairs that are exact duplicates (same sha256) are left to duplicate_groups.
        """
        if not 0 <= max_distance <= MAX_NEAR_DISTANCE:
            raise CatalogError(
                f"near-duplicate distance must be between 0 and {MAX_NEAR_DISTANCE}")
        flips = max_distance // 4
        masks = [0]
        for n in range(1, flips + 1):
            masks += [sum(1 << b for b in bits) for bits in combinations(range(16), n)]
        con = self.con
        now = _now()
        with self.transaction():
            con.execute("CREATE OR REPLACE TEMP TABLE flip_masks (m UBIGINT)")
            con.executemany("INSERT INTO flip_masks VALUES (?)", [[m] for m in masks])
            # A perceptual hash shared by very many files is a degenerate one (blank, flat
            # images): pairing them all would be quadratic and says nothing.
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE ph AS
                SELECT media_id, phash, file_hash FROM media_objects
                WHERE phash IS NOT NULL AND {PRESENT} AND status <> 'pending'
                QUALIFY count(*) OVER (PARTITION BY phash) <= {DEGENERATE_PHASH_FILES}
                """
            )
            con.execute("DELETE FROM near_duplicates")
            con.execute(
                """
                INSERT INTO near_duplicates (media_id_a, media_id_b, distance, found_at, method,
                                             method_distance)
                WITH bands AS (
                    SELECT media_id, b AS band, (phash >> (16 * b)::UBIGINT) & 65535::UBIGINT AS v
                    FROM ph, range(4) t(b)
                ),
                probes AS (
                    SELECT media_id, band, xor(v, m) AS v FROM bands, flip_masks
                ),
                candidates AS (
                    SELECT DISTINCT p.media_id AS a, q.media_id AS b
                    FROM probes p JOIN bands q ON p.band = q.band AND p.v = q.v
                    WHERE p.media_id < q.media_id
                )
                SELECT c.a, c.b, bit_count(xor(x.phash, y.phash)) AS distance, ?, 'phash',
                       bit_count(xor(x.phash, y.phash))
                FROM candidates c
                JOIN ph x ON x.media_id = c.a
                JOIN ph y ON y.media_id = c.b
                WHERE bit_count(xor(x.phash, y.phash)) <= ?
                  AND x.file_hash IS DISTINCT FROM y.file_hash
                """,
                [now, max_distance],
            )
            row = con.execute("SELECT count(*) FROM near_duplicates").fetchone()
            con.execute("DROP TABLE ph")
            con.execute("DROP TABLE flip_masks")
        return int(row[0]) if row else 0

    # -- reads used by assets and checks -----------------------------------------------------

    def storage_usage(self) -> list[dict[str, Any]]:
        rows = self.con.execute(
            f"""
            SELECT namespace, coalesce(content_type, 'unknown') AS content_type,
                   count(*) AS files, sum(file_size) AS bytes
            FROM media_objects WHERE {PRESENT}
            GROUP BY ALL ORDER BY bytes DESC
            """
        ).fetchall()
        return [
            {"namespace": r[0], "content_type": r[1], "files": int(r[2]), "bytes": int(r[3])}
            for r in rows
        ]

    def accessibility_sample(self, size: int) -> list[tuple[str, str, str, str]]:
        """A random sample of objects believed present, plus every object marked missing."""
        size = int(size)  # DuckDB takes only a literal in SAMPLE
        rows = self.con.execute(
            f"""
            (SELECT media_id, bucket, key, status FROM {FILES} WHERE {PRESENT}
             USING SAMPLE reservoir({size} ROWS))
            UNION ALL
            (SELECT media_id, bucket, key, status FROM {FILES} WHERE status = 'missing')
            """
        ).fetchall()
        return [(str(r[0]), r[1], r[2], r[3]) for r in rows]

    def exposure_candidates(self, size: int, max_quarantined: int = 10_000
                            ) -> list[tuple[str, str, str]]:
        """(bucket, key, status) of objects that must not be public: every present quarantined
        one (up to ``max_quarantined``) and a random sample of the other non-public ones."""
        size = int(size)  # DuckDB takes only a literal in SAMPLE
        rows = self.con.execute(
            f"""
            (SELECT bucket, key, status FROM {FILES}
             WHERE status = 'quarantined' ORDER BY key LIMIT {int(max_quarantined)})
            UNION ALL
            (SELECT bucket, key, status FROM {FILES}
             WHERE {PRESENT} AND status <> 'quarantined' AND visibility <> 'public'
             USING SAMPLE reservoir({size} ROWS))
            """
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def totals(self) -> dict[str, Any]:
        row = self.con.execute(
            f"""
            SELECT count(*) FILTER (WHERE {PRESENT}),
                   coalesce(sum(file_size) FILTER (WHERE {PRESENT}), 0),
                   count(*) FILTER (WHERE status = 'missing'),
                   count(*) FILTER (WHERE status = 'quarantined'),
                   count(*) FILTER (WHERE status = 'pending')
            FROM {FILES}
            """
        ).fetchone()
        assert row is not None
        return {"objects": int(row[0]), "bytes": int(row[1]), "missing": int(row[2]),
                "quarantined": int(row[3]), "pending": int(row[4])}

    def summary(self, max_listed: int = 50) -> dict[str, Any]:
        """What the demo and `media-pipeline run` print: totals, types, duplicates, quarantine."""
        con = self.con
        types = con.execute(
            f"""
            SELECT coalesce(content_type, 'unknown'), count(*), sum(file_size)
            FROM media_objects WHERE {PRESENT} GROUP BY ALL ORDER BY 2 DESC
            """
        ).fetchall()
        dup = con.execute(
            "SELECT count(*), coalesce(sum(member_count), 0), coalesce(sum(wasted_bytes), 0) "
            "FROM duplicate_groups"
        ).fetchone()
        # Pairs whose files were purged since the last rebuild are gone from the bucket.
        near = con.execute(
            f"""
            SELECT count(*) FROM near_duplicates n
            JOIN media_objects a ON a.media_id = n.media_id_a AND a.{PRESENT}
            JOIN media_objects b ON b.media_id = n.media_id_b AND b.{PRESENT}
            """
        ).fetchone()
        quarantined = con.execute(
            f"SELECT key, quarantine_reason FROM {FILES} WHERE status = 'quarantined' "
            "ORDER BY key LIMIT ?",
            [max_listed],
        ).fetchall()
        near_examples = con.execute(
            """
            SELECT a.key, b.key, n.distance FROM near_duplicates n
            JOIN media_objects a ON a.media_id = n.media_id_a
            JOIN media_objects b ON b.media_id = n.media_id_b
            ORDER BY n.distance, a.key LIMIT 5
            """
        ).fetchall()
        ai = con.execute(
            """
            SELECT key, ai_title, ai_generated_tags::VARCHAR, ai_extracted_text
            FROM media_objects WHERE ai_analyzed_at IS NOT NULL
            ORDER BY ai_extracted_text IS NULL, content_type = 'application/pdf', key
            LIMIT 12
            """
        ).fetchall()
        ai_count = con.execute(
            "SELECT count(*) FROM media_objects WHERE ai_analyzed_at IS NOT NULL").fetchone()
        assert dup is not None and near is not None and ai_count is not None
        return {
            **self.totals(),
            "types": [{"content_type": t, "files": int(n), "bytes": int(b)} for t, n, b in types],
            "duplicate_groups": int(dup[0]),
            "duplicate_files": int(dup[1]),
            "wasted_bytes": int(dup[2]),
            "near_duplicate_pairs": int(near[0]),
            "near_duplicate_examples": [
                {"a": a, "b": b, "distance": int(d)} for a, b, d in near_examples
            ],
            "quarantined_files": [{"key": k, "reason": r} for k, r in quarantined],
            "ai_analysed_files": int(ai_count[0]),
            "ai_examples": [
                {"key": k, "title": t, "tags": json.loads(g) if g else [], "text": x}
                for k, t, g, x in ai
            ],
        }

    # -- AI analysis -------------------------------------------------------------------------

    def ai_work(
        self, key: tuple[str, str, str, str], content_types: Sequence[str], *, limit: int,
        media_ids: Sequence[str] | None = None, redo_before: datetime | None = None,
        run_started: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """One object per content hash still without a usable result for ``key`` (backend,
        model, version, params): duplicates are analysed once. Hashes that failed before are
        skipped unless asked for by media id."""
        backend, model, version, params = key
        sql = f"""
            SELECT file_hash, arg_min(media_id::VARCHAR, key) AS media_id,
                   arg_min(bucket, key) AS bucket, min(key) AS key,
                   any_value(content_type) AS content_type, any_value(file_size) AS file_size
            FROM {FILES} m
            WHERE status = 'active' AND file_hash IS NOT NULL
              AND list_contains($types, content_type)
              AND ($ids IS NULL OR list_contains($ids, media_id::VARCHAR))
              AND NOT EXISTS (
                  SELECT 1 FROM ai_results r
                  WHERE r.file_hash = m.file_hash AND r.backend = $backend AND r.model = $model
                    AND r.version = $version AND r.params = $params
                    -- a result made by this very run counts even if it has expired already
                    AND (r.expires_at IS NULL OR r.expires_at > now()
                         OR r.created_at >= $started::TIMESTAMPTZ)
                    AND ($redo::TIMESTAMPTZ IS NULL OR r.created_at >= $redo::TIMESTAMPTZ))
              -- a failure is retried after a day, or at once when asked for by id or redo
              AND ($ids IS NOT NULL OR $redo::TIMESTAMPTZ IS NOT NULL OR NOT EXISTS (
                  SELECT 1 FROM ai_failures f
                  WHERE f.file_hash = m.file_hash AND f.backend = $backend AND f.model = $model
                    AND f.version = $version AND f.failed_at > now() - INTERVAL 1 DAY))
            GROUP BY file_hash
            -- contents never analysed first, then the oldest results: expiring remote results
            -- must not starve new files
            ORDER BY (SELECT max(r.created_at) FROM ai_results r
                      WHERE r.file_hash = m.file_hash AND r.backend = $backend) NULLS FIRST,
                     min(first_seen), file_hash
            LIMIT {int(limit)}
        """
        cursor = self.con.execute(sql, {
            "types": list(content_types), "ids": list(media_ids) if media_ids else None,
            "backend": backend, "model": model, "version": version, "params": params,
            "redo": redo_before, "started": run_started,
        })
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    @retried
    def record_ai_outcomes(
        self, key: tuple[str, str, str, str], results: Sequence[tuple[str, str]],
        failures: Sequence[tuple[str, str]], expires_at: datetime | None,
    ) -> None:
        """Store raw results (file_hash, JSON) and failures (file_hash, error) for ``key``."""
        backend, model, version, params = key
        now = _now()
        with self.transaction():
            if results:
                self.con.executemany(
                    "DELETE FROM ai_results WHERE file_hash = ? AND backend = ? AND model = ? "
                    "AND version = ? AND params = ?",
                    [[h, backend, model, version, params] for h, _ in results],
                )
                self.con.executemany(
                    "INSERT INTO ai_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [[h, backend, model, version, params, doc, now, expires_at]
                     for h, doc in results],
                )
            if failures:
                self.con.executemany(
                    "INSERT INTO ai_failures VALUES (?, ?, ?, ?, ?, ?)",
                    [[h, backend, model, version, err, now] for h, err in failures],
                )

    def ai_results_to_apply(
        self, key: tuple[str, str, str, str], limit: int = 100_000
    ) -> list[tuple[str, str]]:
        """(file_hash, result JSON) for hashes with a current result that some present file
        does not show yet: just analysed, or a new duplicate of analysed content."""
        backend, model, version, params = key
        rows = self.con.execute(
            f"""
            SELECT r.file_hash, any_value(r.result)::VARCHAR
            FROM ai_results r JOIN {FILES} m ON m.file_hash = r.file_hash
            WHERE r.backend = ? AND r.model = ? AND r.version = ? AND r.params = ?
              AND (r.expires_at IS NULL OR r.expires_at > now())
              AND m.status IN ('active', 'quarantined', 'deleted')
              AND (m.ai_analyzed_at IS NULL OR m.ai_analyzed_at < r.created_at
                   OR m.ai_backend IS DISTINCT FROM r.backend)
            GROUP BY r.file_hash LIMIT {int(limit)}
            """,
            [backend, model, version, params],
        ).fetchall()
        return [(h, doc) for h, doc in rows]

    @retried
    def apply_ai(self, files: Sequence[dict[str, Any]], tags: Sequence[tuple[str, str, float, str]]
                 ) -> int:
        """Write ai_* columns for every file with these hashes and replace their AI tags.

        ``files``: file_hash, title, tags (JSON), text, labels (JSON), scores (JSON), backend.
        ``tags``: (file_hash, tag, confidence, detector), already thresholded. A manual tag of
        the same name on a file is never overwritten nor duplicated by an AI one.
        """
        if not files:
            return 0
        con = self.con
        now = _now()
        with self.transaction():
            con.execute(
                "CREATE OR REPLACE TEMP TABLE ai_apply (file_hash VARCHAR, title VARCHAR, "
                "tags VARCHAR, text VARCHAR, labels VARCHAR, scores VARCHAR, backend VARCHAR)"
            )
            con.executemany(
                "INSERT INTO ai_apply VALUES (?, ?, ?, ?, ?, ?, ?)",
                [[f["file_hash"], f["title"], f["tags"], f["text"], f["labels"], f["scores"],
                  f["backend"]] for f in files],
            )
            row = con.execute(
                f"""
                UPDATE media_objects AS m SET
                    ai_title = a.title, ai_generated_tags = a.tags::JSON,
                    ai_extracted_text = a.text, ai_labels = a.labels::JSON,
                    ai_scores = a.scores::JSON, ai_backend = a.backend, ai_analyzed_at = $now
                FROM ai_apply a
                WHERE m.file_hash = a.file_hash
                  AND (m.status IN ('active', 'quarantined')  -- what media_files calls
                       OR (m.status = 'pending' AND m.media_id IN {DELETED_IDS}))  -- 'deleted'
                """,
                {"now": now},
            ).fetchone()
            con.execute(
                """
                DELETE FROM media_tags WHERE source = 'ai' AND media_id IN (
                    SELECT m.media_id FROM media_objects m JOIN ai_apply a USING (file_hash))
                """
            )
            con.execute("CREATE OR REPLACE TEMP TABLE ai_tags "
                        "(file_hash VARCHAR, tag VARCHAR, confidence DOUBLE, detector VARCHAR)")
            if tags:
                con.executemany("INSERT INTO ai_tags VALUES (?, ?, ?, ?)",
                                [list(t) for t in tags])
            con.execute(
                f"""
                INSERT INTO media_tags
                SELECT m.media_id, t.tag, 'ai', t.confidence, t.detector, 'system', $now
                FROM ai_tags t JOIN {FILES} m USING (file_hash)
                WHERE m.status IN ('active', 'quarantined', 'deleted')
                  AND NOT EXISTS (SELECT 1 FROM media_tags x WHERE x.media_id = m.media_id
                                  AND x.source = 'manual' AND lower(x.tag) = lower(t.tag))
                """,
                {"now": now},
            )
            con.execute("DROP TABLE ai_apply")
            con.execute("DROP TABLE ai_tags")
        return int(row[0]) if row else 0

    # -- namespaces and roles -------------------------------------------------------------------

    def member_role(self, namespace: str, user: str) -> str | None:
        """The user's role in the namespace ('viewer', 'editor', 'admin'), or None."""
        rows = self.con.execute(  # all rows: a pending result keeps a transaction open
            "SELECT role FROM namespace_members WHERE namespace = ? AND user_id = ?",
            [namespace, user]).fetchall()
        return str(rows[0][0]) if rows else None

    def record_audit(
        self, actor: str, action: str, media_id: str | None = None,
        details: dict[str, Any] | None = None, run_id: str | None = None,
    ) -> None:
        self.con.execute(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)",
            [_now(), actor, action, media_id, json.dumps(details or {}), run_id],
        )


def ensure_schema(con: duckdb.DuckDBPyConnection, location: LakeLocation) -> int:
    """Apply the migrations a lake attached on ``con`` lacks (what ``Catalog.open`` does), for
    code that holds a raw lake connection; returns the schema version."""
    return Catalog(con, location).migrate()


def _sql_string(path: Path) -> str:
    """A path inside a single-quoted SQL literal (COPY takes no parameters)."""
    return str(path).replace("'", "''")


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already ended it
        con.execute("ROLLBACK")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
