"""catalog.application on a real lake: what the library writes reads back as it hands it
out."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from media_pipeline.catalog import Catalog
from media_pipeline.catalog.application import MEDIA_COLUMNS
from media_pipeline.records import MediaFile


def test_a_catalog_row_reads_back_as_every_media_file_field(tmp_path: Path) -> None:
    # One registered row, read as the library reads it: every column comes back.
    row = {"media_id": "00000000-0000-0000-0000-000000000001", "namespace": "ns",
           "bucket": "b", "key": "ns/a.png", "original_filename": "a.png",
           "content_type": "image/png", "file_size": 3, "file_hash": "h", "status": "active",
           "visibility": "private", "owner": "ed", "etag": "e", "width": 2, "height": 1,
           "page_count": None, "phash": 5, "metadata": {"format": "PNG"},
           "first_seen": datetime(2026, 1, 1, tzinfo=UTC),
           "last_seen": datetime(2026, 1, 1, tzinfo=UTC)}
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        catalog.application.register_upload(row)
        read = catalog.application.media_row(row["media_id"])
    assert read is not None and tuple(read) == MEDIA_COLUMNS
    media = MediaFile.from_row(read)
    assert (media.width, media.height, media.phash, media.metadata) == (2, 1, 5, {"format": "PNG"})


def test_a_role_read_with_a_file_answers_until_the_membership_changes(tmp_path: Path) -> None:
    row = {"media_id": "00000000-0000-0000-0000-000000000002", "namespace": "ns",
           "bucket": "b", "key": "ns/b.png", "file_size": 3, "status": "active",
           "visibility": "private", "owner": "ed",
           "first_seen": datetime(2026, 1, 1, tzinfo=UTC),
           "last_seen": datetime(2026, 1, 1, tzinfo=UTC)}
    with Catalog.open(tmp_path) as catalog:
        catalog.application.insert_namespace("ns", "private", "ann")
        catalog.application.upsert_member("ns", "ed", "editor", "ann")
        catalog.application.register_upload(row)
        context = catalog.lifecycle.file_context(row["media_id"], "ed")
        assert context is not None and context["role"] == "editor"
        assert catalog.roles == {("ns", "ed"): "editor"}
        # Removed in this session: the remembered role goes with it.
        catalog.application.delete_member("ns", "ed")
        assert catalog.roles == {}
        assert catalog.application.member_role("ns", "ed") is None
        # A transaction starts from what the catalog says, not from an earlier read.
        catalog.application.upsert_member("ns", "ed", "viewer", "ann")
        catalog.lifecycle.file_context(row["media_id"], "ed")
        with catalog.transaction():
            assert catalog.roles == {}
            assert catalog.application.member_role("ns", "ed") == "viewer"
