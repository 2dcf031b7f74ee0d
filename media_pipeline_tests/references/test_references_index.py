"""The reference index: scanned and API references side by side, derived counters, scans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from media_pipeline.catalog import Catalog
from media_pipeline.catalog.application import ApplicationStore
from media_pipeline.lifecycle import add_reference, references, remove_reference
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline_tests.lifecycle_helpers import (
    ADMIN,
    catalog_files,
    key_ref,
    row,
    scan,
    write_fragment,
)


@pytest.fixture
def files(settings: Settings, s3_client: Any) -> dict[str, str]:
    return catalog_files(settings, s3_client, ["blog/a.txt", "blog/b.txt", "shop/c.txt"])


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    from dataclasses import replace
    return replace(settings, admins=frozenset({ADMIN}))


def test_scan_and_api_references_side_by_side(admin_settings: Settings,
                                               files: dict[str, str]) -> None:
    s = admin_settings
    a = files["blog/a.txt"]
    scan(s, "cms", [key_ref(s, "webpage", "456", "blog/a.txt"),
                    key_ref(s, "webpage", "123", "blog/a.txt"),
                    key_ref(s, "blog_post", "789", "blog/a.txt")])
    with Catalog.open(s.catalog_location) as catalog:
        assert add_reference(catalog, s, a, "webpage", "123", ADMIN)  # also scanned: one ref
        assert add_reference(catalog, s, a, "newsletter", "9", ADMIN)
        assert not add_reference(catalog, s, a, "newsletter", "9", ADMIN)  # idempotent
        assert references(catalog, s, a, ADMIN) == {"blog_post": ["789"], "newsletter": ["9"],
                                                    "webpage": ["123", "456"]}
        origins = {(r["content_id"], r["origin"]) for r in catalog.references.reference_rows(a)}
        assert ("123", "scan") in origins and ("123", "api") in origins
        assert catalog.references.catalog_inconsistencies() == []
    state = row(s, a)
    assert state["reference_count"] == 4
    with Catalog.open(s.catalog_location) as catalog:
        referenced_in = catalog.con.execute(
            "SELECT referenced_in::VARCHAR FROM media_files WHERE media_id = ?", [a]).fetchone()
    assert referenced_in == ('{"blog_post":["789"],"newsletter":["9"],"webpage":["123","456"]}',)

    # Removing the API row of a reference the scan also found keeps the reference.
    with Catalog.open(s.catalog_location) as catalog:
        assert remove_reference(catalog, s, a, "webpage", "123", ADMIN)
        assert not remove_reference(catalog, s, a, "webpage", "123", ADMIN)
        assert references(catalog, s, a, ADMIN)["webpage"] == ["123", "456"]
        assert catalog.references.catalog_inconsistencies() == []
    assert row(s, a)["reference_count"] == 4  # the scan still finds webpage 123


def test_rescan_replaces_only_that_source_and_keeps_first_seen(
        settings: Settings, files: dict[str, str]) -> None:
    a, b = files["blog/a.txt"], files["blog/b.txt"]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/a.txt"),
                           key_ref(settings, "webpage", "2", "blog/b.txt")], started=t0)
    scan(settings, "docs", [key_ref(settings, "doc", "x", "blog/b.txt")], started=t0)
    result = scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/a.txt"),
                                    key_ref(settings, "webpage", "3", "blog/a.txt")],
                  started=t0 + timedelta(days=1))
    assert result["added"] == 1 and result["removed"] == 1 and result["refs"] == 2
    with Catalog.open(settings.catalog_location) as catalog:
        rows = {(r["content_id"], r["source"]): r for r in catalog.references.reference_rows(a)}
        assert rows[("1", "cms")]["first_seen"] == t0
        assert rows[("3", "cms")]["first_seen"] == t0 + timedelta(days=1)
        # the other source's row stayed
        assert catalog.references.references_of(b) == {"doc": ["x"]}
        assert catalog.references.catalog_inconsistencies() == []
    assert row(settings, a)["reference_count"] == 2
    assert row(settings, b)["reference_count"] == 1


def test_unreferenced_since_is_when_the_count_dropped_to_zero(
        settings: Settings, files: dict[str, str]) -> None:
    a = files["blog/a.txt"]
    assert row(settings, a)["unreferenced_since"] is None
    scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/a.txt")])
    assert row(settings, a)["unreferenced_since"] is None
    dropped = datetime(2026, 3, 1, tzinfo=UTC)
    # every reference gone is a drop the drift guard holds back until someone accepts it
    assert scan(settings, "cms", [], started=dropped - timedelta(seconds=2))["state"] == "suspect"
    assert row(settings, a)["reference_count"] == 1
    scan(settings, "cms", [], started=dropped - timedelta(seconds=1), accepted_by=ADMIN)
    assert row(settings, a)["unreferenced_since"] == dropped
    assert row(settings, a)["reference_count"] == 0


def test_references_by_media_id_and_dangling_ones(settings: Settings,
                                                   files: dict[str, str]) -> None:
    c = files["shop/c.txt"]
    ghost = media_id_for(settings.bucket, "blog/never-uploaded.jpg")
    result = scan(settings, "cms", [
        {"content_type": "webpage", "content_id": "7", "media_id": c.upper()},
        {"content_type": "webpage", "content_id": "7", "media_id": "not-a-uuid"},
        key_ref(settings, "webpage", "8", "blog/never-uploaded.jpg"),
    ])
    assert result["invalid"] == 1 and result["refs"] == 2
    with Catalog.open(settings.catalog_location) as catalog:
        assert catalog.references.references_of(c) == {"webpage": ["7"]}
        dangling = catalog.references.dangling_references()
    assert [(d["media_id"], d["key"]) for d in dangling] == [(ghost, "blog/never-uploaded.jpg")]


def test_a_key_reference_gets_the_media_id_of_its_key(settings: Settings,
                                                      files: dict[str, str]) -> None:
    wrong = str(uuid.uuid4())
    scan(settings, "cms", [{"content_type": "webpage", "content_id": "1",
                            "bucket": settings.bucket, "key": "blog/a.txt", "media_id": wrong}])
    with Catalog.open(settings.catalog_location) as catalog:
        assert catalog.references.references_of(files["blog/a.txt"]) == {"webpage": ["1"]}
        assert catalog.references.references_of(wrong) == {}


def test_references_to_missing_files_are_reported(settings: Settings, s3_client: Any,
                                                  files: dict[str, str]) -> None:
    from media_pipeline.stages import commit_inventory, take_inventory

    scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/a.txt")])
    s3_client.delete_object(Bucket=settings.bucket, Key="blog/a.txt")
    take_inventory(settings, s3_client)
    commit_inventory(settings)
    with Catalog.open(settings.catalog_location) as catalog:
        gone = catalog.references.references_to_gone_files()
    assert [(g["key"], g["status"]) for g in gone] == [("blog/a.txt", "missing")]


def test_a_key_referenced_before_it_existed_is_counted_when_the_inventory_finds_it(
        settings: Settings, s3_client: Any, files: dict[str, str]) -> None:
    from media_pipeline.stages import commit_inventory, take_inventory

    # Content referred to a key before the object existed; then the inventory found it.
    scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/late.txt")])
    s3_client.put_object(Bucket=settings.bucket, Key="blog/late.txt", Body=b"late")
    take_inventory(settings, s3_client)
    commit_inventory(settings)
    late = media_id_for(settings.bucket, "blog/late.txt")
    assert row(settings, late)["reference_count"] == 1
    with Catalog.open(settings.catalog_location) as catalog:
        assert catalog.references.references_of(late) == {"webpage": ["1"]}
        assert catalog.references.catalog_inconsistencies() == []


def test_consistency_query_finds_a_duplicated_row_and_orphan_deletion_facts(
        settings: Settings, files: dict[str, str]) -> None:
    a = files["blog/a.txt"]
    scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/a.txt")])
    stranger = "00000000-0000-0000-0000-000000000001"
    with Catalog.open(settings.catalog_location) as catalog:
        assert catalog.references.catalog_inconsistencies() == []
        # What a bug or a hand edit could leave (test-only SQL).
        catalog.con.execute("INSERT INTO media_objects SELECT * FROM media_objects "
                            "WHERE media_id = ?", [a])
        catalog.con.execute("INSERT INTO media_deletions VALUES (?, true, now(), 'x', 'delete', "
                            "NULL)", [stranger])
        found = catalog.references.catalog_inconsistencies()
        assert found == [
            {"media_id": stranger, "problem": "deletion facts without a file"},
            {"media_id": a, "problem": "rows: 2"}] or found == [
            {"media_id": a, "problem": "rows: 2"},
            {"media_id": stranger, "problem": "deletion facts without a file"}]


def test_failed_scan_keeps_old_rows_and_marks_the_source_stale(
        settings: Settings, files: dict[str, str]) -> None:
    a = files["blog/a.txt"]
    with Catalog.open(settings.catalog_location) as catalog:
        assert catalog.references.stale_sources(["cms", "docs"]) == ["cms", "docs"]  # never scanned
    scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/a.txt")])
    scan(settings, "docs", [], documents=1)
    with Catalog.open(settings.catalog_location) as catalog:
        assert catalog.references.stale_sources(["cms", "docs"]) == []
        catalog.references.record_source_failure("cms", datetime.now(UTC), "connection refused")
        assert catalog.references.stale_sources(["cms", "docs"]) == ["cms"]
        status = catalog.references.source_scan_status(["cms"])[0]
        assert status["reason"] == "latest scan failed: connection refused"
        assert catalog.references.references_of(a) == {"webpage": ["1"]}
    scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/a.txt")])
    with Catalog.open(settings.catalog_location) as catalog:
        assert catalog.references.stale_sources(["cms", "docs"]) == []


class _FailingAudit(ApplicationStore):
    def record_audit(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")


class _FailsAfterTheDelete(Catalog):
    """A real catalog whose audit row fails: after the old rows were deleted, the new ones
    inserted and the removals recorded, before the commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.application = _FailingAudit(self)


