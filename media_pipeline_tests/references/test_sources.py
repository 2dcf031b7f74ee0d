"""Content sources: real PostgreSQL, MariaDB and SQLite databases, real files, a real HTTP server.

Every failure mode a scan can meet (refused connections, errors mid-stream, vanished files,
5xx pages, looping links, garbage) must end in SourceError, never in a short, silent read.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from media_pipeline.references.document import Document
from media_pipeline.references.sources import (
    ContentSource,
    FilesSource,
    HttpSource,
    SourceConfigError,
    SourceError,
    SqlSource,
    load_sources,
    load_sources_text,
    sources_from_settings,
)
from media_pipeline.settings import Settings
from media_pipeline_tests.fixtures_db import *  # noqa: F403
from media_pipeline_tests.http_server import Request, Response, TestServer

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "pw-Sup3r-s3cret-9x"
BIG_ROWS = 50_000


def run(sql: str | list[str], url: str) -> None:
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        for statement in [sql] if isinstance(sql, str) else sql:
            connection.exec_driver_sql(statement)
    engine.dispose()


def with_password(url: str, password: str = PASSWORD) -> str:
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)


def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------------------------------
# SQL
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'content.db'}"


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each SQL test runs against SQLite, PostgreSQL and MariaDB."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def pages_table(url: str) -> str:
    """A table of pages with unicode, NULLs and an integer id; returns its name."""
    name = table_name()
    run([f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, kind VARCHAR(20), fmt VARCHAR(10), "
         f"body TEXT, excerpt TEXT)",
         f"INSERT INTO {name} VALUES (1, 'webpage', 'html', "
         f"'<img src=\"/media/a.png\">', 'résumé ☃')",
         f"INSERT INTO {name} VALUES (2, 'blog', NULL, NULL, 'only excerpt')",
         f"INSERT INTO {name} VALUES (3, 'webpage', 'markdown', NULL, NULL)",
         f"INSERT INTO {name} VALUES (4, NULL, NULL, 'no type', NULL)"], url)
    return name


def test_sql_query_mode_maps_columns_and_keeps_unicode_and_nulls(db_url: str) -> None:
    name = pages_table(db_url)
    source = SqlSource("cms", db_url, query=(
        f"SELECT kind AS content_type, id AS content_id, body AS text, fmt AS format "
        f"FROM {name} WHERE id < 4 ORDER BY id"))
    assert list(source.documents()) == [
        Document("webpage", "1", '<img src="/media/a.png">', "html"),
        Document("blog", "2", "", "auto"),
        Document("webpage", "3", "", "markdown"),
    ]


def test_sql_row_without_a_content_type_fails_the_source(db_url: str) -> None:
    name = pages_table(db_url)
    # Row 4 has no content_type and the source sets no default: it cannot be named in an
    # index, and skipping it would drop its references silently.
    source = SqlSource("cms", db_url, query=(
        f"SELECT kind AS content_type, id AS content_id, body AS text FROM {name} ORDER BY id"))
    with pytest.raises(SourceError, match=r"content source 'cms': row 4 \(content id '4'\) "
                                          "has no content_type"):
        list(source.documents())


@pytest.mark.parametrize("blank", ["NULL", "''"])
def test_sql_row_without_a_content_id_fails_the_source(db_url: str, blank: str) -> None:
    name = table_name()
    run([f"CREATE TABLE {name} (n INTEGER PRIMARY KEY, slug VARCHAR(20), body TEXT)",
         f"INSERT INTO {name} VALUES (1, 'home', 'https://cdn.example.com/a.png')",
         f"INSERT INTO {name} VALUES (2, {blank}, 'https://cdn.example.com/b.png')"], db_url)
    query = SqlSource("cms", db_url, content_type="page", query=(
        f"SELECT slug AS content_id, body AS text FROM {name} ORDER BY n"))
    with pytest.raises(SourceError, match=r"content source 'cms': row 2 has no content id "
                                          r"\(column 'content_id' is NULL or empty\)"):
        list(query.documents())
    table = SqlSource("pages", db_url, table=name, id_column="slug", text_columns=["body"],
                      content_type="page")
    with pytest.raises(SourceError, match=r"content source 'pages': row \d has no content id "
                                          r"\(column 'slug' is NULL or empty\)"):
        list(table.documents())


def test_sql_query_mode_uses_configured_content_type_when_the_query_has_none(
        db_url: str) -> None:
    name = pages_table(db_url)
    source = SqlSource("cms", db_url, content_type="page", format="html",
                       query=f"SELECT id AS content_id, excerpt AS text FROM {name} ORDER BY id")
    assert [(d.content_type, d.content_id, d.text, d.format) for d in source.documents()] == [
        ("page", "1", "résumé ☃", "html"), ("page", "2", "only excerpt", "html"),
        ("page", "3", "", "html"), ("page", "4", "", "html")]


def test_sql_table_mode_concatenates_text_columns_and_skips_nulls(db_url: str) -> None:
    name = pages_table(db_url)
    source = SqlSource("cms", db_url, table=name, id_column="id",
                       text_columns=["body", "excerpt"], content_type="webpage",
                       where="id < 4", format="html")
    documents = sorted(source.documents(), key=lambda d: d.content_id)
    assert documents == [
        Document("webpage", "1", '<img src="/media/a.png">\nrésumé ☃', "html"),
        Document("webpage", "2", "only excerpt", "html"),
        Document("webpage", "3", "", "html"),
    ]


def test_sql_table_mode_a_renamed_text_column_is_an_error_naming_it(db_url: str) -> None:
    name = pages_table(db_url)
    source = SqlSource("cms", db_url, table=name, id_column="id",
                       text_columns=["Body", "summary"], content_type="webpage")
    # "Body" matches body (any case); "summary" is not there: never read as empty text
    with pytest.raises(SourceError, match=f"column 'summary' not in table '{name}' "
                                          r"\(renamed\?\)"):
        list(source.documents())


def test_sql_query_is_taken_verbatim_colons_and_percent_signs_included(db_url: str) -> None:
    name = pages_table(db_url)
    source = SqlSource("cms", db_url, content_type="page", query=(
        f"SELECT id AS content_id, 'at 12:30 :name 100%' AS text FROM {name} "
        f"WHERE excerpt LIKE '%excerpt%'"))
    assert list(source.documents()) == [Document("page", "2", "at 12:30 :name 100%")]


def test_sql_query_without_the_required_columns_is_an_error(db_url: str) -> None:
    name = pages_table(db_url)
    source = SqlSource("cms", db_url, query=f"SELECT id, body FROM {name}")
    with pytest.raises(SourceError, match="missing content_type, content_id, text"):
        list(source.documents())


def test_sql_query_error_names_source_and_hides_password(postgres_url: str) -> None:
    source = SqlSource("cms", with_password(postgres_url), query="SELECT * FROM no_such_table")
    with pytest.raises(SourceError) as raised:
        list(source.documents())
    message = str(raised.value)
    assert "'cms'" in message and "no_such_table" in message and "***" in message
    assert PASSWORD not in message and PASSWORD not in source.describe()
    assert PASSWORD not in repr(source)


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_sql_connection_refused_is_a_source_error_without_password(scheme: str) -> None:
    source = SqlSource("cms", f"{scheme}://reader:{PASSWORD}@127.0.0.1:1/cms",
                       query="SELECT 1")
    with pytest.raises(SourceError) as raised:
        list(source.documents())
    message = str(raised.value)
    assert "'cms'" in message and "reader:***@127.0.0.1:1" in message
    assert PASSWORD not in message


def test_sql_wrong_password_is_refused_without_echoing_it(mysql_url: str) -> None:
    source = SqlSource("cms", with_password(mysql_url), query="SELECT 1")
    with pytest.raises(SourceError, match="Access denied") as raised:
        list(source.documents())
    assert PASSWORD not in str(raised.value)


def test_sql_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    source = SqlSource("cms", f"sqlite:///{path}", query="SELECT 1")
    with pytest.raises(SourceError, match="does not exist"):
        list(source.documents())
    assert not path.exists()


def test_sql_unknown_driver_is_a_source_error() -> None:
    source = SqlSource("cms", f"nosuchdb://u:{PASSWORD}@h/db", query="SELECT 1")
    with pytest.raises(SourceError, match="cannot use") as raised:
        list(source.documents())
    assert PASSWORD not in str(raised.value)


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_sql_scan_runs_in_a_read_only_transaction(backend: str,
                                                 request: pytest.FixtureRequest) -> None:
    url = str(request.getfixturevalue(f"{backend}_url"))
    name = table_name()
    run(f"CREATE TABLE {name} (id INTEGER)", url)
    writes = {
        # PostgreSQL streams through DECLARE CURSOR, which takes only a SELECT: a writing
        # function inside one is what read-only must stop.
        "postgres": f"CREATE SEQUENCE {name}_seq",
        "mysql": f"INSERT INTO {name} VALUES (1) RETURNING id AS content_id",
        "sqlite": f"INSERT INTO {name} VALUES (1) RETURNING id AS content_id",
    }
    if backend == "postgres":
        run(writes["postgres"], url)
        query = f"SELECT 'x' AS content_type, nextval('{name}_seq') AS content_id, '' AS text"
    else:
        query = writes[backend]
    source = SqlSource("cms", url, query=query, content_type="x")
    with pytest.raises(SourceError, match="(?i)read.only|readonly"):
        list(source.documents())
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        assert connection.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar() == 0
    engine.dispose()


@pytest.fixture(scope="module")
def big_postgres_table(postgres_url: str) -> str:
    name = table_name()
    run([f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, body TEXT)",
         f"INSERT INTO {name} SELECT g, repeat('x', 1000) || ' /media/' || g || '.png' "
         f"FROM generate_series(1, {BIG_ROWS}) AS g"], postgres_url)
    return name


@pytest.fixture(scope="module")
def big_mysql_table(mysql_url: str) -> str:
    name = table_name()
    run(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, body TEXT)", mysql_url)
    engine = sa.create_engine(mysql_url, poolclass=NullPool)
    table = sa.table(name, sa.column("id"), sa.column("body"))
    with engine.begin() as connection:
        for start in range(1, BIG_ROWS + 1, 10_000):
            connection.execute(sa.insert(table), [
                {"id": i, "body": "x" * 1000 + f" /media/{i}.png"}
                for i in range(start, min(start + 10_000, BIG_ROWS + 1))])
    engine.dispose()
    return name


class CursorSpy:
    """Records the DBAPI cursor class and execution options of every statement executed."""

    def __init__(self) -> None:
        self.executions: list[tuple[str, type, dict[str, Any]]] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                 executemany: bool) -> None:
        options = dict(context.execution_options) if context is not None else {}
        self.executions.append((statement, type(cursor), options))

    def __enter__(self) -> CursorSpy:
        event.listen(Engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(Engine, "before_cursor_execute", self)


@pytest.mark.parametrize("backend,cursor_class", [
    ("postgres", "psycopg.ServerCursor"), ("mysql", "pymysql.cursors.SSCursor")])
def test_sql_big_table_streams_through_a_server_side_cursor_in_bounded_memory(
        backend: str, cursor_class: str, request: pytest.FixtureRequest) -> None:
    url = str(request.getfixturevalue(f"{backend}_url"))
    name = str(request.getfixturevalue(f"big_{backend}_table"))
    source = SqlSource("big", url, table=name, id_column="id", text_columns=["body"],
                       content_type="webpage", batch_size=500)
    progress: list[int] = []
    count = 0
    ids: set[str] = set()
    process = psutil.Process()
    baseline = peak = process.memory_info().rss
    with CursorSpy() as spy:
        for document in source.documents(progress.append):
            count += 1
            ids.add(document.content_id)
            assert document.text.endswith(f"/media/{document.content_id}.png")
            if count % 1000 == 0:
                peak = max(peak, process.memory_info().rss)
    assert count == BIG_ROWS and len(ids) == BIG_ROWS
    # one streaming SELECT of the table (the column check reads the database's catalog)
    selects = [e for e in spy.executions if e[0].lstrip().upper().startswith("SELECT")
               and "pg_catalog" not in e[0]]
    assert len(selects) == 1
    _, cursor_type, options = selects[0]
    assert f"{cursor_type.__module__}.{cursor_type.__qualname__}" == cursor_class
    assert options["stream_results"] is True and options["yield_per"] == 500
    # The rows are ~50 MB; a buffered read grew this process by ~116 MB on PostgreSQL, a
    # streamed one by ~15 MB. (tracemalloc cannot tell: libpq buffers outside Python's heap.)
    growth = peak - baseline
    assert growth < 40 * 1024 * 1024, f"RSS grew {growth / 1e6:.1f} MB"
    assert progress[-1] == BIG_ROWS and progress == sorted(progress) and len(progress) > 10


def test_sql_failure_mid_stream_raises_after_partial_output(postgres_url: str,
                                                           big_postgres_table: str) -> None:
    source = SqlSource("big", postgres_url, batch_size=1000, query=(
        f"SELECT 'webpage' AS content_type, id AS content_id, "
        f"body || (1 / (id - 40000))::text AS text FROM {big_postgres_table}"))
    seen = 0
    with pytest.raises(SourceError, match="division by zero"):
        for _ in source.documents():
            seen += 1
    # The error arrived mid-stream, after earlier batches were already handed out.
    assert 0 < seen < BIG_ROWS


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------

def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    write(root / "index.html", '<img src="/media/a.png">')
    write(root / "webpage" / "12.html", "<p>page 12</p>")
    write(root / "blog" / "2024" / "post.md", "![x](/media/b.png)")
    write(root / "data" / "export.json", '{"image": "\\/media\\/c.png"}')
    write(root / "notes.txt", "plain")
    write(root / "deep" / "notes.txt", "deeper")
    write(root / "logo.png", b"\x89PNG")
    return root


def test_files_globs_select_files_and_formats_follow_extensions(site: Path) -> None:
    source = FilesSource("site", site, globs=["**/*.html", "**/*.md", "**/*.json", "*.txt"],
                         content_type="webpage")
    documents = {d.content_id: d for d in source.documents()}
    assert sorted(documents) == ["blog/2024/post.md", "data/export.json", "index.html",
                                 "notes.txt", "webpage/12.html"]
    assert {d.format for d in documents.values()} == {"html", "markdown", "json", "text"}
    assert documents["blog/2024/post.md"] == Document(
        "webpage", "blog/2024/post.md", "![x](/media/b.png)", "markdown")


def test_files_exclude_skips_files_and_whole_folders(site: Path) -> None:
    write(site / "node_modules" / "pkg" / "README.md", "vendored")
    source = FilesSource("site", site, globs=["**/*.html", "**/*.md", "**/*.txt"],
                         exclude=["node_modules/**", "**/notes.txt"], content_type="webpage")
    assert sorted(d.content_id for d in source.documents()) == [
        "blog/2024/post.md", "index.html", "webpage/12.html"]


def test_files_content_type_from_parent_dir(site: Path) -> None:
    source = FilesSource("site", site, globs=["**/*.html", "**/*.md"],
                         content_type_from="parent_dir", content_type="page")
    types = {d.content_id: d.content_type for d in source.documents()}
    assert types == {"index.html": "page", "webpage/12.html": "webpage",
                     "blog/2024/post.md": "2024"}


def test_files_undecodable_bytes_are_replaced_and_a_bom_dropped(tmp_path: Path) -> None:
    write(tmp_path / "bad.html", b"\xef\xbb\xbf<img src=\"/media/\xff\xfe.png\"> caf\xc3\xa9")
    [document] = FilesSource("site", tmp_path, content_type="webpage").documents()
    assert document.text == '<img src="/media/\ufffd\ufffd.png"> café'


def test_files_symlinks_leading_outside_the_root_are_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside / "secret.html", "outside the root")
    write(root / "inside.html", "inside")
    (root / "escape.html").symlink_to(outside / "secret.html")
    (root / "alias.html").symlink_to(root / "inside.html")
    (root / "dangling.html").symlink_to(root / "gone.html")
    documents = {d.content_id: d.text for d in FilesSource(
        "site", root, content_type="webpage").documents()}
    assert documents == {"alias.html": "inside", "inside.html": "inside"}


def test_files_symlinked_folders_inside_are_followed_outside_fail_the_scan(
        tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(outside / "dir" / "more.html", "outside too")
    write(root / "real" / "page.html", "in a real folder")
    write(root / "sub" / "x.html", "x")
    (root / "pages").symlink_to(root / "real", target_is_directory=True)  # inside: followed
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)    # a loop: walked once
    documents = {d.content_id: d.text for d in FilesSource(
        "site", root, content_type="webpage").documents()}
    # each real folder once; a folder reached by a link is still scanned
    assert set(documents.values()) == {"in a real folder", "x"}
    assert "pages/page.html" in documents

    (root / "escape_dir").symlink_to(outside / "dir", target_is_directory=True)
    with pytest.raises(SourceError, match="escape_dir is a symlinked folder leading outside"):
        list(FilesSource("site", root, content_type="webpage").documents())
    documents = {d.content_id: d.text for d in FilesSource(
        "site", root, content_type="webpage", follow_links="outside").documents()}
    assert documents["escape_dir/more.html"] == "outside too"
    config = tmp_path / "s.yaml"
    config.write_text(f"sources:\n  - {{name: s, type: files, root: {root}, "
                      "content_type: p, follow_links: outside}\n")
    [source] = load_sources(config)
    assert isinstance(source, FilesSource) and source.follow_links == "outside"


def test_files_named_pipes_are_skipped_not_read(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "a")
    os.mkfifo(tmp_path / "pipe.txt")  # reading it would block the scan forever
    source = FilesSource("site", tmp_path, content_type="note")
    assert [d.content_id for d in source.documents()] == ["a.txt"]


def test_files_missing_root_or_a_file_as_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        list(FilesSource("site", tmp_path / "nope", content_type="webpage").documents())
    write(tmp_path / "file.html", "x")
    with pytest.raises(SourceError, match="is not a directory"):
        list(FilesSource("site", tmp_path / "file.html", content_type="webpage").documents())


def test_files_vanishing_mid_scan_is_an_incomplete_scan(tmp_path: Path) -> None:
    for name in ("a.html", "b.html", "c.html"):
        write(tmp_path / name, name)
    documents = FilesSource("site", tmp_path, content_type="webpage").documents()
    assert next(documents).content_id == "a.html"
    (tmp_path / "b.html").unlink()
    with pytest.raises(SourceError, match=r"b\.html vanished"):
        list(documents)


def test_files_folder_vanishing_mid_scan_is_an_incomplete_scan(tmp_path: Path) -> None:
    write(tmp_path / "a" / "x.html", "x")
    write(tmp_path / "b" / "y.html", "y")
    documents = FilesSource("site", tmp_path, content_type="webpage").documents()
    assert next(documents).content_id == "a/x.html"
    shutil.rmtree(tmp_path / "b")
    with pytest.raises(SourceError, match="cannot list .*b"):
        list(documents)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_files_unreadable_folder_is_an_error_not_a_skip(tmp_path: Path) -> None:
    write(tmp_path / "locked" / "a.html", "x")
    (tmp_path / "locked").chmod(0)
    try:
        with pytest.raises(SourceError, match="cannot list"):
            list(FilesSource("site", tmp_path, content_type="webpage").documents())
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_files_over_the_size_limit_fail_closed(tmp_path: Path) -> None:
    write(tmp_path / "huge.html", "x" * 2000)
    source = FilesSource("site", tmp_path, content_type="webpage", max_file_bytes=1000)
    with pytest.raises(SourceError, match="huge.html is 2000 bytes"):
        list(source.documents())


# ------------------------------------------------------------------------------------------
# HTTP: a real server on 127.0.0.1
# ------------------------------------------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]


class Api:
    """A tiny JSON API whose behaviour each test sets with ``handler``; records every request."""

    def __init__(self) -> None:
        self.handler: Callable[[str, dict[str, list[str]], dict[str, str]], Reply] = \
            lambda path, query, headers: (404, {}, b"")
        self.server = TestServer(self._answer)
        self.url = self.server.url

    def _answer(self, request: Request) -> Response:
        parts = urlsplit(request.path)
        status, headers, body = self.handler(parts.path, parse_qs(parts.query),
                                             dict(request.headers))
        return Response(status, body, {"Content-Type": "application/json", **headers})

    @property
    def requests(self) -> list[str]:
        return [r.path for r in self.server.requests]

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    yield server
    server.close()


def ok(body: Any, **headers: str) -> Reply:
    return 200, headers, json.dumps(body).encode()


def item(i: int) -> dict[str, Any]:
    return {"id": i, "kind": "webpage" if i % 2 else "blog", "title": f"T{i}",
            "body": {"blocks": [{"image": f"/media/{i}.png"}]}}


def http_source(url: str, **options: Any) -> HttpSource:
    defaults: dict[str, Any] = {"items": "data.items", "id_field": "id",
                                "text_fields": ["title", "body"],
                                "content_type_field": "kind", "backoff": 0, "timeout": 5}
    return HttpSource("api", url, **{**defaults, **options})


def test_http_follows_next_urls_and_serializes_nested_fields(api: Api) -> None:
    def handler(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        if headers.get("Authorization") != "Bearer tok-123":
            return 401, {}, b"{}"
        page = int(query.get("page", ["1"])[0])
        # Relative next link, then an absolute one, then null.
        following = {1: "/pages?page=2", 2: f"{api.url}/pages?page=3", 3: None}[page]
        return ok({"data": {"items": [item(2 * page - 1), item(2 * page)]},
                   "links": {"next": following}})
    api.handler = handler
    source = http_source(f"{api.url}/pages", next="links.next",
                         headers={"Authorization": "Bearer tok-123"})
    documents = list(source.documents())
    assert [d.content_id for d in documents] == ["1", "2", "3", "4", "5", "6"]
    assert documents[0] == Document(
        "webpage", "1", 'T1\n{"blocks": [{"image": "/media/1.png"}]}', "auto")
    assert documents[1].content_type == "blog"
    assert len(api.requests) == 3


def test_http_follows_the_link_header(api: Api) -> None:
    def handler(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        page = int(query.get("p", ["1"])[0])
        link = {"Link": f'</items?p={page + 1}>; rel="next", </items?p=1>; rel="first"'} \
            if page < 3 else {}
        return ok([{"id": f"p{page}", "kind": "webpage", "title": "x", "body": None}], **link)
    api.handler = handler
    documents = list(http_source(f"{api.url}/items", items="", next="link").documents())
    assert [d.content_id for d in documents] == ["p1", "p2", "p3"]
    assert documents[0].text == "x"


def test_http_page_numbers_stop_on_an_empty_page_when_told_to(api: Api) -> None:
    def handler(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        page, size = int(query["page"][0]), int(query["per_page"][0])
        start = (page - 1) * size
        return ok({"data": {"items": [item(i) for i in range(start, min(start + size, 7))]}})
    api.handler = handler
    source = http_source(f"{api.url}/pages?lang=en", page_param="page",
                         page_size_param="per_page", page_size=3, end="empty_page")
    assert [d.content_id for d in source.documents()] == [str(i) for i in range(7)]
    assert [parse_qs(urlsplit(r).query)["page"] for r in api.requests] == [
        ["1"], ["2"], ["3"], ["4"]]
    assert all("lang=en" in r for r in api.requests)


def numbered_pages(empty: int | None = None, count: int = 3, total_items: int | None = None,
                   has_more: bool = False) -> Callable[..., Reply]:
    """Pages 1..count with one item each; page ``empty`` has none; each carries the end signals
    (``meta.pages``, ``meta.total``, ``meta.more``)."""
    def handler(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        n = int(query["page"][0])
        items = [] if n == empty or n > count else [item(n)]
        return ok({"data": {"items": items}, "meta": {
            "pages": count, "total": count if total_items is None else total_items,
            "more": has_more or n < count}})
    return handler


@pytest.mark.parametrize("signal", [{"total_pages": "meta.pages"}, {"has_more": "meta.more"},
                                    {"total": "meta.total"}])
def test_http_page_numbers_read_to_the_api_end_signal(api: Api, signal: dict[str, str]) -> None:
    api.handler = numbered_pages()
    source = http_source(f"{api.url}/p", page_param="page", **signal)
    assert [d.content_id for d in source.documents()] == ["1", "2", "3"]
    assert len(api.requests) == 3  # no extra request for an empty page


@pytest.mark.parametrize("signal", [{"total_pages": "meta.pages"}, {"has_more": "meta.more"},
                                    {"total": "meta.total"}])
def test_http_an_empty_page_before_the_end_is_a_failure(api: Api, signal: dict[str, str]) -> None:
    api.handler = numbered_pages(empty=2)
    source = http_source(f"{api.url}/p", page_param="page", **signal)
    with pytest.raises(SourceError, match="page 2 is empty but the API says there is more"):
        list(source.documents())


def test_http_an_empty_page_with_a_next_link_is_a_failure(api: Api) -> None:
    api.handler = lambda path, query, headers: ok(
        {"data": {"items": []}, "next": "/p2"} if path == "/p1" else
        {"data": {"items": [item(2)]}, "next": None})
    with pytest.raises(SourceError, match="page 1 is empty but links to a next page"):
        list(http_source(f"{api.url}/p1", next="next").documents())


def test_http_a_total_that_does_not_match_is_a_failure(api: Api) -> None:
    api.handler = numbered_pages(total_items=5, has_more=False)
    with pytest.raises(SourceError, match="read 3 items, the API says 5"):
        list(http_source(f"{api.url}/p", page_param="page", has_more="meta.more",
                         total="meta.total").documents())
    totals = iter([3, 4, 4])

    def changing(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        n = int(query["page"][0])
        return ok({"data": {"items": [item(n)]}, "meta": {"total": next(totals)}})
    api.handler = changing
    with pytest.raises(SourceError, match="the total changed from 3 to 4"):
        list(http_source(f"{api.url}/p", page_param="page", total="meta.total").documents())


def test_http_a_page_that_repeats_the_previous_one_is_a_failure(api: Api) -> None:
    api.handler = lambda path, query, headers: ok(
        {"data": {"items": [item(1)]}, "meta": {"more": True}})
    with pytest.raises(SourceError, match="page 2 repeats page 1"):
        list(http_source(f"{api.url}/p", page_param="page", has_more="meta.more").documents())


def test_http_the_page_limit_is_a_failure_not_the_end(api: Api) -> None:
    api.handler = numbered_pages(count=5)
    with pytest.raises(SourceError, match="more than max_pages"):
        list(http_source(f"{api.url}/p", page_param="page", total_pages="meta.pages",
                         max_pages=2).documents())


def test_http_a_missing_text_field_is_an_error_unless_optional(api: Api) -> None:
    api.handler = lambda path, query, headers: ok({"data": {"items": [
        {"id": 1, "kind": "blog", "title": "T", "content": "<img src='/media/1.png'>"}]}})
    with pytest.raises(SourceError, match=r"page 1, item 0 \(id 1\) has no text field 'body' "
                                          r"\(renamed\?\)"):
        list(http_source(f"{api.url}/p").documents())
    [document] = http_source(f"{api.url}/p", optional_text_fields=["body"]).documents()
    assert document.text == "T"
    api.handler = lambda path, query, headers: ok({"data": {"items": [
        {"id": 1, "kind": "blog", "title": "T", "body": None}]}})
    [document] = http_source(f"{api.url}/p").documents()  # null is empty text, not missing
    assert document.text == "T"


def test_http_end_signal_config_errors() -> None:
    base = ("sources:\n  - name: api\n    type: http\n    url: https://x\n    items: a\n"
            "    id_field: id\n    text_fields: [b]\n    content_type: x\n")
    errors = config_errors(base + "    page_param: p\n")
    assert any("field 'page_param': needs the API's end signal" in e for e in errors)
    errors = config_errors(base + "    has_more: more\n    end: sometimes\n")
    assert any("field 'has_more': needs 'page_param'" in e for e in errors)
    assert any("field 'end': must be one of empty_page" in e for e in errors)


def test_http_retries_503_and_429_then_succeeds(api: Api) -> None:
    replies = [(503, {"Retry-After": "0"}, b""), (429, {}, b""), ok({"data": {"items": [
        item(1)]}})]
    api.handler = lambda path, query, headers: replies.pop(0)
    assert [d.content_id for d in http_source(f"{api.url}/p", retries=3).documents()] == ["1"]
    assert len(api.requests) == 3


def test_http_failing_halfway_raises_after_the_earlier_pages(api: Api) -> None:
    def handler(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        page = int(query.get("page", ["1"])[0])
        if page == 3:
            return 500, {}, b"internal error"
        return ok({"data": {"items": [item(page)]}, "next": f"/p?page={page + 1}"})
    api.handler = handler
    seen: list[str] = []
    with pytest.raises(SourceError, match=r"page 3 .*HTTP 500 .*after 3 attempts"):
        for document in http_source(f"{api.url}/p", next="next", retries=2).documents():
            seen.append(document.content_id)
    assert seen == ["1", "2"]
    assert len(api.requests) == 2 + 3


@pytest.mark.parametrize("body,problem", [
    (b"<html>oops</html>", "is not JSON"),
    (b'{"data": {}}', "items path 'data.items' is missing"),
    (b'{"data": {"items": {"id": 1}}}', "is a dict, not a list"),
    (b'{"data": {"items": [42]}}', "item 0 is a int, not an object"),
    (b'{"data": {"items": [{"title": "no id"}]}}', "no usable id field 'id'"),
    (b'{"data": {"items": [{"id": "", "title": "empty id"}]}}', "no usable id field 'id'"),
])
def test_http_malformed_page_is_a_source_error(api: Api, body: bytes, problem: str) -> None:
    def handler(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        if "page" not in query:
            return ok({"data": {"items": [item(1)]}, "next": "/p?page=2"})
        return 200, {}, body
    api.handler = handler
    with pytest.raises(SourceError, match=problem):
        list(http_source(f"{api.url}/p", next="next").documents())


def test_http_page_over_max_page_bytes_is_an_error(api: Api) -> None:
    api.handler = lambda path, query, headers: ok(
        {"data": {"items": [{**item(1), "title": "x" * 5000}]}})
    with pytest.raises(SourceError, match=r"page 1 .* is over max_page_bytes \(4096\)"):
        list(http_source(f"{api.url}/p", max_page_bytes=4096).documents())
    assert len(list(http_source(f"{api.url}/p", max_page_bytes=6000).documents())) == 1


def test_http_looping_next_is_bounded(api: Api) -> None:
    api.handler = lambda path, query, headers: ok(
        {"data": {"items": [item(1)]}, "next": "/same"})
    with pytest.raises(SourceError, match="links back to a page already read"):
        list(http_source(f"{api.url}/same", next="next").documents())

    def endless(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        n = int(query.get("n", ["0"])[0])
        return ok({"data": {"items": [item(n)]}, "next": f"/more?n={n + 1}"})
    api.handler = endless
    with pytest.raises(SourceError, match=r"more than max_pages \(5\)"):
        list(http_source(f"{api.url}/more", next="next", max_pages=5).documents())


def test_http_connection_refused_after_retries() -> None:
    with socket.socket() as probe:  # a port that was just free and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceError, match="ConnectError after 2 attempts"):
        list(http_source(f"http://127.0.0.1:{port}/p", retries=1).documents())


def test_http_slow_server_times_out_and_is_retried(api: Api) -> None:
    def slow(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        time.sleep(1.0)
        return ok({"data": {"items": []}})
    api.handler = slow
    with pytest.raises(SourceError, match=r"no complete response within 0\.2 s \(timeout is "
                                          r"for the whole request\) after 2 attempts"):
        list(http_source(f"{api.url}/p", timeout=0.2, retries=1).documents())


def test_http_tokens_never_appear_in_errors_or_descriptions(api: Api) -> None:
    api.handler = lambda path, query, headers: (401, {}, b'{"error": "unauthorized"}')
    source = http_source(f"{api.url}/p?api_key=KEY-{PASSWORD}&lang=en",
                         headers={"Authorization": f"Bearer {PASSWORD}"})
    with pytest.raises(SourceError, match="HTTP 401") as raised:
        list(source.documents())
    for text in (str(raised.value), source.describe(), repr(source)):
        assert PASSWORD not in text
    assert "api_key=***" in str(raised.value) and "lang=en" in source.describe()
    assert len(api.requests) == 1  # a 401 is not retried


def test_http_error_text_quoting_a_bare_token_is_scrubbed(api: Api) -> None:
    api.handler = lambda path, query, headers: ok({"data": {"items": [item(1)]}, "next": 5})
    source = http_source(f"{api.url}/p", next="next",
                         headers={"Authorization": f"Bearer {PASSWORD}"})
    assert list(source._secrets()) == [f"Bearer {PASSWORD}", PASSWORD]
    with pytest.raises(SourceError, match="next path 'next' is not a URL string"):
        list(source.documents())


def test_http_content_type_fixed_and_id_path(api: Api) -> None:
    api.handler = lambda path, query, headers: ok(
        {"results": [{"meta": {"id": 7}, "html": "<img src='/media/x.png'>", "n": 3}]})
    source = HttpSource("api", f"{api.url}/", items="results", id_field="meta.id",
                        text_fields=["html", "n", "missing"], content_type="product",
                        format="html", optional_text_fields=["missing"])
    assert list(source.documents()) == [
        Document("product", "7", "<img src='/media/x.png'>\n3", "html")]


# ------------------------------------------------------------------------------------------
# Progress, disabled sources, unexpected errors
# ------------------------------------------------------------------------------------------

class Exploding(ContentSource):
    """A source whose underlying library fails in a way no source anticipated."""

    kind = "test"

    def describe(self) -> str:
        return "test"

    def _secrets(self) -> list[str]:
        return [PASSWORD]

    def _documents(self) -> Iterator[Document]:
        yield Document("webpage", "1", "")
        raise RuntimeError(f"driver said: password={PASSWORD}")


def test_unexpected_errors_become_source_errors_with_secrets_scrubbed() -> None:
    documents = Exploding("odd").documents()
    assert next(documents).content_id == "1"
    with pytest.raises(SourceError, match=r"'odd': failed after 1 documents: RuntimeError") \
            as raised:
        next(documents)
    assert PASSWORD not in str(raised.value) and "password=***" in str(raised.value)


def test_source_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(SourceError("cms", "HTTP 500")))
    assert (error.source, error.reason, str(error)) == (
        "cms", "HTTP 500", "content source 'cms': HTTP 500")


def test_disabled_source_refuses_to_scan(tmp_path: Path) -> None:
    source = FilesSource("site", tmp_path, content_type="webpage", enabled=False)
    with pytest.raises(SourceError, match="disabled"):
        list(source.documents())


def test_progress_reports_running_totals_and_the_final_count(tmp_path: Path) -> None:
    for i in range(1203):
        write(tmp_path / f"{i:05}.txt", str(i))
    progress: list[int] = []
    documents = list(FilesSource("site", tmp_path, content_type="note").documents(
        progress.append))
    assert len(documents) == 1203 and progress == [500, 1000, 1203]


# ------------------------------------------------------------------------------------------
# The YAML file
# ------------------------------------------------------------------------------------------

FULL_CONFIG = """\
version: 1
sources:
  - name: cms-pages
    type: sql
    url: postgresql+psycopg://reader:${DB_PASSWORD}@db.internal/cms
    table: pages
    schema: public
    columns: {content_id: id, text: [body, excerpt]}
    content_type: webpage
    where: "status = 'published'"
    format: html
    batch_size: 200
  - name: cms-blocks
    type: sql
    url: sqlite:///${DATA_DIR:-/var/data}/cms.db
    query: SELECT kind AS content_type, id AS content_id, json AS text FROM blocks
  - name: site
    type: files
    root: exported-site
    globs: ["**/*.html", "**/*.md"]
    content_type_from: parent_dir
    content_type: page
  - name: headless
    type: http
    url: https://cms.example.com/api/pages?per_page=50
    headers: {Authorization: "Bearer ${CMS_TOKEN}", X-Literal: "$${NOT_A_VAR}"}
    items: data.items
    id_field: id
    text_fields: [title, body]
    content_type_field: type
    next: links.next
    max_pages: 1000
    max_page_bytes: 1000000
    retries: 5
    timeout: 10
  - name: old-api
    type: http
    enabled: false
    url: https://old.example.com/items
    headers: {Authorization: "Token ${OLD_TOKEN}"}
    items: ""
    id_field: id
    text_fields: body
    content_type: webpage
    page_param: page
    end: empty_page
    page_size_param: size
    page_size: 20
