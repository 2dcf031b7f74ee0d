"""What the store tests share: an object snapshot and a fingerprint fragment written as the
pipeline writes them, the catalog under a test's home, and the two-file catalog (``catalog``
fixture, catalog/conftest.py) whose derived ``media_files`` values the facts tests read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from media_pipeline.catalog import Catalog
from media_pipeline.catalog.lake import LakeLocation
from media_pipeline.records import media_id_for

BUCKET = "media"
T0 = datetime(2026, 9, 1, 12, tzinfo=UTC)
# media_files' columns derived from facts and the reference index
DERIVED = ("status", "reference_count", "referenced_in", "is_deleted", "deleted_at",
           "deleted_by", "unreferenced_since")
A = media_id_for(BUCKET, "blog/a.jpg")
B = media_id_for(BUCKET, "blog/b.jpg")


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


@contextmanager
def two_files(folder: Path) -> Iterator[Catalog]:
    """A catalog under ``folder`` with two active files of namespace blog, A and B, seen at
    T0 and never referenced."""
    with Catalog.open(LakeLocation.embedded(folder)) as c:
        for media_id, key in ((A, "blog/a.jpg"), (B, "blog/b.jpg")):
            c.con.execute(
                "INSERT INTO media_objects (media_id, namespace, bucket, key, file_size, etag, "
                "status, fingerprinted_etag, first_seen, last_seen) "
                "VALUES (?, 'blog', ?, ?, 10, 'e', 'active', 'e', ?, ?)",
                [media_id, BUCKET, key, T0, T0])
        yield c


def derived(c: Catalog, media_id: str) -> dict[str, Any]:
    """The file's DERIVED columns as media_files shows them now."""
    cursor = c.con.execute(f"SELECT {', '.join(DERIVED)} FROM media_files WHERE media_id = ?",
                           [media_id])
    return dict(zip(DERIVED, cursor.fetchall()[0], strict=True))
