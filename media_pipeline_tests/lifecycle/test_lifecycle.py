"""Soft delete, force delete, restore and auto soft-delete: roles, refusals, audit rows."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from media_pipeline.access import SYSTEM_USER, PermissionDenied
from media_pipeline.catalog import Catalog
from media_pipeline.lifecycle import (
    LifecycleError,
    UnknownMedia,
    add_reference,
    auto_soft_delete,
    delete,
    remove_reference,
    restore,
)
from media_pipeline.settings import Settings
from media_pipeline_tests.lifecycle_helpers import (
    ADMIN,
    EDITOR,
    VIEWER,
    add_member,
    audit,
    catalog_files,
    key_ref,
    object_keys,
    row,
    scan,
)


@pytest.fixture
def s(settings: Settings) -> Settings:
    return replace(settings, admins=frozenset({ADMIN}))


@pytest.fixture
def files(s: Settings, s3_client: Any) -> dict[str, str]:
    ids = catalog_files(s, s3_client, ["blog/a.txt", "blog/b.txt", "shop/c.txt"])
    add_member(s, "blog", EDITOR, "editor")
    add_member(s, "blog", VIEWER, "viewer")
    return ids


def test_delete_is_refused_while_referenced(s: Settings, files: dict[str, str]) -> None:
    a = files["blog/a.txt"]
    with Catalog.open(s.catalog_location) as catalog:
        # A discovered file is private to the admins: only they may record where it is used; to
        # others it does not exist.
        with pytest.raises(UnknownMedia, match="no media file"):
            add_reference(catalog, s, a, "webpage", "123", EDITOR)
        add_reference(catalog, s, a, "webpage", "123", ADMIN)
        before = catalog.lifecycle.media_state(a)
        outcome = delete(catalog, s, a, EDITOR)
        assert not outcome and outcome.refused and not outcome.deleted
        # A discovered file is the admins' to see: the editor learns how often, not where.
        assert outcome.references == {} and outcome.hidden_references == 1
        assert outcome.reference_count == 1
        assert catalog.lifecycle.media_state(a) == before
    refused = audit(s, "delete.refused")
    assert [(r["actor"], r["media_id"]) for r in refused] == [(EDITOR, a)]
    assert json.loads(refused[0]["details"])["references"] == {"webpage": ["123"]}


def test_delete_is_refused_for_a_scanned_reference_too(s: Settings,
                                                       files: dict[str, str]) -> None:
    scan(s, "cms", [key_ref(s, "webpage", "9", "blog/a.txt")])
    with Catalog.open(s.catalog_location) as catalog:
        # The API removes only references the API recorded, even for an admin.
        assert remove_reference(catalog, s, files["blog/a.txt"], "webpage", "9", ADMIN) is False
        assert catalog.references.references_of(files["blog/a.txt"]) == {"webpage": ["9"]}
        outcome = delete(catalog, s, files["blog/a.txt"], ADMIN)
    assert outcome.refused and outcome.references == {"webpage": ["9"]}
    assert row(s, files["blog/a.txt"])["status"] == "active"


def test_unreferenced_delete_and_restore(s: Settings, s3_client: Any,
                                         files: dict[str, str]) -> None:
    a = files["blog/a.txt"]
    when = datetime(2026, 5, 1, 12, tzinfo=UTC)
    with Catalog.open(s.catalog_location) as catalog:
        outcome = delete(catalog, s, a, EDITOR, now=when)
        assert outcome and outcome.deleted and not outcome.forced
        again = delete(catalog, s, a, EDITOR)
        assert again and again.already_deleted and not again.deleted
    state = row(s, a)
    assert (state["status"], state["is_deleted"], state["deleted_at"], state["deleted_by"]) == (
        "deleted", True, when, EDITOR)
    assert "blog/a.txt" in object_keys(s3_client, s)  # soft: the object stays
    with Catalog.open(s.catalog_location) as catalog:
        restore(catalog, s, a, EDITOR)
        with pytest.raises(LifecycleError, match="not deleted"):
            restore(catalog, s, a, EDITOR)
    state = row(s, a)
    assert (state["status"], state["is_deleted"], state["deleted_at"], state["deleted_by"]) == (
        "active", False, None, None)
    actions = [(r["actor"], r["action"], r["media_id"]) for r in audit(s)
               if r["action"] in ("delete", "restore")]
    assert actions == [(EDITOR, "delete", a), (EDITOR, "restore", a)]
    assert json.loads(audit(s, "restore")[0]["details"])["deleted_by"] == EDITOR


def test_force_delete_is_for_admins_only(s: Settings, s3_client: Any,
                                         files: dict[str, str]) -> None:
    a = files["blog/a.txt"]
    with Catalog.open(s.catalog_location) as catalog:
        add_reference(catalog, s, a, "webpage", "123", ADMIN)
        with pytest.raises(PermissionDenied, match="needs admin"):
            delete(catalog, s, a, EDITOR, force=True)
        assert catalog.lifecycle.media_state(a)["status"] == "active"  # type: ignore[index]
        outcome = delete(catalog, s, a, ADMIN, force=True)
    assert outcome.deleted and outcome.forced and outcome.references == {"webpage": ["123"]}
    assert row(s, a)["status"] == "deleted"
    assert "blog/a.txt" in object_keys(s3_client, s)  # still served while referenced
    forced = audit(s, "delete.force")
    assert [(r["actor"], r["media_id"]) for r in forced] == [(ADMIN, a)]
    assert json.loads(forced[0]["details"])["references"] == {"webpage": ["123"]}


def test_roles(s: Settings, files: dict[str, str]) -> None:
    a, c = files["blog/a.txt"], files["shop/c.txt"]
    with Catalog.open(s.catalog_location) as catalog:
        # discovered files are private to the admins: to anyone else a refusal is "no such file"
        with pytest.raises(UnknownMedia):
            delete(catalog, s, a, VIEWER)
        with pytest.raises(UnknownMedia):
            delete(catalog, s, c, EDITOR)  # editor of blog, not of shop
        with pytest.raises(UnknownMedia):
            add_reference(catalog, s, a, "webpage", "1", VIEWER)
        with pytest.raises(UnknownMedia):
            delete(catalog, s, a, "")
        delete(catalog, s, a, EDITOR)
        with pytest.raises(UnknownMedia):
            restore(catalog, s, a, VIEWER)
        catalog.application.update_visibility(a, "internal")  # the viewer sees it now
        with pytest.raises(PermissionDenied, match="needs editor, is viewer"):
            restore(catalog, s, a, VIEWER)
        assert catalog.lifecycle.media_state(a)["status"] == "deleted"  # type: ignore[index]
        assert catalog.references.references_of(a) == {}


def test_unknown_media_and_bad_input(s: Settings, files: dict[str, str]) -> None:
    a = files["blog/a.txt"]
    with Catalog.open(s.catalog_location) as catalog:
        for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
            with pytest.raises(UnknownMedia, match="no media file"):
                delete(catalog, s, bad, ADMIN)
            with pytest.raises(LookupError):
                restore(catalog, s, bad, ADMIN)
            with pytest.raises(UnknownMedia):
                add_reference(catalog, s, bad, "webpage", "1", ADMIN)
        for content_type, content_id in (("", "1"), ("webpage", " "), ("x" * 101, "1"),
                                         ("webpage", "1\n2")):
            with pytest.raises(ValueError):
                add_reference(catalog, s, a, content_type, content_id, ADMIN)
        assert catalog.references.references_of(a) == {}


def test_reference_actions_are_audited(s: Settings, files: dict[str, str]) -> None:
    a = files["blog/a.txt"]
    with Catalog.open(s.catalog_location) as catalog:
        add_reference(catalog, s, a, "webpage", "1", ADMIN)
        remove_reference(catalog, s, a, "webpage", "1", ADMIN)
    rows = [(r["actor"], r["action"], r["media_id"], json.loads(r["details"]))
            for r in audit(s) if r["action"].startswith("reference.")]
    detail = {"content_type": "webpage", "content_id": "1"}
    assert rows == [(ADMIN, "reference.add", a, detail), (ADMIN, "reference.remove", a, detail)]


def test_restore_keeps_quarantine(s: Settings, s3_client: Any) -> None:
    from media_pipeline.records import media_id_for
    from media_pipeline.stages import (
        commit_inventory,
        fingerprint_pending,
        take_inventory,
    )

    s3_client.put_object(Bucket=s.bucket, Key="blog/x.svg", ContentType="image/svg+xml",
                         Body=b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)'
                              b'</script></svg>')
    take_inventory(s, s3_client)
    commit_inventory(s)
    fingerprint_pending(s, s3_client)
    x = media_id_for(s.bucket, "blog/x.svg")
    assert row(s, x)["status"] == "quarantined"
    with Catalog.open(s.catalog_location) as catalog:
        delete(catalog, s, x, ADMIN)
        restore(catalog, s, x, ADMIN)
    assert row(s, x)["status"] == "quarantined"


def test_auto_soft_delete(s: Settings, files: dict[str, str]) -> None:
    a, b, c = files["blog/a.txt"], files["blog/b.txt"], files["shop/c.txt"]
    first_seen = row(s, a)["first_seen"]
    with Catalog.open(s.catalog_location) as catalog:
        assert auto_soft_delete(catalog, s, first_seen + timedelta(days=400)).total == 0  # off
    s30 = replace(s, auto_delete_days={"blog": 30})
    unreferenced_at = first_seen + timedelta(days=20)
    with Catalog.open(s.catalog_location) as catalog:
        add_reference(catalog, s, b, "webpage", "1", ADMIN)
        remove_reference(catalog, s, b, "webpage", "1", ADMIN, now=unreferenced_at)
        add_reference(catalog, s, a, "webpage", "2", ADMIN)
        assert catalog.lifecycle.media_state(b)["unreferenced_since"] == unreferenced_at  # type: ignore
        # a is referenced; b unreferenced for 20 days only; c is in a namespace without it.
        assert auto_soft_delete(catalog, s30, first_seen + timedelta(days=40)).total == 0
        report = auto_soft_delete(catalog, s30, unreferenced_at + timedelta(days=30))
    assert report.deleted == {"blog": 1}
    assert [row(s, m)["status"] for m in (a, b, c)] == ["active", "deleted", "active"]
    assert row(s, b)["deleted_by"] == SYSTEM_USER
    rows = audit(s, "delete.auto")
    assert [(r["actor"], r["media_id"]) for r in rows] == [(SYSTEM_USER, b)]


def test_auto_soft_delete_waits_for_stale_sources(s: Settings, files: dict[str, str]) -> None:
    s1 = replace(s, auto_delete_days={"blog": 1})
    later = row(s, files["blog/a.txt"])["first_seen"] + timedelta(days=10)
    with Catalog.open(s.catalog_location) as catalog:
        report = auto_soft_delete(catalog, s1, later, enabled_sources=["cms"])
    assert report.total == 0 and report.refused_reason == "stale content sources: cms"
    scan(s, "cms", [], documents=1)
    with Catalog.open(s.catalog_location) as catalog:
        assert auto_soft_delete(catalog, s1, later, enabled_sources=["cms"]).deleted == {
            "blog": 2}
