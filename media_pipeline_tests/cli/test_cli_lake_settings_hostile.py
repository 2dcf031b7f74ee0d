"""Issue 13 (hostile review): settings that look fine but name a new, empty metadata database
over the real catalog's data files (a typo'd metadata path, a relative home run from another
folder with the data on S3). DuckLake then sees the real catalog's Parquet files as orphans of
the new one, and catalog maintenance deleted them: the real catalog — references included —
was gone. Such a lake is refused before anything is written."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from datetime import timedelta
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


def _real_catalog(settings: Settings, s3_client: Any) -> tuple[MediaLibrary, str]:
    """A catalog with a referenced file, its rows flushed to Parquet (as the nightly
    maintenance leaves them)."""
    from media_pipeline.catalog.maintenance import maintain_catalog

    lib = MediaLibrary(settings, s3_client)
    lib.create_namespace("blog", "alice")
    media = lib.upload("blog", io.BytesIO(png_bytes()), "a.png", "alice")
    lib.add_reference(media.media_id, "webpage", "1", user="alice")
    maintain_catalog(settings, grace=timedelta(0))
    return lib, media.media_id


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1, result.output
    return str(result.output)


def test_a_typod_metadata_path_over_the_real_data_folder_is_refused(
        settings: Settings, s3_client: Any) -> None:
    lib, media_id = _real_catalog(settings, s3_client)
    data = Path(settings.catalog_location.data)
    files = set(data.rglob("*.parquet"))
    assert files
    for path in files:  # written days ago: past maintenance's grace for orphans
        os.utime(path, (path.stat().st_mtime - 3 * 86400,) * 2)
    typo = str(Path(settings.catalog_location.metadata).with_name("metadta.sqlite"))
    env = {**env_for(settings), "MEDIA_PIPELINE_CATALOG_METADATA": typo}
    line = _one_line_error(CliRunner().invoke(
        cli, ["run", "--select", "catalog_maintenance"], env=env))
    assert "MEDIA_PIPELINE_CATALOG_METADATA" in line and "already holds Parquet" in line
    line = _one_line_error(CliRunner().invoke(
        cli, ["refs", "show", media_id, "--user", "alice"], env=env))
    assert "already holds Parquet" in line
    assert files <= set(data.rglob("*.parquet"))
    assert lib.get_references(media_id, "alice") == {"webpage": ["1"]}


def test_a_relative_home_from_another_folder_over_s3_data_is_refused(
        settings: Settings, s3_client: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    lake_bucket = settings.bucket + "-lake"
    ensure_bucket(s3_client, lake_bucket, settings.region)
    on_s3 = replace(settings, catalog_data=f"s3://{lake_bucket}/lake/")
    lib, media_id = _real_catalog(on_s3, s3_client)
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=lake_bucket)["Contents"]}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    env = {**env_for(on_s3), "MEDIA_PIPELINE_CATALOG_DATA": f"s3://{lake_bucket}/lake/"}
    del env["MEDIA_PIPELINE_HOME"]  # ./.media_pipeline of the folder it runs in
    line = _one_line_error(CliRunner().invoke(
        cli, ["run", "--select", "catalog_maintenance"], env=env))
    assert "already holds Parquet" in line and "MEDIA_PIPELINE_HOME" in line
    assert keys <= {o["Key"] for o in s3_client.list_objects_v2(Bucket=lake_bucket)["Contents"]}
    assert lib.get_references(media_id, "alice") == {"webpage": ["1"]}


def test_catalog_data_in_the_media_bucket_is_refused(settings: Settings,
                                                      s3_client: Any) -> None:
    # Everything in the media bucket is catalogued: the lake's own Parquet files became
    # unreferenced files that an admin could delete and a purge removed (the catalog broke).
    env = {**env_for(settings),
           "MEDIA_PIPELINE_CATALOG_DATA": f"s3://{settings.bucket}/catalog-lake/"}
    for args in (["namespaces", "create", "blog", "--user", "alice"], ["purge", "--dry-run"],
                 ["run", "--select", "catalog_maintenance"]):
        line = _one_line_error(CliRunner().invoke(cli, args, env=env))
        assert "MEDIA_PIPELINE_CATALOG_DATA" in line and "media bucket" in line, (args, line)
    assert "Contents" not in s3_client.list_objects_v2(Bucket=settings.bucket)


def test_a_password_in_the_metadata_urls_query_is_never_printed(settings: Settings) -> None:
    # libpq's own URL form; the query was printed whole in every attach error.
    env = {**env_for(settings), "MEDIA_PIPELINE_CATALOG_METADATA":
           "postgresql://media@127.0.0.1:1/catalog?password=hunter2secret"}
    for args in (["namespaces", "list", "--user", "alice"], ["query", "SELECT 1"], ["sql"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert "hunter2secret" not in result.output, (args, result.output)
    assert "MEDIA_PIPELINE_CATALOG_METADATA" in _one_line_error(
        CliRunner().invoke(cli, ["namespaces", "list", "--user", "alice"], env=env))


def test_connection_options_in_the_metadata_url_are_refused_not_dropped(
        settings: Settings) -> None:
    # sslmode=require was silently left out of the connection (plain text to the database).
    env = {**env_for(settings), "MEDIA_PIPELINE_CATALOG_METADATA":
           "postgresql://media@127.0.0.1:1/catalog?sslmode=require"}
    line = _one_line_error(CliRunner().invoke(cli, ["namespaces", "list", "--user", "alice"],
                                              env=env))
    assert "sslmode" in line and "PGSSLMODE" in line


def test_metadata_naming_another_applications_file_is_refused_untouched(
        settings: Settings, s3_client: Any, tmp_path: Path) -> None:
    # DuckLake created its tables inside whatever SQLite database the setting named.
    import sqlite3

    cms = tmp_path / "cms.sqlite"
    with sqlite3.connect(cms) as con:
        con.execute("CREATE TABLE pages (id INTEGER, body TEXT)")
        con.execute("INSERT INTO pages VALUES (1, 'hello')")
    con.close()
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes())
    before = {p: p.read_bytes() for p in (cms, image)}
    for path, says in ((cms, "another application's SQLite database"),
                       (image, "is not a SQLite database")):
        env = {**env_for(settings), "MEDIA_PIPELINE_CATALOG_METADATA": str(path)}
        line = _one_line_error(CliRunner().invoke(
            cli, ["namespaces", "create", "blog", "--user", "alice"], env=env))
        assert says in line and "MEDIA_PIPELINE_CATALOG_METADATA" in line, line
    assert {p: p.read_bytes() for p in (cms, image)} == before


@pytest.mark.parametrize("metadata", [
    "postgres:dbname=catalog host=127.0.0.1 user=postgres password=hunter2secret",
    "ducklake:postgres:dbname=catalog host=127.0.0.1",
    "ducklake:sqlite:meta/lake.sqlite",
    "sqlite:meta/lake.sqlite",
    "mysql://media@127.0.0.1/catalog",
])
def test_duckdbs_own_spellings_of_the_metadata_are_refused_not_made_a_local_catalog(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        metadata: str) -> None:
    # DuckLake's ATTACH form was taken as a relative path: the command succeeded on a new,
    # empty SQLite catalog in a folder named "postgres:dbname=...", not the shared one.
    monkeypatch.chdir(tmp_path)
    env = {**env_for(settings), "MEDIA_PIPELINE_CATALOG_METADATA": metadata}
    for args in (["namespaces", "create", "blog", "--user", "alice"], ["sql"]):
        line = _one_line_error(CliRunner().invoke(cli, args, env=env))
        assert "MEDIA_PIPELINE_CATALOG_METADATA" in line and "hunter2secret" not in line, line
        assert "postgresql://" in line, line
    assert list(tmp_path.iterdir()) == []
