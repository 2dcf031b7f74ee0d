"""What the store tests share: an object snapshot and a fingerprint fragment written as the
pipeline writes them, and the catalog under a test's home."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from media_pipeline.catalog import Catalog

BUCKET = "media"


def write_snapshot(path: Path, objects: list[tuple[str, int, str]], bucket: str = BUCKET) -> Path:
    """An object snapshot Parquet with the inventory contract's columns."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE s (bucket VARCHAR, key VARCHAR, version_id VARCHAR, size BIGINT, "
        "etag VARCHAR, last_modified TIMESTAMPTZ, storage_class VARCHAR)"
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    if objects:
        con.executemany(
            "INSERT INTO s VALUES (?, ?, NULL, ?, ?, ?, 'STANDARD')",
            [[bucket, k, size, etag, now] for k, size, etag in objects],
        )
    con.execute(f"COPY s TO '{path}' (FORMAT parquet)")
    con.close()
    return path


def open_catalog(home: Path) -> AbstractContextManager[Catalog]:
    return Catalog.open(home)


def statuses(home: Path) -> dict[str, str]:
    with open_catalog(home) as c:
        return dict(c.con.execute("SELECT key, status FROM media_files").fetchall())


def fingerprint_fragment(path: Path, rows: list[dict[str, object]]) -> Path:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE f (media_id VARCHAR, etag VARCHAR, status VARCHAR, file_hash VARCHAR, "
        "hash_source VARCHAR, content_type VARCHAR, declared_content_type VARCHAR, "
        "phash UBIGINT, width BIGINT, height BIGINT, page_count BIGINT, metadata VARCHAR, "
        "quarantine_reason VARCHAR, bytes_read BIGINT, error VARCHAR)"
    )
    for r in rows:
        con.execute(
            "INSERT INTO f VALUES (?, ?, ?, ?, 'computed', 'image/png', 'image/png', ?, 1, 1, "
            "NULL, ?, ?, 1, NULL)",
            [r["media_id"], r["etag"], r.get("status", "active"), r.get("file_hash"),
             r.get("phash"), json.dumps({"format": "PNG"}), r.get("reason")],
        )
    con.execute(f"COPY f TO '{path}' (FORMAT parquet)")
    con.close()
    return path