"""
ENV = {"DB_PASSWORD": PASSWORD, "CMS_TOKEN": "tok-abc"}


def test_config_builds_every_source_type(tmp_path: Path) -> None:
    path = write(tmp_path / "conf" / "sources.yaml", FULL_CONFIG)
    sources = load_sources(path, env=ENV)
    assert [(s.name, s.kind, s.enabled) for s in sources] == [
        ("cms-pages", "sql", True), ("cms-blocks", "sql", True), ("site", "files", True),
        ("headless", "http", True), ("old-api", "http", False)]
    pages, blocks, site, headless, old = sources
    assert isinstance(pages, SqlSource) and isinstance(blocks, SqlSource)
    assert pages.url.render_as_string(hide_password=False) == (
        f"postgresql+psycopg://reader:{PASSWORD}@db.internal/cms")
    assert (pages.table, pages.schema, pages.id_column, pages.text_columns, pages.where,
            pages.batch_size, pages.format) == ("pages", "public", "id", ("body", "excerpt"),
                                                "status = 'published'", 200, "html")
    assert blocks.url.render_as_string() == "sqlite:////var/data/cms.db"
    assert isinstance(site, FilesSource)
    assert site.root == tmp_path / "conf" / "exported-site"
    assert site.content_type_from == "parent_dir" and site.globs == ("**/*.html", "**/*.md")
    assert isinstance(headless, HttpSource)
    assert headless.headers == {"Authorization": "Bearer tok-abc", "X-Literal": "${NOT_A_VAR}"}
    assert (headless.next, headless.max_pages, headless.retries, headless.timeout,
            headless.max_page_bytes) == ("links.next", 1000, 5, 10.0, 1_000_000)
    assert isinstance(old, HttpSource)
    # A disabled source may leave its variables unset; it is listed, never scanned.
    assert old.text_fields == ("body",) and old.page_param == "page" and old.items == ""
    for source in sources:
        assert PASSWORD not in source.describe() and "tok-abc" not in repr(source)
    assert "reader:***@db.internal" in pages.describe()


def test_config_from_settings_and_the_shipped_example(tmp_path: Path) -> None:
    assert sources_from_settings(Settings(content_sources=None)) == []
    example = REPO / "examples" / "sources.yaml"
    env = {"CMS_DB_PASSWORD": "x", "CMS_API_TOKEN": "y", "MYSQL_PASSWORD": "z"}
    sources = load_sources(example, env=env)
    assert {s.kind for s in sources} == {"sql", "files", "http"}
    path = write(tmp_path / "s.yaml", FULL_CONFIG)
    settings = Settings(content_sources=path)
    os_env = {**os.environ, **ENV}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "environ", os_env)
        assert len(sources_from_settings(settings)) == 5


def config_errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SourceConfigError) as raised:
        load_sources_text(text, "conf/sources.yaml", env=env or {})
    assert str(raised.value) == "\n".join(raised.value.errors)
    return raised.value.errors


FILES = "type: files\n    root: /srv\n    content_type: page"


@pytest.mark.parametrize("text,expected", [
    (f"sources:\n  - name: site\n    {FILES}\n    glob: '*.html'",
     "conf/sources.yaml: source 'site' (#1): field 'glob': unknown field"),
    ("sources:\n  - name: site\n    type: files\n    content_type: page",
     "conf/sources.yaml: source 'site' (#1): field 'root': is required"),
    (f"sources:\n  - name: site\n    {FILES}\n    max_file_bytes: big",
     "source 'site' (#1): field 'max_file_bytes': must be an integer, got a string"),
    (f"sources:\n  - name: site\n    {FILES}\n    enabled: 'no'",
     "field 'enabled': must be true or false, got a string"),
    (f"sources:\n  - name: site\n    {FILES}\n    max_file_bytes: true",
     "field 'max_file_bytes': must be an integer, got true or false"),
    (f"sources:\n  - name: a\n    {FILES}\n  - name: a\n    {FILES}",
     "source 'a' (#2): field 'name': duplicate name: source #1 is also called 'a'"),
    ("sources:\n  - name: ftp\n    type: ftp",
     "source 'ftp' (#1): field 'type': unknown type 'ftp'; known types: sql, files, http"),
    ("sources:\n  - {type: files, root: /srv, content_type: page}",
     "source #1: field 'name': is required"),
    ("sources:\n  - name: db\n    type: sql\n    url: 'postgresql://u:${PW}@h/db'\n"
     "    query: SELECT 1", "source 'db' (#1): environment variable(s) not set: PW"),
    ("sources:\n  - name: db\n    type: sql\n    url: sqlite://\n    table: pages",
     "field 'columns': is required with 'table'"),
    ("sources:\n  - name: db\n    type: sql\n    url: sqlite://\n    table: t\n"
     "    query: SELECT 1\n    columns: {content_id: id, text: b}\n    content_type: x",
     "give 'query' or 'table', not both"),
    ("sources:\n  - name: db\n    type: sql\n    url: sqlite://\n    table: t\n"
     "    columns: {id: id, text: b}\n    content_type: x",
     "field 'columns': field 'id': unknown field"),
    ("sources:\n  - name: db\n    type: sql\n    url: 'not a url'\n    query: SELECT 1",
     "field 'url': is not a database URL"),
    ("sources:\n  - name: api\n    type: http\n    url: ftp://x\n    items: a\n"
     "    id_field: id\n    text_fields: [b]\n    content_type: x",
     "field 'url': must be an http:// or https:// URL"),
    ("sources:\n  - name: api\n    type: http\n    url: https://x\n    items: a\n"
     "    id_field: id\n    text_fields: []\n    content_type: x\n    next: n\n"
     "    page_param: p", "field 'text_fields': must be a non-empty list"),
    ("sources:\n  - name: api\n    type: http\n    url: https://x\n    items: a\n"
     "    id_field: id\n    text_fields: [b]\n    next: n\n    page_param: p",
     "give 'next' or 'page_param', not both"),
    ("sources:\n  - name: db\n    type: sql\n    url: sqlite://\n    query: SELECT 1\n"
     "    format: pdf", "source 'db' (#1): field 'format': must be one of auto, html"),
    (f"sources:\n  - name: site\n    {FILES}\n  - name: site\n    {FILES}\n    root: /x",
     "duplicate key 'root'"),
    ("sources:\n  - name: site\n    type: files\n    root: [unclosed",
     "conf/sources.yaml: invalid YAML at line"),
    ("", "conf/sources.yaml: expected a mapping with a 'sources:' list, got an empty file"),
    ("- name: site", "expected a mapping with a 'sources:' list, got a list"),
    ("version: 2\nsources: []", "field 'version': must be 1"),
    ("source: []", "field 'sources': is required"),
    (f"sources:\n  - name: bad name!\n    {FILES}", "field 'name': may hold letters"),
    ("sources:\n  - name: s\n    type: sql\n    url: 'sqlite:///${}'\n    query: SELECT 1",
     "'${}' is not a valid ${NAME} reference"),
])
def test_config_errors_name_file_source_and_field(text: str, expected: str) -> None:
    errors = config_errors(text)
    assert any(expected in e for e in errors), errors


def test_config_reports_every_problem_at_once_and_never_echoes_secrets() -> None:
    text = ("sources:\n"
            "  - name: db\n    type: sql\n    url: '${BAD_URL}'\n    query: SELECT 1\n"
            "  - name: site\n    type: files\n    root: 3\n    content_type: page\n"
            "  - name: api\n    type: http\n    url: https://x\n")
    errors = config_errors(text, env={"BAD_URL": f"::{PASSWORD}::"})
    assert len(errors) >= 5  # the url, the root and api's three missing fields
    assert any("'db' (#1): field 'url'" in e for e in errors)
    assert any("'site' (#2): field 'root': must be a string, got an integer" in e
               for e in errors)
    assert any("'api' (#3): field 'items': is required" in e for e in errors)
    assert all(PASSWORD not in e for e in errors)


def test_config_disabled_source_may_take_its_whole_url_from_an_unset_variable() -> None:
    text = ("sources:\n  - name: db\n    type: sql\n    enabled: false\n    url: '${CMS_URL}'\n"
            "    query: SELECT 1\n  - name: cms-api\n    type: http\n    enabled: false\n"
            "    url: '${API_URL}'\n    items: a\n    id_field: id\n    text_fields: [b]\n"
            "    content_type: x\n")
    sources = load_sources_text(text, "s.yaml", env={})
    assert [(s.name, s.enabled) for s in sources] == [("db", False), ("cms-api", False)]
    errors = config_errors(text.replace("enabled: false", "enabled: true"))
    assert any("'db' (#1): environment variable(s) not set: CMS_URL" in e for e in errors)
    assert any("'cms-api' (#2): environment variable(s) not set: API_URL" in e for e in errors)


def test_config_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match=r"nope\.yaml: cannot read the sources file"):
        load_sources(tmp_path / "nope.yaml")
