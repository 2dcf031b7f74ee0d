"""catalog.fingerprints on a real lake: a result applies only to the version it read."""

from __future__ import annotations

from pathlib import Path

from media_pipeline.records import media_id_for
from media_pipeline_tests.catalog.store_helpers import (
    BUCKET,
    fingerprint_fragment,
    open_catalog,
    statuses,
    write_snapshot,
)


def test_fingerprints_apply_only_to_the_version_that_was_read(home: Path, tmp_path: Path) -> None:
    snap = write_snapshot(tmp_path / "s.parquet", [("site/a.png", 10, "e1"),
                                                   ("site/b.png", 10, "e2"),
                                                   ("site/c.png", 10, "e3")])
    with open_catalog(home) as c:
        c.objects.apply_inventory(snap, BUCKET)
        assert len(c.fingerprints.pending_fingerprints()) == 3
    frag = fingerprint_fragment(tmp_path / "f.parquet", [
        {"media_id": media_id_for(BUCKET, "site/a.png"), "etag": "e1", "file_hash": "aa"},
        # b changed after it was read: this result is stale and must not apply.
        {"media_id": media_id_for(BUCKET, "site/b.png"), "etag": "old", "file_hash": "bb"},
        {"media_id": media_id_for(BUCKET, "site/c.png"), "etag": "e3", "status": "quarantined",
         "file_hash": "cc", "reason": "corrupt image"},
    ])
    with open_catalog(home) as c:
        c.fingerprints.apply_fingerprints([frag])
        rows = dict(c.con.execute(
            "SELECT key, (status, file_hash, quarantine_reason) FROM media_files").fetchall())
        pending = [p.key for p in c.fingerprints.pending_fingerprints()]
    assert rows["site/a.png"] == ("active", "aa", None)
    assert rows["site/b.png"] == ("pending", None, None)
    assert rows["site/c.png"] == ("quarantined", "cc", "corrupt image")
    assert pending == ["site/b.png"]




def test_a_stale_missing_result_does_not_hide_a_reuploaded_object(
    home: Path, tmp_path: Path
) -> None:
    with open_catalog(home) as c:
        c.objects.apply_inventory(
            write_snapshot(tmp_path / "1.parquet", [("site/a.png", 1, "e1")]), BUCKET)
        c.objects.apply_inventory(
            write_snapshot(tmp_path / "2.parquet", [("site/a.png", 2, "e2")]), BUCKET)
    # The reader saw version e1 vanish; meanwhile e2 was uploaded.
    frag = fingerprint_fragment(tmp_path / "f.parquet", [
        {"media_id": media_id_for(BUCKET, "site/a.png"), "etag": "e1", "status": "missing"}])
    with open_catalog(home) as c:
        c.fingerprints.apply_fingerprints([frag])
    assert statuses(home) == {"site/a.png": "pending"}
