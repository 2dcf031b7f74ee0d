"""Values derived from facts (issue 13): ``media_files`` is a view over ``media_objects``, the
appended deletion and reference-removal facts and the reference index; its derived columns
survive migration 3 of an existing lake, a re-upload and maintenance, and read at old snapshots.
How each action moves them: test_references.py and test_lifecycle.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from media_pipeline.catalog import Catalog, history, lake
from media_pipeline.catalog import catalog as catalog_module
from media_pipeline.catalog.lake import TEST_TEMPLATE_ENV, LakeLocation
from media_pipeline.catalog.migrations import LATEST_VERSION, MIGRATIONS
from media_pipeline_tests.catalog.store_helpers import BUCKET, T0, A, B, derived

# The old table's columns, in the order analysts (and positional inserts) knew them.
OLD_COLUMNS = [
    "media_id", "namespace", "bucket", "key", "version_id", "file_size", "etag",
    "last_modified", "storage_class", "original_filename", "content_type",
    "declared_content_type", "file_hash", "hash_source", "phash", "width", "height",
    "page_count", "metadata", "status", "quarantine_reason", "visibility", "reference_count",
    "referenced_in", "is_deleted", "deleted_at", "deleted_by", "purged_at",
    "fingerprinted_etag", "fingerprinted_at", "missing_since", "first_seen", "last_seen",
    "ai_title", "ai_generated_tags", "ai_extracted_text", "ai_labels", "ai_scores",
    "ai_backend", "ai_analyzed_at", "unreferenced_since", "owner", "uploaded_at",
]


def test_the_view_has_every_old_column_in_the_old_order(catalog: Catalog) -> None:
    cursor = catalog.con.execute("SELECT * FROM media_files LIMIT 0")
    assert [d[0] for d in cursor.description or []] == OLD_COLUMNS
    # what migration 1 created, read from the migration itself
    old = duckdb.connect()
    old.execute(MIGRATIONS[0][2])
    assert [r[0] for r in old.execute("DESCRIBE media_files").fetchall()] == OLD_COLUMNS


def test_new_content_at_a_deleted_key_is_not_deleted(catalog: Catalog, tmp_path: Path) -> None:
    catalog.lifecycle.soft_delete(A, "alice", allow_referenced=False, now=T0)
    snapshot = tmp_path / "snap.parquet"
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'media' AS bucket, 'blog/a.jpg' AS key, NULL::VARCHAR AS
                    version_id, 99::BIGINT AS size, 'new' AS etag, NULL::TIMESTAMPTZ AS
                    last_modified, 'STANDARD' AS storage_class
                  UNION ALL SELECT 'media', 'blog/b.jpg', NULL, 10, 'e', NULL, 'STANDARD')
                  TO '{snapshot}' (FORMAT parquet)""")
    catalog.objects.apply_inventory(snapshot, BUCKET)
    got = derived(catalog, A)
    assert (got["status"], got["is_deleted"]) == ("pending", False)


