"""Relative paths are resolved once, against one documented base, and stay absolute.

Settings (``MEDIA_PIPELINE_HOME``, ``MEDIA_PIPELINE_SOURCES``, a local ``MEDIA_PIPELINE_INVENTORY``,
the demo's ``--home``) are relative to the folder the command runs in; paths inside the sources
file (a ``files`` root, a ``sqlite:///relative.db`` URL) to the sources file's own folder.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from media_pipeline.references.sources.config import load_sources
from media_pipeline.references.sources.files import FilesSource
from media_pipeline.references.sources.sql import SqlSource
from media_pipeline.settings import Settings, absolute


def test_relative_settings_resolve_against_the_working_directory_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = tmp_path / "start"
    start.mkdir()
    monkeypatch.chdir(start)
    settings = Settings.from_env({
        "MEDIA_PIPELINE_HOME": "state/home",
        "MEDIA_PIPELINE_SOURCES": "conf/sources.yaml",
        "MEDIA_PIPELINE_INVENTORY": "reports/inventory",
    })
    assert settings.home == start / "state" / "home"
    assert settings.catalog_location.metadata == str(
        start / "state" / "home" / "catalog" / "metadata.sqlite")
    data = start / "state" / "home" / "catalog" / "data"
    assert settings.catalog_location.data == f"{data}/"
    assert settings.legacy_catalog_path == start / "state" / "home" / "catalog.duckdb"
    assert settings.content_sources == start / "conf" / "sources.yaml"
    assert settings.inventory_location == str(start / "reports" / "inventory")
    # Moving elsewhere (a Dagster step, a library call from another folder) changes nothing.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = replace(settings, retention_days=3)
    assert again.home == start / "state" / "home"
    assert again.content_sources == start / "conf" / "sources.yaml"
    assert again.inventory_location == str(start / "reports" / "inventory")


def test_the_default_home_is_dot_media_pipeline_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).home == tmp_path / ".media_pipeline"
    assert Settings().home == tmp_path / ".media_pipeline"
    assert Settings(home=Path("x/../y")).home == tmp_path / "y"


def test_s3_inventory_locations_and_absolute_paths_are_kept_as_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = "s3://inventory-bucket/media/media/daily/"
    assert Settings.from_env({"MEDIA_PIPELINE_INVENTORY": url}).inventory_location == url
    assert Settings.from_env({"MEDIA_PIPELINE_HOME": "/srv/media"}).home == Path("/srv/media")


def test_home_with_a_tilde_is_the_users_home(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert absolute("~/catalog") == tmp_path / "catalog"


def _sources_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pages").mkdir()
    (folder / "pages" / "a.html").write_text('<img src="s3://media/site/a.png">')
    with sqlite3.connect(folder / "cms.sqlite") as db:
        db.execute("CREATE TABLE posts (id INTEGER, body TEXT)")
        db.execute("INSERT INTO posts VALUES (1, 's3://media/site/b.png')")
    path = folder / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {name: site, type: files, root: pages, content_type: webpage}\n"
        "  - name: cms\n"
        "    type: sql\n"
        "    url: sqlite:///cms.sqlite\n"
        "    table: posts\n"
        "    columns: {content_id: id, text: body}\n"
        "    content_type: blog_post\n",
        encoding="utf-8")
    return path


def test_paths_inside_the_sources_file_are_relative_to_its_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    _sources_file(conf)
    monkeypatch.chdir(tmp_path)  # the file named relatively, from its parent folder
    site, cms = load_sources(Path("conf/sources.yaml"))
    assert isinstance(site, FilesSource) and isinstance(cms, SqlSource)
    assert site.root == conf / "pages"
    # Read from a third folder: both sources still find their data.
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    assert [d.content_id for d in site.documents()] == ["a.html"]
    assert [(d.content_id, d.text) for d in cms.documents()] == [("1", "s3://media/site/b.png")]


def test_a_relative_sources_setting_and_its_relative_root_resolve_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's old bug: a relative root written into a file under a relative home was
    resolved twice (.media_pipeline/content/.media_pipeline/content/pages)."""
    from media_pipeline.references.sources.config import sources_from_settings

    home = tmp_path / ".media_pipeline" / "content"
    _sources_file(home)
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"MEDIA_PIPELINE_SOURCES": ".media_pipeline/content/"
                                                            "sources.yaml"})
    site = sources_from_settings(settings)[0]
    assert isinstance(site, FilesSource) and site.root == home / "pages"
    assert [d.content_id for d in site.documents()] == ["a.html"]


def test_absolute_and_special_sqlite_urls_are_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.sqlite"
    path = tmp_path / "s.yaml"
    path.write_text(
        "sources:\n"
        f"  - {{name: a, type: sql, url: 'sqlite:///{db}', query: 'SELECT 1 AS content_id, "
        "'''' AS text', content_type: x}\n"
        "  - {name: b, type: sql, url: 'sqlite://', query: 'SELECT 1 AS content_id, "
        "'''' AS text', content_type: x}\n",
        encoding="utf-8")
    a, b = load_sources(path)
    assert isinstance(a, SqlSource) and isinstance(b, SqlSource)
    assert a.url.database == str(db) and b.url.render_as_string() == "sqlite://"
