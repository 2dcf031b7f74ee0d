"""A lake with the catalog's tables, and a file purged on it by the catalog's own SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb

from media_pipeline.catalog import Catalog, lake
from media_pipeline.catalog.catalog import ensure_schema
from media_pipeline.catalog.lake import LakeLocation

MEDIA_ID = "11111111-2222-3333-4444-555555555555"
KEY = "blog/old-banner.jpg"
NOW = datetime.now(UTC)
DELETED_AT = NOW - timedelta(days=40)


def lake_catalog(location: LakeLocation) -> tuple[duckdb.DuckDBPyConnection, Catalog]:
    """A connection to a lake with the schema, and the catalog's SQL over it."""
    con = lake.connect(location)
    ensure_schema(con, location)
    return con, Catalog(con, location)


def deleted_file(catalog: Catalog) -> None:
    """One file, referenced once, unreferenced, deleted by alice 40 days ago; the one content
    source scanned (trusted) after that."""
    con = catalog.con
    con.execute(
        "INSERT INTO media_objects (media_id, namespace, bucket, key, file_size, etag, status, "
        "first_seen, last_seen) VALUES (?, 'blog', 'media', ?, 2048, 'e1', 'active', ?, ?)",
        [MEDIA_ID, KEY, DELETED_AT - timedelta(days=5), NOW])
    outcome, _ = catalog.lifecycle.soft_delete(MEDIA_ID, "alice", allow_referenced=False,
                                               now=DELETED_AT)
    assert outcome == "deleted"
    con.execute("INSERT INTO source_scans (source, started, finished, ok, documents, refs, "
                "state, trusted) VALUES ('cms', ?, ?, true, 120, 340, 'trusted', true)",
                [DELETED_AT + timedelta(days=1), DELETED_AT + timedelta(days=1, minutes=2)])


def purge_it(catalog: Catalog, purge_id: str) -> None:
    """Mark (the decision), then the batch's re-check and S3's answer, as lifecycle/purge.py
    does."""
    count, _, _ = catalog.lifecycle.start_purge_run(
        purge_id, NOW, retention_days=30, versions="marker", sources=["cms"],
        cutoff=NOW - timedelta(days=30), horizon=DELETED_AT + timedelta(days=1),
        batch_size=100)
    assert count == 1


def finish_purge(catalog: Catalog, purge_id: str) -> None:
    marks = catalog.lifecycle.recheck_purge_batch(purge_id, 0, NOW - timedelta(days=30),
                                                  DELETED_AT + timedelta(days=1))
    assert [str(m["media_id"]) for m in marks] == [MEDIA_ID]
    assert catalog.lifecycle.finish_purge_marks([(purge_id, MEDIA_ID, "purged", None)], NOW,
                                                "marker") == 1
    catalog.lifecycle.finish_purge_run(purge_id, "done", 1, 2048, [], None)
