"""A deletion is stamped (``deleted_at``) when its transaction body runs, but other processes see
it only when it commits, which may be many seconds later (its COMMIT waits while another writer
holds the metadata database: on PostgreSQL a lock on ``ducklake_snapshot`` held 15 s delayed a
CLI ``delete`` by 15 s). A scan that starts in between counts as "started after the deletion",
yet it loaded the soft-deleted keys it looks for (mentions) before the deletion committed, so it
never looked for this file. The purge then takes a file a page still mentions.

Reproduced through the CLI by /work/wt31/hostile31/repro_mention_window.sh (PostgreSQL
metadata, a psql session holding the lock); here the late commit is modelled by a deletion
whose ``now`` is earlier than the scan that ran before it committed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from media_pipeline.catalog import Catalog
from media_pipeline.lifecycle import delete, purge
from media_pipeline.references.document import Document
from media_pipeline.references.index import scan_source
from media_pipeline.settings import Settings
from media_pipeline_tests.lifecycle.test_lifecycle_properties import ListSource
from media_pipeline_tests.lifecycle_helpers import ADMIN, catalog_files, object_keys


@pytest.mark.xfail(strict=True, reason="hostile31: the purge trusts deleted_at, not the "
                   "deletion's commit, to know that a scan looked for the file's mentions")
def test_a_scan_that_read_the_catalog_before_the_deletion_committed_does_not_vouch_for_it(
        settings: Settings, s3_client: Any) -> None:
    s = replace(settings, admins=frozenset({ADMIN}))
    ids = catalog_files(s, s3_client, ["blog/x.txt", "blog/y.txt"])
    docs = [Document("webpage", "1", "<p>We talked about blog/x.txt yesterday</p>", "html"),
            Document("webpage", "2", f'<img src="s3://{s.bucket}/blog/y.txt">', "html")]
    body_ran = datetime.now(UTC)  # when the delete's transaction body stamped deleted_at
    assert scan_source(s, ListSource(docs), workers=1,
                       started=body_ran - timedelta(minutes=5)).state == "trusted"
    # this scan starts after deleted_at and reads the catalog while the delete still waits
    assert scan_source(s, ListSource(docs), workers=1,
                       started=body_ran + timedelta(seconds=1)).state == "trusted"
    with Catalog.open(s.catalog_location) as catalog:  # ... and now the deletion commits
        assert delete(catalog, s, ids["blog/x.txt"], ADMIN, now=body_ran).deleted
    purge(s, s3_client, enabled_sources=["cms"], retention_days=0,
          now=body_ran + timedelta(minutes=2))
    assert "blog/x.txt" in object_keys(s3_client, s), "a mentioned file was purged"
