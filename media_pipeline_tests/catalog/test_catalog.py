"""The Catalog itself on a real lake: migrations, and two writer processes at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from media_pipeline.catalog import CatalogError, lake
from media_pipeline.catalog.lake import TEST_TEMPLATE_ENV
from media_pipeline.catalog.migrations import LATEST_VERSION
from media_pipeline_tests.catalog.store_helpers import open_catalog, write_snapshot


def test_migrations_record_the_schema_version_and_reopen_is_idempotent(home: Path) -> None:
    with open_catalog(home) as c:
        assert c.schema_version() == LATEST_VERSION
    with open_catalog(home) as c:
        assert c.schema_version() == LATEST_VERSION
        rows = c.con.execute("SELECT count(*) FROM schema_version").fetchone()
        assert rows is not None and rows[0] == LATEST_VERSION


def test_every_table_has_statistics_and_no_row(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 5: a table without statistics costs DuckLake a metadata query per column in
    every query that reads it; the seeding row is never seen."""
    monkeypatch.delenv(TEST_TEMPLATE_ENV)  # every migration, from an empty lake
    with open_catalog(home) as c:
        tables = [r[0] for r in c.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND NOT temporary").fetchall()]
        counts = {t: c.con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0]
                  for t in tables}
        metadata = c.location.metadata
    assert counts.pop("schema_version") == LATEST_VERSION
    assert set(counts.values()) == {0}
    con = sqlite3.connect(metadata)
    try:
        without = con.execute(
            "SELECT t.table_name FROM ducklake_table t LEFT JOIN ducklake_table_stats s "
            "ON s.table_id = t.table_id WHERE t.end_snapshot IS NULL AND s.table_id IS NULL"
        ).fetchall()
    finally:
        con.close()
    assert without == []
    assert len(tables) > 20


def test_a_catalog_from_a_newer_version_is_refused(home: Path) -> None:
    with open_catalog(home) as c:
        c.con.execute("INSERT INTO schema_version VALUES (999, 'future', now())")
    lake.forget_schema_checks()  # as if SCHEMA_CHECK_SECONDS had passed
    with pytest.raises(CatalogError, match="newer than this"), open_catalog(home):
        pass


WRITER = """
import sys
from pathlib import Path
from media_pipeline.catalog import Catalog
home, snap = Path(sys.argv[1]), Path(sys.argv[2])
for i in range(8):
    with Catalog.open(home) as c:
        c.objects.apply_inventory(snap, "media")
        # as the application does: inside a write, which runs it again when it collides
        c.write(lambda: c.application.record_audit(sys.argv[3], "test-write", details={"i": i}))
print("done")
"""


def test_two_writers_at_once_both_succeed(home: Path, tmp_path: Path) -> None:
    snap_a = write_snapshot(tmp_path / "a.parquet", [(f"site/{i}", i + 1, "e") for i in range(200)])
    with open_catalog(home):
        pass
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(snap_a), name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("writer-1", "writer-2")
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    with open_catalog(home) as c:
        actors = dict(c.con.execute(
            "SELECT actor, count(*) FROM audit_log GROUP BY actor").fetchall())
        total = c.con.execute("SELECT count(*), count(DISTINCT media_id) FROM media_files")
        counts = total.fetchone()
    assert actors == {"writer-1": 8, "writer-2": 8}
    assert counts == (200, 200)


def test_migration_4_keeps_every_value_of_a_schema_3_catalog(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile review of fast-calls: migration 4 deletes and re-inserts every file and
    reference row; media_files, the references and the facts read the same afterwards."""
    from datetime import UTC, datetime

    from media_pipeline.catalog import catalog as catalog_module
    from media_pipeline.catalog.migrations import MIGRATIONS
    from media_pipeline.records import media_id_for

    monkeypatch.delenv(TEST_TEMPLATE_ENV)  # the migrations themselves, from an empty lake
    monkeypatch.setattr(catalog_module, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 3])
    monkeypatch.setattr(catalog_module, "LATEST_VERSION", 3)
    keys = [f"k{i:03d}" for i in range(40)]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with open_catalog(home) as c:
        assert c.schema_version() == 3
        # rows as the merge writes them (today's merge also records a later schema's columns)
        c.con.executemany(
            "INSERT INTO media_objects (media_id, namespace, bucket, key, version_id, "
            "file_size, etag, last_modified, storage_class, original_filename, status, "
            "first_seen, last_seen) VALUES (?, 'default', 'media', ?, ?, ?, ?, ?, 'STANDARD', "
            "?, 'pending', ?, ?)",
            [[media_id_for("media", k), k, f"v{i}" if i % 3 else None, i * 1000 + 1, f"e-{k}",
              now, k, now, now] for i, k in enumerate(keys)])
        for i, k in enumerate(keys[:20]):
            c.references.add_reference(media_id_for("media", k), "webpage", str(i), "ed")
        for k in keys[10:30]:
            c.lifecycle.soft_delete(media_id_for("media", k), "ed", allow_referenced=True)
        c.references.remove_reference(media_id_for("media", keys[3]), "webpage", "3", "ed")
        c.lifecycle.restore_media(media_id_for("media", keys[12]), "ed")
        query = "SELECT * FROM media_files ORDER BY media_id"
        before = c.con.execute(query).fetchall()
        refs_before = c.con.execute(
            "SELECT * FROM media_references ORDER BY media_id, content_id").fetchall()
    monkeypatch.undo()
    lake.forget_schema_checks()
    with open_catalog(home) as c:
        assert c.schema_version() == LATEST_VERSION >= 4
        assert c.con.execute(query).fetchall() == before
        assert c.con.execute(
            "SELECT * FROM media_references ORDER BY media_id, content_id").fetchall() \
            == refs_before


def test_migration_4_is_retried_when_another_process_wrote_the_sqlite_metadata_meanwhile(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hostile review of fast-calls: migration 4's set_option writes the metadata at once;
    after another process committed to the SQLite metadata since the migration's transaction
    read it, that was a raw "database is locked" (seen when the application and a pipeline run
    opened a new lake together), not a retry."""
    import sqlite3

    from media_pipeline.catalog import catalog as catalog_module
    from media_pipeline.catalog.migrations import MIGRATIONS

    monkeypatch.delenv(TEST_TEMPLATE_ENV)  # the migrations themselves, from an empty lake
    monkeypatch.setattr(catalog_module, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 3])
    monkeypatch.setattr(catalog_module, "LATEST_VERSION", 3)
    with open_catalog(home) as c:
        assert c.schema_version() == 3
    monkeypatch.undo()
    lake.forget_schema_checks()
    metadata = lake.LakeLocation.embedded(home).metadata
    assert Path(metadata).is_file()
    holder = sqlite3.connect(metadata, timeout=0, check_same_thread=False)
    schema_version = catalog_module.Catalog.schema_version
    held: list[int] = []

    def locked_meanwhile(self: catalog_module.Catalog) -> int:
        # inside the migration's transaction, after it read the metadata: another writer
        # commits to the metadata (its read snapshot is stale when it writes)
        version = schema_version(self)
        if self._in_transaction and not held:
            held.append(1)
            holder.execute("CREATE TABLE IF NOT EXISTS another_writer (x INTEGER)")
            holder.execute("INSERT INTO another_writer VALUES (1)")
            holder.commit()
        return version

    monkeypatch.setattr(catalog_module.Catalog, "schema_version", locked_meanwhile)
    with open_catalog(home) as c:
        assert c.schema_version() == LATEST_VERSION
    assert held
