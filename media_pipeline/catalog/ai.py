"""AI analysis: the work list (one object per content hash), raw results and failures per
backend/model/version/params, and the ``ai_*`` columns and AI tags written from them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from media_pipeline.catalog.retry import retried
from media_pipeline.catalog.sql import DELETED_IDS, FILE_STATE, utc_now
from media_pipeline.catalog.store import Store

__all__ = ["AIStore"]


class AIStore(Store):
    """``catalog.ai``: AI work, results and what they write to the files."""

    def ai_work(
        self, key: tuple[str, str, str, str], content_types: Sequence[str], *, limit: int,
        media_ids: Sequence[str] | None = None, redo_before: datetime | None = None,
        run_started: datetime | None = None, shard: str | None = None,
    ) -> list[dict[str, Any]]:
        """One object per content hash still without a usable result for ``key`` (backend,
        model, version, params): duplicates are analysed once. Hashes that failed before are
        skipped unless asked for by media id. ``shard``: only hashes starting with that hex
        digit."""
        backend, model, version, params = key
        sql = f"""
            SELECT file_hash, arg_min(media_id::VARCHAR, key) AS media_id,
                   arg_min(bucket, key) AS bucket, min(key) AS key,
                   any_value(content_type) AS content_type, any_value(file_size) AS file_size
            FROM {FILE_STATE} m
            WHERE status = 'active' AND file_hash IS NOT NULL
              AND list_contains($types, content_type)
              AND ($ids IS NULL OR list_contains($ids, media_id::VARCHAR))
              AND ($shard IS NULL OR left(file_hash, 1) = $shard)
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
            "redo": redo_before, "started": run_started, "shard": shard,
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
        now = utc_now()
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
            FROM ai_results r JOIN {FILE_STATE} m ON m.file_hash = r.file_hash
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
        now = utc_now()
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
                FROM ai_tags t JOIN {FILE_STATE} m USING (file_hash)
                WHERE m.status IN ('active', 'quarantined', 'deleted')
                  AND NOT EXISTS (SELECT 1 FROM media_tags x WHERE x.media_id = m.media_id
                                  AND x.source = 'manual' AND lower(x.tag) = lower(t.tag))
                """,
                {"now": now},
            )
            con.execute("DROP TABLE ai_apply")
            con.execute("DROP TABLE ai_tags")
        return int(row[0]) if row else 0