def test_replace_is_atomic(settings: Settings, files: dict[str, str], tmp_path: Path) -> None:
    a = files["blog/a.txt"]
    scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/a.txt")])
    fragment = write_fragment(tmp_path / "f.parquet",
                              [key_ref(settings, "webpage", "2", "blog/b.txt")])
    with (_FailsAfterTheDelete.open(settings.catalog_location) as catalog,
          pytest.raises(RuntimeError, match="disk full")):
        catalog.references.replace_source_references("cms", [fragment], datetime.now(UTC))
    with Catalog.open(settings.catalog_location) as catalog:
        assert catalog.references.references_of(a) == {"webpage": ["1"]}
        assert catalog.references.references_of(files["blog/b.txt"]) == {}
        assert catalog.con.execute("SELECT count(*) FROM reference_removals").fetchall() == [
            (0,)]
        scans = catalog.references.source_scan_status(["cms"])[0]
        assert catalog.references.catalog_inconsistencies() == []
    assert scans["latest_started"] is not None and not scans["stale"]


def test_bad_fragments_change_nothing(settings: Settings, files: dict[str, str],
                                      tmp_path: Path) -> None:
    scan(settings, "cms", [key_ref(settings, "webpage", "1", "blog/a.txt")])
    no_id = write_fragment(tmp_path / "no-id.parquet", [
        key_ref(settings, "webpage", "2", "blog/b.txt"),
        {"content_type": "webpage", "content_id": "", "bucket": settings.bucket,
         "key": "blog/c.txt"}])
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with Catalog.open(settings.catalog_location) as catalog:
        with pytest.raises(ValueError, match="no content_type or content_id"):
            catalog.references.replace_source_references("cms", [no_id], datetime.now(UTC))
        with pytest.raises(ValueError, match="cannot read reference fragments"):
            catalog.references.replace_source_references("cms", [garbage], datetime.now(UTC))
        with pytest.raises(ValueError, match="reserved"):
            catalog.references.replace_source_references("api", [], datetime.now(UTC))
        assert catalog.references.references_of(files["blog/a.txt"]) == {"webpage": ["1"]}
        assert catalog.references.references_of(files["blog/b.txt"]) == {}


def test_reference_totals(admin_settings: Settings, files: dict[str, str]) -> None:
    s = admin_settings
    scan(s, "cms", [key_ref(s, "webpage", "1", "blog/a.txt"),
                    key_ref(s, "webpage", "1", "blog/nowhere.txt")])
    with Catalog.open(s.catalog_location) as catalog:
        add_reference(catalog, s, files["blog/b.txt"], "app", "9", ADMIN)
        assert catalog.references.reference_totals() == {"references": 3, "api": 1, "scan": 2,
                                                         "referenced_files": 2, "dangling": 1}


def test_known_keys_for_the_extractor(settings: Settings, files: dict[str, str]) -> None:
    pytest.importorskip("media_pipeline.references.known_keys",
                        reason="KnownKeys comes with the extraction branch")
    with Catalog.open(settings.catalog_location) as catalog:
        known = catalog.references.known_keys(settings.bucket)
        other = catalog.references.known_keys("another-bucket")
    assert "blog/a.txt" in known and "blog/zzz.txt" not in known and len(other) == 0
