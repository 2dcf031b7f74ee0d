"""`media-pipeline catalog migrate` with a real catalog.duckdb written by DuckDB 2.0.1 (which
this DuckDB, 1.5.5, cannot open): exported in a throwaway virtualenv, loaded into the lake,
counted per table, the old file kept."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from media_pipeline.catalog import lake
from media_pipeline.catalog.convert import LEGACY_DUCKDB, legacy_python, migrate_catalog
from media_pipeline.catalog.lake import LakeLocation
from media_pipeline.cli import main as cli
from media_pipeline.errors import CatalogError, NotFound
from media_pipeline_tests.catalog.legacy_migrations import MIGRATIONS as LEGACY_MIGRATIONS
from media_pipeline_tests.fixtures_db import *  # noqa: F403

MEDIA_ID = "0b0e4a1c-2f7e-4f55-9a35-8a0d8c2b7a11"
# Today's schema (migrations 1-8), written by DuckDB 2.0.1, with rows in the tables whose types
# need care: UUID, UBIGINT, JSON, TIMESTAMPTZ, BLOB, FLOAT[64] and FLOAT[48] arrays.
BUILD = r"""
import json, sys, duckdb
migrations = json.loads(sys.stdin.read())
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, description VARCHAR, "
            "applied_at TIMESTAMPTZ)")
for version, description, sql in migrations:
    con.execute(sql)
    con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [version, description])
con.execute('''INSERT INTO media_files (media_id, namespace, bucket, key, file_size, etag,
    original_filename, content_type, file_hash, phash, metadata, status, reference_count,
    referenced_in, is_deleted, deleted_at, deleted_by, first_seen, last_seen)
    SELECT ('0b0e4a1c-2f7e-4f55-9a35-8a0d8c2b' || lpad(i::VARCHAR, 4, '0'))::UUID, 'blog',
           'media', 'blog/img-' || i || '.jpg', 1000 + i, 'e' || i, 'img-' || i || '.jpg',
           'image/jpeg', repeat('ab', 32), 18446744073709551615::UBIGINT - i,
           '{"exif": {"Make": "Canon"}}', CASE WHEN i % 10 = 0 THEN 'deleted' ELSE 'active' END,
           i % 3, '{"webpage": ["1"]}', i % 10 = 0,
           CASE WHEN i % 10 = 0 THEN TIMESTAMPTZ '2026-10-01 10:00:00+00' END,
           CASE WHEN i % 10 = 0 THEN 'alice' END, now(), now()
    FROM range(1, 251) t(i)''')
con.execute('''INSERT INTO media_references (media_id, bucket, key, content_type, content_id,
    source, origin, first_seen, last_seen)
    SELECT media_id, bucket, key, 'webpage', '1', 'cms', 'scan', now(), now()
    FROM media_files WHERE reference_count > 0''')
con.execute('''INSERT INTO image_features (file_hash, revision, trimmed_phash, layout, colours,
    computed_at) VALUES (repeat('ab', 32), 2, 42,
    list_transform(range(64), lambda x: (x / 64)::FLOAT)::FLOAT[64],
    list_transform(range(48), lambda x: (x / 48)::FLOAT)::FLOAT[48], now())''')
con.execute("INSERT INTO thumbnails VALUES (repeat('ab', 32), 8, 8, '\\xFF\\xD8\\xFF'::BLOB, "
            "NULL, now())")
con.execute("INSERT INTO audit_log VALUES (now(), 'alice', 'delete', "
            "'0b0e4a1c-2f7e-4f55-9a35-8a0d8c2b0010', '{}', NULL)")
con.execute("INSERT INTO namespaces VALUES ('blog', 'public', 'alice', now())")
con.close()
print(duckdb.__version__)
"""


@pytest.fixture(scope="session")
def legacy_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One virtualenv with DuckDB 2.0.1 for the session (made the way migrate makes it)."""
    venv = tmp_path_factory.mktemp("duckdb-legacy") / "venv"
    try:
        legacy_python(venv, lambda line: None)
    except CatalogError as exc:
        pytest.skip(f"cannot install duckdb=={LEGACY_DUCKDB} here: {exc}")
    return venv


def old_catalog(venv: Path, path: Path) -> Path:
    today = sorted(LEGACY_MIGRATIONS)
    done = subprocess.run([str(venv / "bin" / "python"), "-c", BUILD, str(path)],
                          input=json.dumps(today), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == LEGACY_DUCKDB
    return path


def test_this_duckdb_cannot_open_the_old_file(legacy_venv: Path, tmp_path: Path) -> None:
    import duckdb

    old = old_catalog(legacy_venv, tmp_path / "catalog.duckdb")
    with pytest.raises(duckdb.Error, match="version"):
        duckdb.connect(str(old), read_only=True)


def test_migrate_converts_counts_and_keeps_the_old_file(legacy_venv: Path,
                                                        tmp_path: Path) -> None:
    old = old_catalog(legacy_venv, tmp_path / "catalog.duckdb")
    location = LakeLocation.embedded(tmp_path)
    lines: list[str] = []
    report = migrate_catalog(old, location, progress=lines.append, venv=legacy_venv)
    assert report.exported_with == LEGACY_DUCKDB and report.old_schema_version == 8
    counts = {t.table: (t.rows_old, t.rows_new) for t in report.tables}
    assert counts["media_objects"] == (250, 250)  # media_files is a view over it and facts
    assert counts["media_references"] == (167, 167)
    assert counts["image_features"] == (1, 1) and counts["audit_log"] == (1, 1)
    assert all(old_rows == new for old_rows, new in counts.values())
    assert "schema_version" not in counts
    assert any("cannot open it" in line for line in lines)
    # the old file is kept, renamed; nothing writes to catalog.duckdb any more
    assert not old.exists() and Path(report.kept_as) == tmp_path / "catalog.duckdb.pre-lake"
    assert Path(report.kept_as).stat().st_size > 0
    con = lake.connect(location, read_only=True)
    row = con.execute("SELECT key, phash, metadata->>'$.exif.Make', deleted_by, deleted_at "
                      "FROM media_files WHERE media_id = ?",
                      ["0b0e4a1c-2f7e-4f55-9a35-8a0d8c2b0010"]).fetchall()
    assert row[0][:4] == ("blog/img-10.jpg", 18446744073709551605, "Canon", "alice")
    assert row[0][4].isoformat() == "2026-10-01T10:00:00+00:00"
    # the derived columns come back from the facts and the references
    derived = con.execute(
        "SELECT status, is_deleted, reference_count, referenced_in::VARCHAR FROM media_files "
        "WHERE key IN ('blog/img-10.jpg', 'blog/img-11.jpg', 'blog/img-12.jpg') ORDER BY key"
    ).fetchall()
    assert derived == [("deleted", True, 1, '{"webpage":["1"]}'),
                       ("active", False, 1, '{"webpage":["1"]}'),
                       ("active", False, 0, "{}")]
    # the stored status is the pipeline's: what a restore would give back (never fingerprinted)
    assert con.execute("SELECT status, count(*) FROM media_objects GROUP BY ALL ORDER BY 1"
                       ).fetchall() == [("active", 225), ("pending", 25)]
    layout, colours = con.execute("SELECT layout, colours FROM image_features").fetchall()[0]
    assert len(layout) == 64 and len(colours) == 48 and layout[32] == pytest.approx(0.5)
    assert con.execute("SELECT jpeg FROM thumbnails").fetchall() == [(b"\xff\xd8\xff",)]
    con.close()


def test_a_lake_with_rows_is_refused_unless_forced(legacy_venv: Path, tmp_path: Path) -> None:
    location = LakeLocation.embedded(tmp_path)
    first = old_catalog(legacy_venv, tmp_path / "catalog.duckdb")
    migrate_catalog(first, location, venv=legacy_venv)
    again = old_catalog(legacy_venv, tmp_path / "catalog.duckdb")
    with pytest.raises(CatalogError, match=r"already holds rows \(.*media_files \(250 rows\)"):
        migrate_catalog(again, location, venv=legacy_venv)
    assert again.exists()  # refused: the old file stays where it was
    report = migrate_catalog(again, location, venv=legacy_venv, force=True)
    assert report.replaced_rows > 0
    assert {t.table: t.rows_new for t in report.tables}["media_objects"] == 250
    assert (tmp_path / "catalog.duckdb.pre-lake").exists()
    assert Path(report.kept_as).name.startswith("catalog.duckdb.pre-lake-")


def test_a_column_with_values_the_lake_lacks_stops_it(legacy_venv: Path,
                                                       tmp_path: Path) -> None:
    from media_pipeline.catalog.catalog import ensure_schema

    def without(column: str) -> Callable[[Any], None]:
        def prepare(con: Any) -> None:
            ensure_schema(con, location)
            con.execute(f"ALTER TABLE media_objects DROP COLUMN {column}")
        return prepare

    old = old_catalog(legacy_venv, tmp_path / "catalog.duckdb")
    location = LakeLocation.embedded(tmp_path)
    with pytest.raises(CatalogError, match=r"no column for media_files.file_hash \(250 values"):
        migrate_catalog(old, location, venv=legacy_venv, prepare=without("file_hash"))
    assert old.exists()
    con = lake.connect(location, read_only=True)
    assert con.execute("SELECT count(*) FROM media_objects").fetchall() == [(0,)]
    con.close()
    # an empty column the lake lacks is only reported (another lake: that one lost a column)
    report = migrate_catalog(old, LakeLocation.embedded(tmp_path / "other"), venv=legacy_venv,
                             prepare=without("ai_title"))
    copy = {t.table: t for t in report.tables}["media_objects"]
    assert copy.rows_new == 250 and copy.columns_not_copied == ["ai_title"]


def test_missing_or_unreadable_files_are_one_line(tmp_path: Path) -> None:
    location = LakeLocation.embedded(tmp_path)
    with pytest.raises(NotFound, match="no old catalog"):
        migrate_catalog(tmp_path / "nope.duckdb", location)
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CatalogError, match="cannot read the old catalog"):
        migrate_catalog(junk, location)
    assert junk.exists()


