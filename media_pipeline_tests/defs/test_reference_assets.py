"""The reference index through Dagster and a content source that fails halfway.

A real PostgreSQL source: the first scan succeeds; the second breaks off mid-stream (a row that
divides by zero). The old references must stay, the source must be stale, and a purge must
refuse and delete nothing — even though the content, had it been read, no longer uses a file.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from media_pipeline import lifecycle
from media_pipeline.catalog import Catalog
from media_pipeline.defs.execution import run_assets
from media_pipeline.library import MediaLibrary
from media_pipeline.records import media_id_for
from media_pipeline.references.index import scan_sources
from media_pipeline.settings import Settings
from media_pipeline_tests.fixtures_db import *  # noqa: F403
from media_pipeline_tests.fixtures_s3 import dagster_resources
from media_pipeline_tests.lifecycle_helpers import ADMIN, add_member, catalog_files, object_keys

PUBLIC = "media.example.com"
KEYS = ["site/used.jpg", "site/also-used.jpg", "site/unused.jpg"]


def _pages(url: str, rows: list[tuple[str, str, int]]) -> None:
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.begin() as con:
        con.exec_driver_sql("DROP TABLE IF EXISTS pages")
        con.exec_driver_sql("CREATE TABLE pages (id VARCHAR(32), body TEXT, ok INTEGER)")
        con.execute(sa.text("INSERT INTO pages VALUES (:id, :body, :ok)"),
                    [{"id": i, "body": b, "ok": ok} for i, b, ok in rows])
    engine.dispose()


def _sources(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "sources.yaml"
    # 1/ok fails on a row with ok = 0: the query breaks off after the rows before it.
    path.write_text(json.dumps({"sources": [{
        "name": "cms", "type": "sql", "url": url,
        "query": "SELECT 'webpage' AS content_type, id AS content_id, "
                 "body || repeat('', 1 / ok) AS text FROM pages",
    }]}))
    return path


@pytest.fixture
def setup(settings: Settings, s3_client: Any, postgres_url: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = Settings(**{**settings.__dict__, "custom_domain": PUBLIC,
                           "content_sources": _sources(tmp_path, postgres_url),
                           "retention_days": 0, "purge_max_share": 1.0})
    catalog_files(settings, s3_client, KEYS)
    _pages(postgres_url, [
        ("1", f'<img src="https://{PUBLIC}/site/used.jpg">', 1),
        ("2", f'<img srcset="https://{PUBLIC}/site/also-used.jpg 2x">', 1),
        ("3", f'<img src="https://{PUBLIC}/site/gone-missing.jpg">', 1),
    ])
    for name, value in {
        "AWS_S3_ENDPOINT_URL": settings.endpoint_url or "", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_STORAGE_BUCKET_NAME": settings.bucket,
        "MEDIA_PIPELINE_HOME": str(settings.home), "AWS_S3_CUSTOM_DOMAIN": PUBLIC,
        "MEDIA_PIPELINE_SOURCES": str(settings.content_sources),
        "MEDIA_PIPELINE_RETENTION_DAYS": "0", "MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    add_member(settings, "site", ADMIN, "admin")
    return settings


def _refs(settings: Settings, key: str) -> dict[str, list[str]]:
    with Catalog.open(settings.catalog_location) as catalog:
        return catalog.references.references_of(media_id_for(settings.bucket, key))


def test_reference_assets_index_the_source_and_checks_report_dangling(setup: Settings) -> None:
    run = run_assets(["content_sources", "references_cms", "reference_index"],
                     instance=dg.DagsterInstance.ephemeral(), resources=dagster_resources(setup))
    assert run.success, run.failure
    assert run.materialized["references_cms"]["documents"] == 3
    assert run.materialized["references_cms"]["dagster/row_count"] == 3
    assert run.materialized["reference_index"]["dangling"] == 1
    assert run.checks == {"reference_integrity": False, "catalog_consistency": True,
                          "content_sources_trusted": True}
    assert _refs(setup, "site/used.jpg") == {"webpage": ["1"]}
    assert _refs(setup, "site/unused.jpg") == {}


def test_a_source_failing_halfway_keeps_its_references_and_blocks_purge(
        setup: Settings, s3_client: Any, postgres_url: str) -> None:
    [first] = scan_sources(setup, workers=1)
    assert first.ok and first.documents == 3
    lib = MediaLibrary(setup, s3_client)
    unused = media_id_for(setup.bucket, "site/unused.jpg")
    assert lib.delete(unused, ADMIN) is True

    # The content stops using site/used.jpg, but the source breaks off before the end.
    _pages(postgres_url, [
        ("1", "<p>no pictures any more</p>", 1),
        ("2", f'<img srcset="https://{PUBLIC}/site/also-used.jpg 2x">', 1),
        ("3", "boom", 0),
    ])
    run = run_assets(["references_cms"], instance=dg.DagsterInstance.ephemeral(),
                     resources=dagster_resources(setup))
    assert not run.success
    assert "previous references are kept" in (run.failure or "")
    assert _refs(setup, "site/used.jpg") == {"webpage": ["1"]}  # old rows kept
    with Catalog.open(setup.catalog_location) as catalog:
        assert catalog.references.stale_sources(["cms"]) == ["cms"]

    later = datetime.now(UTC) + timedelta(days=1)
    report = lifecycle.purge(setup, s3_client, enabled_sources=["cms"], now=later)
    assert report.refused and "cms" in (report.refused_reason or "")
    assert report.purged == 0
    assert object_keys(s3_client, setup) >= set(KEYS)  # nothing deleted

    # Fixed: the source scans cleanly again (after the deletion), and only then may the
    # unused file go; the file the content still uses stays.
    # One document of three is a drop the drift guard stops until an admin accepts it.
    _pages(postgres_url, [("2", f'<img srcset="https://{PUBLIC}/site/also-used.jpg 2x">', 1)])
    [again] = scan_sources(setup, workers=1)
    assert again.ok and again.state == "suspect"
    assert lifecycle.purge(setup, s3_client, enabled_sources=["cms"], now=later).refused
    [again] = scan_sources(replace(setup, admins=frozenset({ADMIN})), workers=1,
                           accepted_by=ADMIN)
    assert again.ok and again.state == "accepted"
    report = lifecycle.purge(setup, s3_client, enabled_sources=["cms"], now=later)
    assert not report.refused, report.refused_reason
    assert report.purged == 1
    assert object_keys(s3_client, setup) == {"site/used.jpg", "site/also-used.jpg"}


def test_library_lifecycle_calls_raise_the_library_errors(setup: Settings, s3_client: Any
                                                          ) -> None:
    from media_pipeline.library import UnknownMedia

    lib = MediaLibrary(setup, s3_client)
    unknown = "00000000-0000-4000-8000-000000000000"
    for call in (lambda: lib.delete(unknown, ADMIN), lambda: lib.restore(unknown, ADMIN),
                 lambda: lib.get_references(unknown, ADMIN),
                 lambda: lib.add_reference(unknown, "webpage", "1", ADMIN)):
        with pytest.raises(UnknownMedia, match=unknown):
            call()
    with pytest.raises(lifecycle.UnknownMedia):  # the lifecycle's error catches it too
        lib.delete(unknown, ADMIN)
