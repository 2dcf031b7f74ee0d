"""Purge against the moto server: who is a candidate, caps, refusals, batches, versions,
re-checks just before the delete."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from media_pipeline.catalog import Catalog, lake
from media_pipeline.catalog.lifecycle import OverCap
from media_pipeline.lifecycle import LifecycleError, add_reference, delete, purge, restore
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline_tests.lifecycle_helpers import (
    ADMIN,
    audit,
    catalog_files,
    key_ref,
    object_keys,
    row,
    scan,
)

DELETED = datetime(2026, 1, 10, tzinfo=UTC)
SCANNED = DELETED + timedelta(days=1)
LATER = DELETED + timedelta(days=31)  # past the default 30 days' retention


@pytest.fixture
def s(settings: Settings) -> Settings:
    return replace(settings, admins=frozenset({ADMIN}), purge_max_share=1.0)


def soft_delete(s: Settings, media_ids: list[str], when: datetime = DELETED,
                force: bool = False) -> None:
    with Catalog.open(s.catalog_location) as catalog:
        for media_id in media_ids:
            assert delete(catalog, s, media_id, ADMIN, force=force, now=when)


def purge_run(s: Settings, client: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("enabled_sources", ["cms"])
    kwargs.setdefault("now", LATER)
    return purge(s, client, **kwargs)


def purge_tables(s: Settings) -> tuple[int, int]:
    # Test inspection: what purge wrote for itself.
    with Catalog.open(s.catalog_location) as catalog:
        marks = catalog.con.execute("SELECT count(*) FROM purge_marks").fetchone()
        runs = catalog.con.execute("SELECT count(*) FROM purge_runs").fetchone()
    assert marks is not None and runs is not None
    return int(marks[0]), int(runs[0])


def test_purges_only_unreferenced_files_deleted_long_enough(s: Settings,
                                                             s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["blog/old.txt", "blog/used.txt", "blog/recent.txt",
                                       "blog/active.txt"])
    old, used, recent = ids["blog/old.txt"], ids["blog/used.txt"], ids["blog/recent.txt"]
    scan(s, "cms", [key_ref(s, "webpage", "1", "blog/used.txt")], started=DELETED)
    soft_delete(s, [old])
    soft_delete(s, [used], force=True)
    soft_delete(s, [recent], when=LATER - timedelta(days=2))
    scan(s, "cms", [key_ref(s, "webpage", "1", "blog/used.txt")], started=LATER)

    report = purge_run(s, s3_client)
    assert report.ok and report.candidates == 1 and report.purged == 1
    assert report.bytes_freed == len(b"content of blog/old.txt\n")
    assert object_keys(s3_client, s) == {"blog/used.txt", "blog/recent.txt", "blog/active.txt"}
    state = row(s, old)
    assert state["status"] == "purged" and state["purged_at"] == LATER
    assert [row(s, m)["status"] for m in (used, recent)] == ["deleted", "deleted"]
    purged = audit(s, "purge")
    assert [(r["actor"], r["media_id"]) for r in purged] == [("system", old)]
    details = json.loads(purged[0]["details"])
    assert (details["key"], details["size"], details["etag"]) == (
        "blog/old.txt", state["file_size"], state["etag"])
    # A second run finds nothing more to do.
    again = purge_run(s, s3_client)
    assert again.ok and again.candidates == 0 and again.purged == 0


def test_retention_boundary(s: Settings, s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/at.txt", "a/before.txt"])
    now = DELETED + timedelta(days=30)
    soft_delete(s, [ids["a/at.txt"]], when=DELETED)  # exactly 30 days: not longer than
    soft_delete(s, [ids["a/before.txt"]], when=DELETED - timedelta(seconds=1))
    scan(s, "cms", [], started=now, documents=1)
    report = purge_run(s, s3_client, now=now)
    assert report.purged == 1
    assert object_keys(s3_client, s) == {"a/at.txt"}
    # --days overrides the retention.
    assert purge_run(s, s3_client, now=now, retention_days=29).purged == 1
    assert object_keys(s3_client, s) == set()


def test_a_source_scanned_before_the_deletion_is_not_enough(s: Settings,
                                                            s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt"])
    scan(s, "cms", [], started=DELETED - timedelta(seconds=1), documents=1)
    scan(s, "docs", [], started=SCANNED, documents=1)
    soft_delete(s, [ids["a/x.txt"]])
    report = purge_run(s, s3_client, enabled_sources=["cms", "docs"])
    assert report.ok and report.candidates == 0
    assert object_keys(s3_client, s) == {"a/x.txt"}
    scan(s, "cms", [], started=SCANNED, documents=1)
    assert purge_run(s, s3_client, enabled_sources=["cms", "docs"]).purged == 1


@pytest.mark.parametrize("failure", ["failed", "never scanned"])
def test_a_stale_source_refuses_the_whole_purge(s: Settings, s3_client: Any,
                                                failure: str) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt", "a/y.txt"])
    soft_delete(s, list(ids.values()))
    scan(s, "cms", [], started=SCANNED, documents=1)
    if failure == "failed":
        scan(s, "docs", [], started=SCANNED, documents=1)
        with Catalog.open(s.catalog_location) as catalog:
            catalog.references.record_source_failure("docs", SCANNED + timedelta(hours=1),
                                                      "timeout")
    report = purge_run(s, s3_client, enabled_sources=["cms", "docs"])
    assert report.refused and report.purged == 0
    assert "stale content sources" in (report.refused_reason or "")
    assert "docs" in (report.refused_reason or "")
    assert object_keys(s3_client, s) == {"a/x.txt", "a/y.txt"}
    assert {row(s, m)["status"] for m in ids.values()} == {"deleted"}
    assert purge_tables(s) == (0, 1)  # the refusal is recorded, nothing marked
    assert len(audit(s, "purge.refused")) == 1


@pytest.mark.parametrize("cap", [{"purge_max_count": 2},
                                 {"purge_max_share": 0.5, "purge_share_floor": 2}])
def test_over_the_cap_nothing_is_deleted(s: Settings, s3_client: Any,
                                         cap: dict[str, Any]) -> None:
    ids = catalog_files(s, s3_client, [f"a/{i}.txt" for i in range(5)])
    soft_delete(s, list(ids.values())[:3])  # 3 of 5 files: over 2 files and over 50 %
    scan(s, "cms", [], started=SCANNED, documents=1)
    report = purge_run(replace(s, **cap), s3_client)
    assert report.refused and "runaway purge" in (report.refused_reason or "")
    assert report.candidates == 3 and report.purged == 0
    assert len(object_keys(s3_client, s)) == 5
    assert purge_run(s, s3_client).purged == 3  # a human raised the cap


def test_dry_run_changes_nothing(s: Settings, s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt", "a/y.txt"])
    soft_delete(s, [ids["a/x.txt"]])
    scan(s, "cms", [], started=SCANNED, documents=1)
    audit_before = len(audit(s))
    report = purge_run(s, s3_client, dry_run=True)
    assert report.dry_run and report.candidates == 1 and report.purged == 0
    assert [f["key"] for f in report.files] == ["a/x.txt"]
    assert object_keys(s3_client, s) == {"a/x.txt", "a/y.txt"}
    assert row(s, ids["a/x.txt"])["status"] == "deleted"
    assert purge_tables(s) == (0, 0)
    assert len(audit(s)) == audit_before
    # A refusal in a dry run is reported, not recorded.
    refused = purge_run(s, s3_client, dry_run=True, enabled_sources=["cms", "other"])
    assert refused.refused and purge_tables(s) == (0, 0)


def test_batches_are_at_most_the_batch_size(s: Settings, s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, [f"a/{i}.txt" for i in range(7)])
    soft_delete(s, list(ids.values()))
    scan(s, "cms", [], started=SCANNED, documents=1)
    sizes: list[int] = []

    def count_keys(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["Delete"]["Objects"]))

    s3_client.meta.events.register("provide-client-params.s3.DeleteObjects", count_keys)
    steps: list[str] = []
    report = purge_run(s, s3_client, batch_size=3, on_step=lambda step, info: steps.append(step))
    assert report.purged == 7 and sizes == [3, 3, 1]
    assert [b.purged for b in report.batches] == [3, 3, 1]
    assert steps == ["settled", "marked"] + ["batch_checked", "s3_deleted",
                                             "catalog_updated"] * 3 + ["finished"]
    assert object_keys(s3_client, s) == set()
    with pytest.raises(ValueError, match="batch size"):
        purge_run(s, s3_client, batch_size=1001)


@pytest.mark.parametrize("mode", ["marker", "all"])
def test_versioned_bucket(s: Settings, s3_client: Any, mode: str) -> None:
    s3_client.put_bucket_versioning(Bucket=s.bucket,
                                    VersioningConfiguration={"Status": "Enabled"})
    s3_client.put_object(Bucket=s.bucket, Key="a/x.txt", Body=b"first version")
    ids = catalog_files(s, s3_client, ["a/x.txt", "a/y.txt"])  # x gets a second version
    soft_delete(s, [ids["a/x.txt"]])
    scan(s, "cms", [], started=SCANNED, documents=1)
    report = purge_run(replace(s, purge_versions=mode), s3_client)
    assert report.purged == 1
    assert object_keys(s3_client, s) == {"a/y.txt"}
    listing = s3_client.list_object_versions(Bucket=s.bucket, Prefix="a/x.txt")
    versions = listing.get("Versions", [])
    markers = listing.get("DeleteMarkers", [])
    if mode == "marker":
        assert len(versions) == 2 and len(markers) == 1  # recoverable
    else:
        assert versions == [] and markers == []
    assert len(s3_client.list_object_versions(Bucket=s.bucket, Prefix="a/y.txt")["Versions"]
               ) == 1


def test_an_object_already_gone_counts_as_purged(s: Settings, s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt"])
    soft_delete(s, [ids["a/x.txt"]])
    scan(s, "cms", [], started=SCANNED, documents=1)
    s3_client.delete_object(Bucket=s.bucket, Key="a/x.txt")
    report = purge_run(s, s3_client)
    assert report.ok and report.purged == 1
    assert row(s, ids["a/x.txt"])["status"] == "purged"


def test_referenced_or_restored_after_marking_is_skipped(s: Settings, s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt", "a/y.txt", "a/z.txt"])
    x, y = ids["a/x.txt"], ids["a/y.txt"]
    soft_delete(s, list(ids.values()))
    scan(s, "cms", [], started=SCANNED, documents=1)

    def meanwhile(step: str, info: dict[str, Any]) -> None:
        if step == "marked":  # between the mark and the batch, another writer acts
            with Catalog.open(s.catalog_location) as catalog:
                add_reference(catalog, s, x, "webpage", "5", ADMIN)
                restore(catalog, s, y, ADMIN)

    report = purge_run(s, s3_client, on_step=meanwhile)
    assert report.candidates == 3 and report.purged == 1
    assert object_keys(s3_client, s) == {"a/x.txt", "a/y.txt"}
    assert {r["key"]: r["reason"] for r in report.skipped} == {"a/x.txt": "referenced"}
    # the concurrent restore is reported, not lost between the counters
    assert {r["key"]: r["reason"] for r in report.cancelled} == {"a/y.txt": f"restored by {ADMIN}"}
    assert report.batches[0].cancelled == 1 and report.batches[0].marked == 3
    assert (row(s, x)["status"], row(s, y)["status"]) == ("deleted", "active")


def test_an_object_replaced_in_s3_is_not_deleted(s: Settings, s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt"])
    soft_delete(s, [ids["a/x.txt"]])
    scan(s, "cms", [], started=SCANNED, documents=1)
    s3_client.put_object(Bucket=s.bucket, Key="a/x.txt", Body=b"new content, same key")
    report = purge_run(s, s3_client)
    assert report.purged == 0
    assert [r["reason"] for r in report.skipped] == [
        "the object in S3 changed since it was catalogued"]
    body = s3_client.get_object(Bucket=s.bucket, Key="a/x.txt")["Body"].read()
    assert body == b"new content, same key"
    assert row(s, ids["a/x.txt"])["status"] == "deleted"


def test_new_content_at_a_deleted_key_is_a_new_file_once_catalogued(
        s: Settings, s3_client: Any) -> None:
    from media_pipeline.stages import commit_inventory, take_inventory

    ids = catalog_files(s, s3_client, ["a/x.txt"])
    soft_delete(s, [ids["a/x.txt"]])
    s3_client.put_object(Bucket=s.bucket, Key="a/x.txt", Body=b"someone uploaded it again")
    take_inventory(s, s3_client)
    commit_inventory(s)
    state = row(s, ids["a/x.txt"])
    # Not deleted any more: an old deleted_at must never make the new content purgeable.
    assert (state["status"], state["is_deleted"], state["deleted_at"]) == ("pending", False, None)
    scan(s, "cms", [], started=SCANNED, documents=1)
    assert purge_run(s, s3_client).candidates == 0
    assert object_keys(s3_client, s) == {"a/x.txt"}


def test_no_sources_means_api_references_only(s: Settings, s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt", "a/y.txt"])
    with Catalog.open(s.catalog_location) as catalog:
        add_reference(catalog, s, ids["a/y.txt"], "app", "1", ADMIN)
    soft_delete(s, [ids["a/x.txt"]])
    soft_delete(s, [ids["a/y.txt"]], force=True)
    report = purge_run(s, s3_client, enabled_sources=[])
    assert report.purged == 1 and object_keys(s3_client, s) == {"a/y.txt"}


def test_a_thread_of_the_same_process_cannot_reference_a_file_mid_batch(
        s: Settings, s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt"])
    x = ids["a/x.txt"]
    soft_delete(s, [x])
    scan(s, "cms", [], started=SCANNED, documents=1)
    outcome: list[Any] = []

    # A second session of this process on the same catalog.
    con = lake.connect(s.catalog_location)

    def reference_it() -> None:
        try:
            outcome.append(add_reference(Catalog(con, s.catalog_location), s, x, "webpage",
                                         "1", ADMIN))
        except LifecycleError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=reference_it)

    def on_step(step: str, info: dict[str, Any]) -> None:
        if step == "batch_checked":
            waiter.start()
            waiter.join(0.5)
            assert waiter.is_alive(), "add_reference ran between the re-check and the delete"

    report = purge_run(s, s3_client, on_step=on_step)
    waiter.join()
    con.close()
    assert report.purged == 1
    assert len(outcome) == 1 and isinstance(outcome[0], LifecycleError)
    with Catalog.open(s.catalog_location) as catalog:
        assert catalog.references.references_of(x) == {}


def test_per_key_errors_are_reported_and_those_files_stay_deleted(s: Settings,
                                                                  s3_client: Any) -> None:
    locked = replace(s, bucket=f"lock-{uuid.uuid4().hex[:16]}", purge_versions="all")
    s3_client.create_bucket(Bucket=locked.bucket, ObjectLockEnabledForBucket=True)
    s3_client.put_object(Bucket=locked.bucket, Key="a/held.txt", Body=b"legal hold",
                         ObjectLockLegalHoldStatus="ON")
    ids = catalog_files(locked, s3_client, ["a/free.txt"])
    held = media_id_for(locked.bucket, "a/held.txt")
    soft_delete(locked, [held, ids["a/free.txt"]])
    scan(locked, "cms", [], started=SCANNED, documents=1)
    report = purge_run(locked, s3_client)
    assert report.purged == 1 and not report.ok
    assert len(report.errors) == 1 and report.errors[0].startswith("a/held.txt: AccessDenied")
    assert row(locked, held)["status"] == "deleted"
    assert row(locked, ids["a/free.txt"])["status"] == "purged"
    assert object_keys(s3_client, locked) == {"a/held.txt"}


def test_a_key_uploaded_again_after_its_purge_can_be_deleted_again(s: Settings,
                                                                   s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt"])
    x = ids["a/x.txt"]
    soft_delete(s, [x])
    scan(s, "cms", [], started=SCANNED, documents=1)
    assert purge_run(s, s3_client).purged == 1
    catalog_files(s, s3_client, ["a/x.txt"])  # same key, new upload: inventory + fingerprint
    assert row(s, x)["status"] == "active"
    with Catalog.open(s.catalog_location) as catalog:
        outcome = delete(catalog, s, x, ADMIN, now=LATER)
        assert outcome.deleted and not outcome.already_deleted
        restore(catalog, s, x, ADMIN)
    assert row(s, x)["status"] == "active" and not row(s, x)["is_deleted"]


def test_a_small_library_is_cleaned_with_the_default_caps(settings: Settings,
                                                          s3_client: Any) -> None:
    """1 file of 15 is 6.7 %, over the 5 % share cap, but the share cap applies only above
    MEDIA_PIPELINE_PURGE_SHARE_FLOOR (20) files, so the default settings purge it."""
    s = replace(settings, admins=frozenset({ADMIN}))
    assert (s.purge_max_share, s.purge_share_floor) == (0.05, 20)
    ids = catalog_files(s, s3_client, [f"a/{i}.txt" for i in range(15)])
    soft_delete(s, [ids["a/0.txt"]])
    scan(s, "cms", [], started=SCANNED, documents=1)
    report = purge_run(s, s3_client)
    assert report.ok and report.purged == 1
    assert "a/0.txt" not in object_keys(s3_client, s)


def test_above_the_floor_the_share_cap_refuses_and_names_both_settings(
        settings: Settings, s3_client: Any) -> None:
    s = replace(settings, admins=frozenset({ADMIN}), purge_share_floor=3)
    ids = catalog_files(s, s3_client, [f"a/{i}.txt" for i in range(10)])
    soft_delete(s, [ids[f"a/{i}.txt"] for i in range(4)])  # 4 > floor 3, and 40 % > 5 %
    scan(s, "cms", [], started=SCANNED, documents=1)
    report = purge_run(s, s3_client)
    assert report.refused and report.purged == 0 and len(object_keys(s3_client, s)) == 10
    reason = report.refused_reason or ""
    assert "MEDIA_PIPELINE_PURGE_MAX_SHARE=0.05" in reason
    assert "MEDIA_PIPELINE_PURGE_SHARE_FLOOR=3" in reason
    # At the floor the share cap does not apply.
    assert purge_run(replace(s, purge_share_floor=4), s3_client).purged == 4


def test_the_share_floor_setting_is_read_and_checked() -> None:
    from media_pipeline.settings import SettingsError

    assert Settings.from_env({"MEDIA_PIPELINE_PURGE_SHARE_FLOOR": "0"}).purge_share_floor == 0
    assert Settings.from_env({}).purge_share_floor == 20
    with pytest.raises(SettingsError, match="MEDIA_PIPELINE_PURGE_SHARE_FLOOR"):
        Settings.from_env({"MEDIA_PIPELINE_PURGE_SHARE_FLOOR": "-1"})


def test_the_cap_is_checked_again_on_what_was_marked(s: Settings, s3_client: Any) -> None:
    ids = catalog_files(s, s3_client, ["a/x.txt", "a/y.txt"], fingerprint=False)
    soft_delete(s, list(ids.values()))
    with Catalog.open(s.catalog_location) as catalog, pytest.raises(OverCap):
        catalog.lifecycle.start_purge_run("p1", LATER, retention_days=30, versions="marker",
                                          sources=[], cutoff=LATER - timedelta(days=30),
                                          horizon=LATER, batch_size=10, max_files=1)
    assert purge_tables(s) == (0, 0)