def test_the_command(legacy_venv: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path))
    old_catalog(legacy_venv, tmp_path / "catalog.duckdb")
    venv = ["--duckdb-venv", str(legacy_venv)]
    result = CliRunner().invoke(cli, ["catalog", "migrate", "--json", *venv])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert {t["table"]: t["rows_new"] for t in report["tables"]}["media_objects"] == 250
    again = CliRunner().invoke(cli, ["catalog", "migrate", *venv])
    assert again.exit_code == 1 and "no old catalog" in again.output
    other = old_catalog(legacy_venv, tmp_path / "elsewhere.duckdb")
    refused = CliRunner().invoke(cli, ["catalog", "migrate", "--from", str(other), *venv])
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines()[-1].startswith("error: the lake already holds")


def test_migrate_into_postgres_metadata(legacy_venv: Path, tmp_path: Path,
                                        postgres_url: str) -> None:
    old = old_catalog(legacy_venv, tmp_path / "catalog.duckdb")
    location = LakeLocation(metadata=postgres_url.replace("postgresql+psycopg://",
                                                          "postgresql://"),
                            data=str(tmp_path / "data") + "/")
    report = migrate_catalog(old, location, venv=legacy_venv)
    assert {t.table: t.rows_new for t in report.tables}["media_objects"] == 250
    con = lake.connect(location, read_only=True)
    assert con.execute("SELECT count(*) FROM media_references").fetchall() == [(167,)]
    con.close()
