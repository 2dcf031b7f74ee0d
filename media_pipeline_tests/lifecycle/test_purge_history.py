"""A real purge records the catalog snapshot it decided on, and why-purged answers from it.

Until the catalog is a DuckLake (issue 13's port of ``Catalog``) there are no snapshots: the
test skips, saying so."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from media_pipeline.catalog import history, open_catalog
from media_pipeline.lifecycle import delete, purge
from media_pipeline.settings import Settings
from media_pipeline_tests.lifecycle_helpers import ADMIN, catalog_files, key_ref, scan

DELETED = datetime(2026, 1, 10, tzinfo=UTC)
LATER = DELETED + timedelta(days=31)


def test_a_purge_records_its_snapshot_and_why_purged_explains(settings: Settings,
                                                              s3_client: Any) -> None:
    s = replace(settings, admins=frozenset({ADMIN}), purge_max_share=1.0)
    ids = catalog_files(s, s3_client, ["blog/old.txt", "blog/used.txt"])
    old = ids["blog/old.txt"]
    with open_catalog(s) as catalog:
        if not history.is_lake(catalog.con):
            pytest.skip("the catalog is not a DuckLake yet (issue 13's port): no snapshots")
        assert delete(catalog, s, old, ADMIN, now=DELETED)
    scan(s, "cms", [key_ref(s, "webpage", "1", "blog/used.txt")], started=LATER)
    report = purge(s, s3_client, enabled_sources=["cms"], now=LATER)
    assert report.ok and report.purged == 1
    with open_catalog(s) as catalog:
        recorded = catalog.con.execute("SELECT purge_id, snapshot_id FROM purge_snapshots"
                                       ).fetchall()
    assert [r[0] for r in recorded] == [report.purge_id]
    found = history.explain_purge(s.catalog_location, old)
    assert found.snapshot_id == recorded[0][1]
    assert found.file is not None and found.file["deleted_by"] == ADMIN
    assert found.references == [] and [x["source"] for x in found.scans] == ["cms"]
    assert [a["action"] for a in found.audit][-1] == "purge"
