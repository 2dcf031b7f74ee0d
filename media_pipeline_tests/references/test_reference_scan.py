"""Every reference form, stored in real content (PostgreSQL, MariaDB, SQLite, files), scanned
end to end: sources YAML → scan engine → reference index → where each file is used.

Each backend is scanned once per module; each form is its own test case against that scan.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from media_pipeline.catalog import Catalog
from media_pipeline.records import media_id_for
from media_pipeline.references.index import SourceScanOutcome, scan_sources
from media_pipeline.settings import Settings
from media_pipeline.storage import ensure_bucket, make_client
from media_pipeline_tests.fixtures_db import *  # noqa: F403
from media_pipeline_tests.lifecycle_helpers import catalog_files

PUBLIC = "media.example.com"
CDN = "https://cdn.example.net/assets"


def forms(bucket: str, endpoint: str) -> dict[str, tuple[list[str], str]]:
    """form -> (the keys it refers to, the content that refers to them)."""
    shortcode_key = "site/shortcode.jpg"
    return {
        "public_url": (["site/public.jpg"], f'<img src="https://{PUBLIC}/site/public.jpg">'),
        "public_url_protocol_relative": (
            ["site/relative.jpg"], f'<img src="//{PUBLIC}/site/relative.jpg">'),
        "cdn_url": (["site/cdn.jpg"], f'<p><img src="{CDN}/site/cdn.jpg" alt=""></p>'),
        "s3_virtual_host": (
            ["site/vhost.jpg"], f"<img src='https://{bucket}.s3.amazonaws.com/site/vhost.jpg'>"),
        "s3_virtual_host_regional": (
            ["site/vhost-regional.jpg"],
            f'<img src="https://{bucket}.s3.eu-west-1.amazonaws.com/site/vhost-regional.jpg">'),
        "s3_path_style": (
            ["site/path.jpg"], f"see https://s3.amazonaws.com/{bucket}/site/path.jpg today"),
        "s3_path_style_regional": (
            ["site/path-regional.jpg"],
            f"<a href=\"https://s3.us-west-2.amazonaws.com/{bucket}/site/path-regional.jpg\">x</a>"),
        "s3_uri": (["site/uri.jpg"], f"backup at s3://{bucket}/site/uri.jpg\n"),
        "endpoint_url": (["site/endpoint.jpg"],
                         f'<img src="{endpoint.rstrip("/")}/{bucket}/site/endpoint.jpg">'),
        "signed_url": (
            ["site/signed.jpg"],
            f'<a href="https://{bucket}.s3.amazonaws.com/site/signed.jpg?X-Amz-Algorithm='
            'AWS4-HMAC-SHA256&amp;X-Amz-Expires=3600&amp;X-Amz-Signature=0abc">dl</a>'),
        "percent_space": (["site/summer holiday.jpg"],
                          f'<img src="https://{PUBLIC}/site/summer%20holiday.jpg">'),
        "percent_plus": (["site/a+b=c.jpg"], f'<img src="https://{PUBLIC}/site/a%2Bb%3Dc.jpg">'),
        "literal_plus": (["site/x+y.jpg"], f'<img src="https://{PUBLIC}/site/x+y.jpg">'),
        "percent_unicode": (["site/café crème.jpg"],
                            f'<img src="https://{PUBLIC}/site/caf%C3%A9%20cr%C3%A8me.jpg">'),
        "raw_unicode": (["site/写真.jpg"], f'<img src="https://{PUBLIC}/site/写真.jpg">'),
        "href": (["site/brochure.pdf"], f'<a href="https://{PUBLIC}/site/brochure.pdf">pdf</a>'),
        "srcset": (["site/srcset-480.jpg", "site/srcset-800.jpg"],
                   f'<img srcset="https://{PUBLIC}/site/srcset-480.jpg 480w, '
                   f'https://{PUBLIC}/site/srcset-800.jpg 800w">'),
        "css_url": (["site/bg.jpg"],
                    f"<div style=\"background-image: url('https://{PUBLIC}/site/bg.jpg')\"></div>"),
        "css_url_unquoted": (["site/bg2.jpg"],
                             f"<style>.a {{ background: url(https://{PUBLIC}/site/bg2.jpg) }}"
                             "</style>"),
        "markdown_image": (["site/md.jpg"], f'![a photo](https://{PUBLIC}/site/md.jpg "Title")'),
        "markdown_link": (["site/md-link.pdf"], f"Read [the report]({CDN}/site/md-link.pdf)."),
        "json_escaped_slashes": (
            ["site/json.jpg"],
            json.dumps({"hero": {"image": f"https://{PUBLIC}/site/json.jpg"}}).replace("/", "\\/")),
        "shortcode": ([shortcode_key], f'[media id="{media_id_for(bucket, shortcode_key)}"]'),
    }


NEGATIVES = (
    # Another bucket, look-alike hosts and a path that only resembles ours: never references.
    "https://other-bucket.s3.amazonaws.com/site/public.jpg "
    "https://media.example.com.evil.net/site/public.jpg "
    "https://evil-media.example.com/site/public.jpg s3://other-bucket/site/uri.jpg"
)
DANGLING = f"<img src='https://{PUBLIC}/site/not-in-the-bucket.jpg'>"
BACKENDS = ("sqlite", "postgres", "mariadb", "files")


def _write_table(url: str, rows: list[tuple[str, str]]) -> None:
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as con:
        con.exec_driver_sql("DROP TABLE IF EXISTS pages")
        con.exec_driver_sql("CREATE TABLE pages (id VARCHAR(64) PRIMARY KEY, body TEXT)")
        con.execute(sa.text("INSERT INTO pages (id, body) VALUES (:id, :body)"),
                    [{"id": i, "body": b} for i, b in rows])
    engine.dispose()


@pytest.fixture(scope="module")
def scanned(request: pytest.FixtureRequest, s3_endpoint: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """backend -> (settings, outcome) after one scan of content holding every form."""
    results: dict[str, Any] = {}

    def scan(backend: str) -> dict[str, Any]:
        if backend in results:
            return results[backend]
        root = tmp_path_factory.mktemp(f"refs-{backend}")
        settings = Settings(endpoint_url=s3_endpoint, access_key_id="testing",
                            secret_access_key="testing", bucket=f"refs-{uuid.uuid4().hex[:12]}",
                            home=root / "home", fingerprint_workers=4, custom_domain=PUBLIC,
                            cdn_base_urls=(CDN,))
        client = make_client(settings)
        ensure_bucket(client, settings.bucket, settings.region)
        cases = forms(settings.bucket, s3_endpoint)
        catalog_files(settings, client, sorted({k for keys, _ in cases.values() for k in keys}),
                      fingerprint=False)
        rows = [(form, text) for form, (_, text) in cases.items()]
        rows += [("negatives", NEGATIVES), ("dangling", DANGLING)]
        if backend == "files":
            pages = root / "pages"
            pages.mkdir()
            for content_id, text in rows:
                (pages / f"{content_id}.html").write_text(text, encoding="utf-8")
            source = {"type": "files", "root": str(pages), "globs": ["*.html"]}
        else:
            if backend == "sqlite":
                url = f"sqlite:///{root / 'cms.sqlite'}"
                sqlite3.connect(root / "cms.sqlite").close()
            else:
                url = request.getfixturevalue(
                    "postgres_url" if backend == "postgres" else "mysql_url")
            _write_table(url, rows)
            source = {"type": "sql", "url": url, "table": "pages",
                      "columns": {"content_id": "id", "text": ["body"]}}
        sources = root / "sources.yaml"
        sources.write_text(json.dumps(
            {"sources": [{"name": "content", "content_type": "page", **source}]}))
        settings = Settings(**{**settings.__dict__, "content_sources": sources})
        [outcome] = scan_sources(settings, workers=1)
        results[backend] = {"settings": settings, "outcome": outcome, "cases": cases}
        return results[backend]

    yield {"scan": scan}


def _content_id(backend: str, form: str) -> str:
    return f"{form}.html" if backend == "files" else form


def _references(settings: Settings, key: str) -> dict[str, list[str]]:
    with Catalog.open(settings.catalog_location) as catalog:
        return catalog.references.references_of(media_id_for(settings.bucket, key))


@pytest.mark.parametrize("form", sorted(forms("b", "http://e")))
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_reference_form_is_found(scanned: dict[str, Any], backend: str, form: str) -> None:
    result = scanned["scan"](backend)
    outcome: SourceScanOutcome = result["outcome"]
    assert outcome.ok, outcome.error
    keys, _ = result["cases"][form]
    for key in keys:
        assert _references(result["settings"], key) == {"page": [_content_id(backend, form)]}, key


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_buckets_and_lookalike_hosts_are_not_references(
        scanned: dict[str, Any], backend: str) -> None:
    result = scanned["scan"](backend)
    settings: Settings = result["settings"]
    with Catalog.open(settings.catalog_location) as catalog:
        rows = catalog.con.execute(
            "SELECT count(*) FROM media_references WHERE content_id = ?",
            [_content_id(backend, "negatives")]).fetchone()
    assert rows is not None and rows[0] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_keys_are_kept_as_dangling(scanned: dict[str, Any], backend: str) -> None:
    result = scanned["scan"](backend)
    settings: Settings = result["settings"]
    with Catalog.open(settings.catalog_location) as catalog:
        dangling = catalog.references.dangling_references(limit=100)
        counted = catalog.references.catalog_inconsistencies(limit=10)
    assert [(d["key"], d["content_id"]) for d in dangling] == [
        ("site/not-in-the-bucket.jpg", _content_id(backend, "dangling"))]
    assert counted == []  # reference_count/referenced_in derived in the same transaction
