"""Reads for the health checks, the demo's summary and the HTML report: totals, storage usage,
samples to check against the bucket, quarantined files."""

from __future__ import annotations

import json
from typing import Any

from media_pipeline.catalog.sql import FILE_STATE, PRESENT
from media_pipeline.catalog.store import Store

__all__ = ["ReportStore"]


class ReportStore(Store):
    """``catalog.reports``: read-only summaries over the whole catalog."""

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
            (SELECT media_id, bucket, key, status FROM {FILE_STATE} WHERE {PRESENT}
             USING SAMPLE reservoir({size} ROWS))
            UNION ALL
            (SELECT media_id, bucket, key, status FROM {FILE_STATE} WHERE status = 'missing')
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
            (SELECT bucket, key, status FROM {FILE_STATE}
             WHERE status = 'quarantined' ORDER BY key LIMIT {int(max_quarantined)})
            UNION ALL
            (SELECT bucket, key, status FROM {FILE_STATE}
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
            FROM {FILE_STATE}
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
            f"SELECT key, quarantine_reason FROM {FILE_STATE} WHERE status = 'quarantined' "
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

    def quarantined_files(self, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.con.execute(
            """
            SELECT media_id::VARCHAR, namespace, key, file_size, content_type, quarantine_reason
            FROM media_files m WHERE status = 'quarantined'
            ORDER BY namespace, key LIMIT $limit
            """,
            {"limit": limit},
        ).fetchall()
        return [dict(zip(("media_id", "namespace", "key", "file_size", "content_type",
                          "reason"), r, strict=True)) for r in rows]
