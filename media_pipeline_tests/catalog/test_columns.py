"""The media_files column lists are derived from the records, and agree with the table the
migrations create: a new column is a migration plus the fields that carry it, nothing kept by
hand in between."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

import media_pipeline
from media_pipeline import library
from media_pipeline.catalog import Catalog
from media_pipeline.catalog.application import MEDIA_COLUMNS
from media_pipeline.fingerprint.metadata import CONTENT_COLUMNS, VALIDATION_FACTS, ContentInfo
from media_pipeline.fingerprint.validate import validate
from media_pipeline.records import (
    MEDIA_FILE_COLUMNS,
    STORED_FINGERPRINT_COLUMNS,
    FingerprintResult,
    MediaFile,
)


@pytest.fixture(scope="module")
def columns(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    path = tmp_path_factory.mktemp("columns") / "catalog.duckdb"
    with Catalog.open(path) as catalog:
        rows = catalog.con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'media_files'").fetchall()
    return {name for (name,) in rows}


def test_every_stored_fingerprint_field_is_a_media_files_column(columns: set[str]) -> None:
    assert set(STORED_FINGERPRINT_COLUMNS) <= columns
    # What the reader copies from the content inspection reaches the catalog.
    assert set(CONTENT_COLUMNS) <= set(STORED_FINGERPRINT_COLUMNS)
    assert {"width", "height", "page_count", "phash", "metadata"} <= set(CONTENT_COLUMNS)
    assert "status" in STORED_FINGERPRINT_COLUMNS and "error" not in STORED_FINGERPRINT_COLUMNS
    assert set(STORED_FINGERPRINT_COLUMNS) < set(FingerprintResult.__dataclass_fields__)


def test_media_file_is_read_from_exactly_its_columns(columns: set[str]) -> None:
    names = tuple(f.name for f in fields(MediaFile))
    # Derived, not kept by hand: every field but the upload's flag, in field order.
    assert MEDIA_COLUMNS == MEDIA_FILE_COLUMNS == tuple(n for n in names if n != "deduplicated")
    assert set(MEDIA_COLUMNS) <= columns
    # A fact the content inspection stores is handed out too.
    assert set(CONTENT_COLUMNS) <= set(MEDIA_COLUMNS)


def test_media_file_is_the_same_class_everywhere_it_is_exported() -> None:
    assert library.MediaFile is MediaFile and media_pipeline.MediaFile is MediaFile


def test_the_upload_and_the_reader_store_the_same_content_facts() -> None:
    info = ContentInfo(width=2, height=1, page_count=None, phash=5, metadata={"a": "b"},
                       pixels=2)
    # Both copy ContentInfo.columns() into their row (test_library checks an upload's facts).
    assert tuple(info.columns()) == CONTENT_COLUMNS
    assert info.columns()["metadata"] == {"a": "b"} and info.columns()["metadata"] is not \
        info.metadata


def test_the_reader_gives_validation_every_fact_it_takes() -> None:
    assert set(VALIDATION_FACTS) == {"pixels", "decode_error", "svg", "frames", "decode_bytes",
                                     "trailing", "pdf_active"}
    assert set(VALIDATION_FACTS) <= set(inspect.signature(validate).parameters)
    assert tuple(ContentInfo().validation_facts()) == VALIDATION_FACTS
