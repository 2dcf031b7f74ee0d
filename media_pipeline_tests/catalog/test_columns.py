"""The media_files column lists that are derived, and the ones still kept by hand, agree with
the table the migrations create."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from media_pipeline.catalog import Catalog
from media_pipeline.catalog.application import MEDIA_COLUMNS
from media_pipeline.fingerprint.reader import CONTENT_COLUMNS, VALIDATION_FACTS
from media_pipeline.library import MediaFile
from media_pipeline.records import STORED_FINGERPRINT_COLUMNS, FingerprintResult


def media_files_columns(tmp_path: Path) -> set[str]:
    with Catalog.open(tmp_path / "catalog.duckdb") as catalog:
        rows = catalog.con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'media_files'").fetchall()
    return {name for (name,) in rows}


def test_every_stored_fingerprint_field_is_a_media_files_column(tmp_path: Path) -> None:
    columns = media_files_columns(tmp_path)
    assert set(STORED_FINGERPRINT_COLUMNS) <= columns
    assert set(MEDIA_COLUMNS) <= columns
    # What the reader copies from the content inspection reaches the catalog.
    assert set(CONTENT_COLUMNS) <= set(STORED_FINGERPRINT_COLUMNS)
    assert {"width", "height", "page_count", "phash", "metadata"} <= set(CONTENT_COLUMNS)
    assert "status" in STORED_FINGERPRINT_COLUMNS and "error" not in STORED_FINGERPRINT_COLUMNS
    assert set(STORED_FINGERPRINT_COLUMNS) < set(FingerprintResult.__dataclass_fields__)


def test_media_file_has_exactly_the_columns_the_catalog_hands_out() -> None:
    # Kept by hand in two places until MediaFile moves out of library.py (see ARCHITECTURE.md).
    assert tuple(f.name for f in fields(MediaFile) if f.name != "deduplicated") == MEDIA_COLUMNS


def test_the_reader_gives_validation_every_fact_it_takes() -> None:
    assert set(VALIDATION_FACTS) == {"pixels", "decode_error", "svg", "frames", "decode_bytes",
                                     "trailing", "pdf_active"}
