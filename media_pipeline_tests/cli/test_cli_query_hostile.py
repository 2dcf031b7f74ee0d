"""Issue 13 (hostile review): an analyst's `query` runs on a read-only attach, but DuckDB's
file allowlist lets a path be written as well as read, an ATTACH of the SQLite metadata file is
read-write, and "../" in an s3:// URL passes the allowlist. Only SELECTs over the catalog run."""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from media_pipeline.cli import main as cli
from media_pipeline.library import MediaLibrary
from media_pipeline.settings import Settings
from media_pipeline.storage import ensure_bucket
from media_pipeline_tests.app_fixtures import png_bytes
from media_pipeline_tests.fixtures_s3 import env_for


def _query(env: dict[str, str], sql: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["query", sql, "--format", "json"], env=env)
    return result.exit_code, result.output


@pytest.fixture
def lib(settings: Settings, s3_client: Any) -> MediaLibrary:
    library = MediaLibrary(settings, s3_client)
    library.create_namespace("blog", "alice")
    library.upload("blog", io.BytesIO(png_bytes()), "a.png", "alice", visibility="private")
    return library


def test_a_query_cannot_write_the_metadata_file_or_the_data_folder(
        settings: Settings, lib: MediaLibrary) -> None:
    env = env_for(settings)
    location = settings.catalog_location
    data = location.data
    for sql in (f"ATTACH 'sqlite:{location.metadata}' AS m; CREATE TABLE m.pwned (i INT)",
                f"SELECT * FROM sqlite_attach('{location.metadata}')",
                f"COPY (SELECT 1 AS i) TO '{data}pwned.parquet'",
                "SELECT * FROM ducklake_cleanup_old_files('lake', cleanup_all => true)",
                "CALL ducklake_expire_snapshots('lake', older_than => now())"):
        code, out = _query(env, sql)
        assert code == 1 and out.startswith("error: query failed") and "read-only" in out, (
            sql, out)
        assert len(out.strip().splitlines()) == 1
    with sqlite3.connect(location.metadata) as con:
        assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'pwned'"
                           ).fetchone() == (0,)
    assert not list(Path(data).rglob("pwned*"))


def test_a_query_cannot_read_other_objects_through_the_lakes_s3_prefix(
        settings: Settings, s3_client: Any) -> None:
    lake_bucket = settings.bucket + "-lake"
    ensure_bucket(s3_client, lake_bucket, settings.region)
    on_s3 = replace(settings, catalog_data=f"s3://{lake_bucket}/lake/")
    lib = MediaLibrary(on_s3, s3_client)
    lib.create_namespace("blog", "alice")
    secret = lib.upload("blog", io.BytesIO(png_bytes()), "private.png", "alice",
                        visibility="private")
    env = {**env_for(on_s3), "MEDIA_PIPELINE_CATALOG_DATA": f"s3://{lake_bucket}/lake/"}
    code, out = _query(env, "SELECT count(*) AS n FROM media_files")
    assert code == 0 and json.loads(out) == [{"n": 1}], out
    escape = f"s3://{lake_bucket}/lake/../../{settings.bucket}/{secret.key}"
    for sql in (f"SELECT size FROM read_blob('{escape}')",
                f"SELECT * FROM '{escape}'",
                f"SELECT * FROM (SELECT content FROM read_blob('{escape}'))"):
        code, out = _query(env, sql)
        assert code == 1 and "read-only" in out, (sql, out)


def test_analysts_queries_still_run(settings: Settings, lib: MediaLibrary) -> None:
    env = env_for(settings)
    for sql in ("SELECT count(*) AS n FROM media_files",
                "WITH f AS (SELECT key FROM lake.main.media_files) SELECT count(*) AS n FROM f",
                "SELECT count(*) AS n FROM ducklake_snapshots('lake')",
                "SELECT count(*) AS n FROM (SUMMARIZE media_files)",
                "SELECT count(*) AS n FROM information_schema.tables",
                "SELECT count(*) AS n FROM range(3)"):
        code, out = _query(env, sql)
        assert code == 0, (sql, out)
        assert json.loads(out)[0]["n"] >= 1


def test_a_snapshot_id_past_bigint_is_a_usage_line_not_an_attach_error(
        settings: Settings, lib: MediaLibrary) -> None:
    result = CliRunner().invoke(cli, ["query", "SELECT 1", "--at", "9" * 30],
                                env=env_for(settings))
    assert result.exit_code == 1 and "--at takes a snapshot id" in result.output, result.output
    assert "MEDIA_PIPELINE_CATALOG_METADATA" not in result.output