def _version_2_lake(location: LakeLocation, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.delenv(TEST_TEMPLATE_ENV)  # the migrations themselves, from an empty lake
        patch.setattr(catalog_module, "MIGRATIONS", MIGRATIONS[:2])
        patch.setattr(catalog_module, "LATEST_VERSION", 2)
        with Catalog.open(location) as old:
            assert old.schema_version() == 2
            con = old.con
            rows = [  # key, status, refs, is_deleted, deleted_at, deleted_by, unreferenced_since
                ("a", "active", 2, False, None, None, None),
                ("b", "deleted", 0, True, T0, "alice", T0 - timedelta(days=3)),
                ("c", "deleted", 1, True, T0, "bob", None),  # deleted while referenced
                ("d", "missing", 0, True, T0, "alice", None),
                ("e", "purged", 0, True, T0 - timedelta(days=1), "carol", None),
                ("f", "active", 0, False, None, None, T0 - timedelta(days=9)),
                ("g", "pending", 0, True, T0, "old", None),  # is_deleted left on a new upload
            ]
            for key, status, refs, is_deleted, at, by, since in rows:
                media_id = f"00000000-0000-0000-0000-0000000000{ord(key):02x}"
                referenced_in = '{"webpage":["1","2"]}' if refs == 2 else (
                    '{"webpage":["1"]}' if refs else "{}")
                con.execute(
                    "INSERT INTO media_files (media_id, namespace, bucket, key, file_size, "
                    "etag, fingerprinted_etag, status, reference_count, referenced_in, "
                    "is_deleted, deleted_at, deleted_by, unreferenced_since, first_seen, "
                    "last_seen) VALUES (?, 'blog', 'media', ?, 1, 'e', 'e', ?, ?, ?, ?, ?, ?, "
                    "?, ?, ?)",
                    [media_id, key, status, refs, referenced_in, is_deleted, at, by, since,
                     T0 - timedelta(days=30), T0])
                for n in range(refs):
                    con.execute(
                        "INSERT INTO media_references (media_id, bucket, key, content_type, "
                        "content_id, source, origin, first_seen, last_seen) "
                        "VALUES (?, 'media', ?, 'webpage', ?, 'cms', 'scan', ?, ?)",
                        [media_id, key, str(n + 1), T0, T0])


def test_migrations_3_and_4_keep_an_existing_lakes_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    location = LakeLocation.embedded(tmp_path)
    _version_2_lake(location, monkeypatch)
    con = lake.connect(location)
    before = con.execute("SELECT * FROM media_files ORDER BY key").fetchall()
    before_migration = history.current_snapshot(con)
    con.close()
    with Catalog.open(location) as c:
        assert c.schema_version() == LATEST_VERSION  # 4 rewrote the rows in media_id order
        after = c.con.execute("SELECT * FROM media_files ORDER BY key").fetchall()
        by_key = {r[3]: r for r in after}
        expected = []
        for row in before:
            if row[3] == "g":  # the stale flag of a re-uploaded file no longer counts
                row = (*row[:24], False, None, None, *row[27:])
            expected.append(row)
        assert [tuple(r) for r in after] == expected
        assert by_key["c"][19] == "deleted" and by_key["c"][22] == 1
        assert c.con.execute("SELECT key, status FROM media_objects WHERE key IN ('b', 'c') "
                             "ORDER BY key").fetchall() == [("b", "active"), ("c", "active")]
        # the lifecycle reads the same answers
        state = c.lifecycle.media_state("00000000-0000-0000-0000-000000000062")
        assert state is not None and state["status"] == "deleted"
        assert state["unreferenced_since"] == T0 - timedelta(days=3)
    # the snapshot from before the migration still reads the old table, now the view
    then = lake.connect(location, at=before_migration)
    assert then.execute("SELECT * FROM media_files ORDER BY key").fetchall() == before
    then.close()


def test_derived_values_read_at_an_older_snapshot(catalog: Catalog) -> None:
    catalog.references.add_reference(A, "webpage", "1", "ed", now=T0)
    catalog.lifecycle.soft_delete(A, "alice", allow_referenced=True, now=T0)
    snapshot = history.current_snapshot(catalog.con)
    catalog.references.remove_reference(A, "webpage", "1", "ed", now=T0 + timedelta(hours=1))
    catalog.lifecycle.restore_media(A, "bob")
    assert derived(catalog, A)["is_deleted"] is False
    then = lake.connect(catalog.location, at=snapshot)
    row = then.execute("SELECT status, reference_count, is_deleted, deleted_by, "
                       "unreferenced_since FROM media_files WHERE media_id = ?",
                       [A]).fetchall()
    then.close()
    assert row == [("deleted", 1, True, "alice", None)]


def test_catalog_maintenance_keeps_the_newest_fact_the_newest(catalog: Catalog) -> None:
    from media_pipeline.catalog import maintenance

    # facts in several commits (inlined, then flushed and merged into one file): row ids, the
    # order the view goes by, survive the rewrite
    for round_ in range(2):
        for clock in (T0, T0 - timedelta(days=1)):
            catalog.lifecycle.soft_delete(A, f"u{round_}", allow_referenced=False, now=clock)
            catalog.lifecycle.restore_media(A, "r")
        catalog.lifecycle.soft_delete(B, f"u{round_}", allow_referenced=False, now=T0)
        catalog.lifecycle.restore_media(B, "r")
        maintenance.run_maintenance(catalog.con, snapshot_retention_days=0,
                                    purge_snapshot_retention_days=0, grace=timedelta(0))
    catalog.lifecycle.soft_delete(A, "last", allow_referenced=False, now=T0 - timedelta(days=5))
    before = catalog.con.execute("SELECT rowid, reason FROM media_deletions ORDER BY rowid"
                                 ).fetchall()
    maintenance.run_maintenance(catalog.con, snapshot_retention_days=0,
                                purge_snapshot_retention_days=0, grace=timedelta(0))
    assert catalog.con.execute("SELECT rowid, reason FROM media_deletions ORDER BY rowid"
                               ).fetchall() == before
    assert (derived(catalog, A)["deleted_by"], derived(catalog, B)["is_deleted"]) == (
        "last", False)
