"""One catalog, two buckets (the pipeline run once with AWS_STORAGE_BUCKET_NAME=A, once with B:
nothing refused it, and media_files, inventory_runs and the purge's S3 calls are per bucket).
A scan looks for the mentions of the configured bucket's soft-deleted keys only
(``mention_keys(settings.bucket)``), but ``source_scans`` does not say which bucket a scan
looked for, and the purge takes candidates of every bucket: a scan run for B counts as "every
source scanned since the deletion" of A's file, and the purge deletes a file a page mentions.

Reproduced through the CLI in a hostile review (AWS_STORAGE_BUCKET_NAME switched between runs).
A scan of a catalog that holds objects of another bucket now fails (the source is stale, purges
refuse) and says why.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from media_pipeline.catalog import Catalog
from media_pipeline.lifecycle import delete, purge
from media_pipeline.references.document import Document
from media_pipeline.references.index import scan_source
from media_pipeline.settings import Settings
from media_pipeline.storage import ensure_bucket
from media_pipeline_tests.lifecycle.test_lifecycle_properties import ListSource
from media_pipeline_tests.lifecycle_helpers import ADMIN, catalog_files, object_keys


def test_a_scan_for_another_bucket_does_not_vouch_for_a_mentioned_file(
        settings: Settings, s3_client: Any) -> None:
    a = replace(settings, admins=frozenset({ADMIN}))
    b = replace(a, bucket=f"other-{uuid.uuid4().hex[:12]}")
    ensure_bucket(s3_client, b.bucket, b.region)
    ids = catalog_files(a, s3_client, ["blog/x.txt", "blog/y.txt"])
    docs = [Document("webpage", "1", "<p>We talked about blog/x.txt yesterday</p>", "html"),
            Document("webpage", "2", f'<img src="s3://{a.bucket}/blog/y.txt"> '
                                     f'<img src="s3://{b.bucket}/blog/q.txt">', "html")]
    now = datetime.now(UTC)
    assert scan_source(a, ListSource(docs), workers=1,
                       started=now - timedelta(minutes=5)).state == "trusted"
    with Catalog.open(a.catalog_location) as catalog:
        assert delete(catalog, a, ids["blog/x.txt"], ADMIN,
                      now=now - timedelta(minutes=4)).deleted
    catalog_files(b, s3_client, ["blog/q.txt"])  # the same catalog now lists bucket B too
    for bucket in (b, a):  # a scan for either bucket is refused, and says why
        outcome = scan_source(bucket, ListSource(docs), workers=1,
                              started=now - timedelta(minutes=3))
        assert outcome.state == "failed" and "a catalog serves one bucket" in str(outcome.error)
    for bucket in (b, a):
        report = purge(bucket, s3_client, enabled_sources=["cms"], retention_days=0, now=now)
        assert report.refused and report.purged == 0, report
    assert "blog/x.txt" in object_keys(s3_client, a), "a mentioned file was purged"
    with Catalog.open(a.catalog_location) as catalog:  # the references of A were kept
        state = catalog.lifecycle.media_state(ids["blog/y.txt"])
        assert state is not None and state["reference_count"] == 1
