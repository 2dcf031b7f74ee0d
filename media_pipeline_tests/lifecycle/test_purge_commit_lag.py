"""A deletion is stamped (``deleted_at``) when its transaction body runs, but other processes see
it only when it commits, which may be many seconds later (its COMMIT waits while another writer
holds the metadata database: on PostgreSQL a lock on ``ducklake_snapshot`` held 15 s delayed a
CLI ``delete`` by 15 s). A scan that starts in between counts as "started after the deletion",
yet it loaded the soft-deleted keys it looks for (mentions) before the deletion committed, so it
never looked for this file. The purge then takes a file a page still mentions.

Reproduced through the CLI in a hostile review (PostgreSQL metadata, a psql
session holding the lock); here the late commit is modelled by a deletion whose ``now`` is
earlier than the scan that ran before it committed. Each scan now records the newest deletion
fact it had seen when it read the keys (``source_scans.deletions_seen``, migration 7); a purge
takes only files whose newest fact every source's latest trusted scan had seen.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from media_pipeline.catalog import Catalog
from media_pipeline.lifecycle import delete, purge
from media_pipeline.references.document import Document
from media_pipeline.references.index import scan_source
from media_pipeline.settings import Settings
from media_pipeline_tests.lifecycle.test_lifecycle_properties import ListSource
from media_pipeline_tests.lifecycle_helpers import ADMIN, catalog_files, object_keys


def test_a_scan_that_read_the_catalog_before_the_deletion_committed_does_not_vouch_for_it(
        settings: Settings, s3_client: Any) -> None:
    s = replace(settings, admins=frozenset({ADMIN}))
    ids = catalog_files(s, s3_client, ["blog/x.txt", "blog/y.txt", "blog/z.txt"])
    mentioned = Document("webpage", "1", "<p>We talked about blog/x.txt yesterday</p>", "html")
    other = Document("webpage", "2", f'<img src="s3://{s.bucket}/blog/y.txt">', "html")
    body_ran = datetime.now(UTC)  # when the delete's transaction body stamped deleted_at
    assert scan_source(s, ListSource([mentioned, other]), workers=1,
                       started=body_ran - timedelta(minutes=5)).state == "trusted"
    with Catalog.open(s.catalog_location) as catalog:  # committed before the next scan reads
        assert delete(catalog, s, ids["blog/z.txt"], ADMIN,
                      now=body_ran - timedelta(minutes=1)).deleted
    # this scan starts after deleted_at and reads the catalog while the delete still waits
    assert scan_source(s, ListSource([mentioned, other]), workers=1,
                       started=body_ran + timedelta(seconds=1)).state == "trusted"
    with Catalog.open(s.catalog_location) as catalog:  # ... and now the deletion commits
        assert delete(catalog, s, ids["blog/x.txt"], ADMIN, now=body_ran).deleted
    report = purge(s, s3_client, enabled_sources=["cms"], retention_days=0,
                   now=body_ran + timedelta(minutes=2))
    assert report.purged == 1 and not report.refused, report
    assert object_keys(s3_client, s) == {"blog/x.txt", "blog/y.txt"}, "a mentioned file was purged"
    # a scan that read the keys after the deletion committed looks for x: the page keeps it
    assert scan_source(s, ListSource([mentioned, other]), workers=1,
                       started=body_ran + timedelta(minutes=3)).state == "trusted"
    purge(s, s3_client, enabled_sources=["cms"], retention_days=0,
          now=body_ran + timedelta(minutes=4))
    assert "blog/x.txt" in object_keys(s3_client, s)
    # once the page no longer mentions it, the next scan vouches for it and the purge takes it
    unmentioned = Document("webpage", "1", "<p>We talked about it yesterday</p>", "html")
    assert scan_source(s, ListSource([unmentioned, other]), workers=1,
                       started=body_ran + timedelta(minutes=5)).state == "trusted"
    report = purge(s, s3_client, enabled_sources=["cms"], retention_days=0,
                   now=body_ran + timedelta(minutes=6))
    assert report.purged == 1 and object_keys(s3_client, s) == {"blog/y.txt"}, report
