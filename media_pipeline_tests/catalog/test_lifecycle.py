"""catalog.lifecycle on a real lake: soft delete and restore append deletion facts (the newest
wins, by commit order), a missing file stays missing, auto soft-delete goes by the derived
unreferenced clock."""

from __future__ import annotations

from datetime import timedelta

from media_pipeline.catalog import Catalog
from media_pipeline_tests.catalog.store_helpers import T0, A, B, derived


def test_delete_and_restore_append_facts_and_the_newest_wins(catalog: Catalog) -> None:
    assert catalog.lifecycle.soft_delete(A, "alice", allow_referenced=False, now=T0)[0] == "deleted"
    got = derived(catalog, A)
    assert (got["status"], got["is_deleted"], got["deleted_at"], got["deleted_by"]) == (
        "deleted", True, T0, "alice")
    # the base row was not touched: its status stays the pipeline's
    assert catalog.con.execute("SELECT status FROM media_objects WHERE media_id = ?",
                               [A]).fetchall() == [("active",)]
    catalog.lifecycle.restore_media(A, "bob")
    got = derived(catalog, A)
    assert (got["status"], got["is_deleted"], got["deleted_at"], got["deleted_by"]) == (
        "active", False, None, None)
    # deleted again with a clock older than the restore's: order of commits, not clocks
    assert catalog.lifecycle.soft_delete(A, "carol", allow_referenced=False,
                                         now=T0 - timedelta(days=1))[0] == "deleted"
    assert derived(catalog, A)["deleted_by"] == "carol"
    # a delete and a restore at the very same instant, in one transaction: the later wins
    with catalog.transaction():
        catalog.con.execute("INSERT INTO media_deletions VALUES (?, true, ?, 'x', 'delete', "
                            "NULL), (?, false, ?, 'y', 'restore', NULL)", [B, T0, B, T0])
    assert derived(catalog, B)["is_deleted"] is False
    assert [r[0] for r in catalog.con.execute(
        "SELECT reason FROM media_deletions WHERE media_id = ? ORDER BY rowid", [A]
    ).fetchall()] == ["delete", "restore", "delete"]


def test_a_missing_file_stays_missing_when_deleted(catalog: Catalog) -> None:
    catalog.con.execute("UPDATE media_objects SET status = 'missing' WHERE media_id = ?", [A])
    catalog.lifecycle.soft_delete(A, "alice", allow_referenced=False, now=T0)
    got = derived(catalog, A)
    assert (got["status"], got["is_deleted"]) == ("missing", True)


def test_auto_soft_delete_uses_the_derived_clock(catalog: Catalog) -> None:
    catalog.references.add_reference(A, "webpage", "1", "ed", now=T0)
    catalog.references.remove_reference(A, "webpage", "1", "ed", now=T0 + timedelta(days=20))
    # B never referenced: its clock is first_seen (T0); A's is the removal, 20 days later
    done = catalog.lifecycle.auto_soft_delete({"blog": 30}, T0 + timedelta(days=35), "system")
    assert done == {"blog": 1}
    assert derived(catalog, B)["deleted_by"] == "system"
    assert derived(catalog, A)["is_deleted"] is False
    assert catalog.lifecycle.auto_soft_delete({"blog": 30}, T0 + timedelta(days=51), "system") == {
        "blog": 1}
    assert derived(catalog, A)["status"] == "deleted"
