"""A purge SIGKILLed at any step is finished by the next run, and nothing referenced is lost.

The purge runs in a child process (media_pipeline_tests/purge_crash_child.py) against the same
moto server and catalog file; it kills itself right after its K-th step, for every K.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from media_pipeline.catalog import Catalog
from media_pipeline.lifecycle import LifecycleError, delete, purge, restore
from media_pipeline.settings import Settings
from media_pipeline_tests.lifecycle_helpers import (
    ADMIN,
    catalog_files,
    key_ref,
    object_keys,
    scan,
)

DELETED = datetime(2026, 1, 10, tzinfo=UTC)
NOW = DELETED + timedelta(days=40)
ELIGIBLE = [f"a/{i}.txt" for i in range(4)]
# settled, marked, 2 batches x (batch_checked, s3_deleted, catalog_updated), finished
STEPS = 9


def _world(s: Settings, client: Any) -> dict[str, str]:
    ids = catalog_files(s, client, [*ELIGIBLE, "a/used.txt", "a/live.txt", "a/recent.txt"],
                        fingerprint=False)
    scan(s, "cms", [key_ref(s, "webpage", "1", "a/used.txt")], started=DELETED)
    with Catalog.open(s.catalog_location) as catalog:
        for key in ELIGIBLE:
            delete(catalog, s, ids[key], ADMIN, now=DELETED)
        delete(catalog, s, ids["a/used.txt"], ADMIN, force=True, now=DELETED)
        delete(catalog, s, ids["a/recent.txt"], ADMIN, now=NOW - timedelta(days=1))
    scan(s, "cms", [key_ref(s, "webpage", "1", "a/used.txt")], started=NOW)
    return ids


def _child(s: Settings, kill_at: int) -> subprocess.CompletedProcess[str]:
    fields = {"endpoint_url": s.endpoint_url, "access_key_id": s.access_key_id,
              "secret_access_key": s.secret_access_key, "bucket": s.bucket,
              "home": str(s.home), "purge_max_share": 1.0, "purge_versions": s.purge_versions}
    args = {"settings": fields, "kill_at": kill_at, "sources": ["cms"], "now": NOW.isoformat(),
            "batch_size": 2}
    return subprocess.run(
        [sys.executable, "-m", "media_pipeline_tests.purge_crash_child", json.dumps(args)],
        capture_output=True, text=True, timeout=120, check=False)


def _assert_consistent(s: Settings, client: Any, ids: dict[str, str]) -> None:
    present = object_keys(client, s)
    with Catalog.open(s.catalog_location) as catalog:
        statuses = {key: catalog.lifecycle.media_state(media_id)["status"]  # type: ignore[index]
                    for key, media_id in ids.items()}
        in_flight = catalog.lifecycle.purge_marks_in(None, None, "deleting")
        assert catalog.references.catalog_inconsistencies() == []
    for key, status in statuses.items():
        assert (status == "purged") == (key not in present), (key, status)
    assert "a/used.txt" in present and "a/live.txt" in present and "a/recent.txt" in present
    assert in_flight == []


@pytest.mark.parametrize("kill_at", range(STEPS))
def test_a_killed_purge_is_finished_by_the_next_run(settings: Settings, s3_client: Any,
                                                    kill_at: int) -> None:
    s = replace(settings, admins=frozenset({ADMIN}), purge_max_share=1.0)
    ids = _world(s, s3_client)
    killed = _child(s, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    report = purge(s, s3_client, enabled_sources=["cms"], now=NOW, batch_size=2)
    assert report.ok, report.errors
    _assert_consistent(s, s3_client, ids)
    assert object_keys(s3_client, s) == {"a/used.txt", "a/live.txt", "a/recent.txt"}


def test_the_child_runs_every_step_when_not_killed(settings: Settings, s3_client: Any) -> None:
    s = replace(settings, admins=frozenset({ADMIN}), purge_max_share=1.0)
    ids = _world(s, s3_client)
    done = _child(s, kill_at=STEPS)  # past the last step: never killed
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(json.loads(done.stdout)) == STEPS
    _assert_consistent(s, s3_client, ids)


def test_restore_waits_while_a_killed_purge_may_have_deleted_the_object(
        settings: Settings, s3_client: Any) -> None:
    s = replace(settings, admins=frozenset({ADMIN}), purge_max_share=1.0)
    ids = _world(s, s3_client)
    killed = _child(s, kill_at=3)  # right after the first batch's S3 delete
    assert killed.returncode == -signal.SIGKILL
    first = ids[ELIGIBLE[0]]
    with Catalog.open(s.catalog_location) as catalog:
        with pytest.raises(LifecycleError, match="interrupted purge"):
            restore(catalog, s, first, ADMIN)
        assert catalog.lifecycle.media_state(first)["status"] == "deleted"  # type: ignore[index]
    report = purge(s, s3_client, enabled_sources=["cms"], now=NOW, batch_size=2)
    assert report.settled == 2 and report.purged == 2
    with (Catalog.open(s.catalog_location) as catalog,
          pytest.raises(LifecycleError, match="purged")):
        restore(catalog, s, first, ADMIN)
    _assert_consistent(s, s3_client, ids)


@pytest.mark.parametrize("kill_at", [2, 3, 4])  # checked, deleted in S3, recorded
def test_a_killed_purge_of_every_version_is_finished_too(settings: Settings, s3_client: Any,
                                                         kill_at: int) -> None:
    s = replace(settings, admins=frozenset({ADMIN}), purge_max_share=1.0, purge_versions="all")
    s3_client.put_bucket_versioning(Bucket=s.bucket,
                                    VersioningConfiguration={"Status": "Enabled"})
    for key in ELIGIBLE:  # an older version of each
        s3_client.put_object(Bucket=s.bucket, Key=key, Body=b"old version")
    ids = _world(s, s3_client)
    assert _child(s, kill_at).returncode == -signal.SIGKILL
    report = purge(s, s3_client, enabled_sources=["cms"], now=NOW, batch_size=2)
    assert report.ok, report.errors
    _assert_consistent(s, s3_client, ids)
    for key in ELIGIBLE:
        listing = s3_client.list_object_versions(Bucket=s.bucket, Prefix=key)
        assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []
