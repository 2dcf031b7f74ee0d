"""Fingerprints: the list of objects waiting for one, and merging the fingerprint fragments
(Parquet, written outside the catalog) into ``media_files``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from media_pipeline.catalog.retry import retried
from media_pipeline.catalog.sql import (
    ARCHIVED_FILTER,
    FILE_STATE,
    keep_listed_last_seen,
    sql_string,
    utc_now,
)
from media_pipeline.catalog.store import Store
from media_pipeline.records import STORED_FINGERPRINT_COLUMNS, FingerprintResult, PendingObject

__all__ = ["FingerprintStore"]

# The committer copies each stored fingerprint column (records.py); dicts are JSON columns.
_FINGERPRINT_SET = ", ".join(
    f"{c} = f.{c}::JSON" if str(FingerprintResult.__dataclass_fields__[c].type).startswith("dict")
    else f"{c} = f.{c}" for c in STORED_FINGERPRINT_COLUMNS)


class FingerprintStore(Store):
    """``catalog.fingerprints``: what waits for a fingerprint, and the committer."""

    def export_pending_fingerprints(self, path: Path, limit: int | None = None,
                                    shard: str | None = None) -> tuple[int, int]:
        """Write the pending list to Parquet (so the long fingerprint pass does not hold the
        catalog, nor millions of rows in memory); returns (objects, bytes). ``shard``: only
        the media ids starting with that hex digit."""
        limit_sql = f"LIMIT {int(limit)}" if limit is not None else ""
        shard_sql = ""
        if shard is not None:
            if len(shard) != 1 or shard not in "0123456789abcdef":
                raise ValueError(f"a shard is one lower-case hex digit, got {shard!r}")
            shard_sql = f"AND left(media_id::VARCHAR, 1) = '{shard}'"
        self.con.execute(
            f"""
            COPY (SELECT media_id::VARCHAR AS media_id, bucket, key, file_size, etag
                  FROM {FILE_STATE} WHERE status = 'pending' {ARCHIVED_FILTER} {shard_sql}
                  ORDER BY bucket, key {limit_sql})
            TO '{sql_string(path)}' (FORMAT parquet)
            """
        )
        row = self.con.execute(
            f"SELECT count(*), coalesce(sum(file_size), 0) FROM read_parquet('{sql_string(path)}')"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def pending_fingerprints(self, limit: int | None = None) -> list[PendingObject]:
        """Objects that need a (new) fingerprint: new or changed since their last one."""
        sql = (
            f"SELECT media_id, bucket, key, file_size, etag FROM {FILE_STATE} "
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
        now = utc_now()
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
                f"""
                UPDATE media_objects AS m SET status = 'missing', missing_since = ?,
                    {keep_listed_last_seen("m")}
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
