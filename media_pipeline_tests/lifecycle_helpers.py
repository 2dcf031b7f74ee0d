"""Helpers for the reference-index, lifecycle and purge tests: a real catalog over real objects.

Files are uploaded to the moto server, listed by the inventory stage and fingerprinted, exactly
as the pipeline does; scans are Parquet fragments in the scan engine's format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from media_pipeline.catalog import Catalog
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline.stages import (
    commit_inventory,
    fingerprint_pending,
    take_inventory,
)

EDITOR = "erin"
VIEWER = "vic"
ADMIN = "ada"
FRAGMENT_SCHEMA = pa.schema([(name, pa.string()) for name in
                             ("content_type", "content_id", "bucket", "key", "media_id", "form")])


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a CLI test on ``settings``: its catalog and bucket, ADMIN as the global
    admin, purges possible at once (no retention, no share cap), no sources unless in ``extra``."""
    return {
        "MEDIA_PIPELINE_HOME": str(settings.home),
        "AWS_S3_ENDPOINT_URL": settings.endpoint_url or "",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_STORAGE_BUCKET_NAME": settings.bucket,
        "MEDIA_PIPELINE_ADMINS": ADMIN,
        "MEDIA_PIPELINE_RETENTION_DAYS": "0",
        "MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS": "0",
        "MEDIA_PIPELINE_PURGE_MAX_SHARE": "1",
        "MEDIA_PIPELINE_SOURCES": "",
        **extra,
    }


def catalog_files(settings: Settings, client: Any, keys: Iterable[str], *,
                  fingerprint: bool = True) -> dict[str, str]:
    """Upload a small text file per key, inventory and (unless told not to) fingerprint them,
    which makes them active: key -> media id."""
    ids = {}
    for key in keys:
        client.put_object(Bucket=settings.bucket, Key=key, Body=f"content of {key}\n".encode(),
                          ContentType="text/plain")
        ids[key] = media_id_for(settings.bucket, key)
    take_inventory(settings, client)
    commit_inventory(settings)
    if fingerprint:
        fingerprint_pending(settings, client)
    return ids


def add_member(settings: Settings, namespace: str, user: str, role: str) -> None:
    # Test setup only: the application API (another module) manages members.
    with Catalog.open(settings.catalog_location) as catalog:
        catalog.application.upsert_member(namespace, user, role, "test")


def write_fragment(path: Path, rows: Sequence[dict[str, str | None]]) -> Path:
    """A scan fragment: rows of content_type, content_id and bucket+key or media_id."""
    columns: dict[str, list[str | None]] = {name: [] for name in FRAGMENT_SCHEMA.names}
    for row in rows:
        bucket, key = row.get("bucket"), row.get("key")
        media_id = row.get("media_id") or (media_id_for(bucket, key) if bucket and key else None)
        values = {**row, "media_id": media_id, "form": row.get("form", "public_url")}
        for name in columns:
            columns[name].append(values.get(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=FRAGMENT_SCHEMA), path)
    return path


def key_ref(settings: Settings, content_type: str, content_id: str, key: str
            ) -> dict[str, str | None]:
    return {"content_type": content_type, "content_id": content_id, "bucket": settings.bucket,
            "key": key}


def scan(settings: Settings, source: str, rows: Sequence[dict[str, str | None]],
         started: datetime | None = None, tmp: Path | None = None, *,
         accepted_by: str | None = None, documents: int | None = None) -> dict[str, Any]:
    """Replace ``source``'s scanned references with ``rows`` (a scan that completed; the drift
    guard may find it suspect unless ``accepted_by`` accepts it)."""
    started = started or datetime.now(UTC)
    folder = tmp or settings.work_dir / "test-fragments"
    fragment = write_fragment(folder / f"{source}-{started.timestamp()}.parquet", rows)
    with Catalog.open(settings.catalog_location) as catalog:
        return catalog.references.replace_source_references(
            source, [fragment], started, started + timedelta(seconds=1),
            {"documents": len(rows) if documents is None else documents},
            accepted_by=accepted_by)


def row(settings: Settings, media_id: str) -> dict[str, Any]:
    with Catalog.open(settings.catalog_location) as catalog:
        state = catalog.lifecycle.media_state(media_id)
    assert state is not None
    return state


def audit(settings: Settings, action: str | None = None) -> list[dict[str, Any]]:
    # Test inspection of the append-only audit log.
    with Catalog.open(settings.catalog_location) as catalog:
        cursor = catalog.con.execute(
            "SELECT ts, actor, action, media_id::VARCHAR, details::VARCHAR, run_id "
            "FROM audit_log WHERE $a IS NULL OR action = $a ORDER BY ts",
            {"a": action})
        return [dict(zip(["ts", "actor", "action", "media_id", "details", "run_id"], r,
                         strict=True)) for r in cursor.fetchall()]


def object_keys(client: Any, settings: Settings) -> set[str]:
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys
