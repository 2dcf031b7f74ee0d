"""The catalog on a real DuckDB file: migrations, the inventory diff, duplicates, locking."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from media_pipeline.catalog import Catalog, CatalogError
from media_pipeline.catalog.migrations import LATEST_VERSION
from media_pipeline.records import media_id_for

BUCKET = "media"


def write_snapshot(path: Path, objects: list[tuple[str, int, str]], bucket: str = BUCKET) -> Path:
    """An object snapshot Parquet with the inventory contract's columns."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE s (bucket VARCHAR, key VARCHAR, version_id VARCHAR, size BIGINT, "
        "etag VARCHAR, last_modified TIMESTAMPTZ, storage_class VARCHAR)"
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    if objects:
        con.executemany(
            "INSERT INTO s VALUES (?, ?, NULL, ?, ?, ?, 'STANDARD')",
            [[bucket, k, size, etag, now] for k, size, etag in objects],
        )
    con.execute(f"COPY s TO '{path}' (FORMAT parquet)")
    con.close()
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def open_catalog(home: Path):  # type: ignore[no-untyped-def]
    return Catalog.open(home)


def statuses(home: Path) -> dict[str, str]:
    with open_catalog(home) as c:
        return dict(c.con.execute("SELECT key, status FROM media_files").fetchall())


def test_migrations_record_the_schema_version_and_reopen_is_idempotent(home: Path) -> None:
    with open_catalog(home) as c:
        assert c.schema_version() == LATEST_VERSION
    with open_catalog(home) as c:
        assert c.schema_version() == LATEST_VERSION
        rows = c.con.execute("SELECT count(*) FROM schema_version").fetchone()
        assert rows is not None and rows[0] == LATEST_VERSION


def test_a_catalog_from_a_newer_version_is_refused(home: Path) -> None:
    with open_catalog(home) as c:
        c.con.execute("INSERT INTO schema_version VALUES (999, 'future', now())")
    with pytest.raises(CatalogError, match="newer than this"), open_catalog(home):
        pass


def test_inventory_diff_new_changed_unchanged_missing_and_reappeared(
    home: Path, tmp_path: Path
) -> None:
    first = write_snapshot(tmp_path / "1.parquet", [
        ("site/a.jpg", 10, "e1"), ("site/b.jpg", 20, "e2"), ("blog/c.png", 30, "e3"),
        ("top.txt", 5, "e4"),
    ])
    with open_catalog(home) as c:
        diff = c.apply_inventory(first, BUCKET)
    assert (diff.rows, diff.new, diff.changed, diff.missing) == (4, 4, 0, 0)
    assert diff.bytes == 65

    with open_catalog(home) as c:
        row = c.con.execute(
            "SELECT media_id::VARCHAR, namespace, original_filename, status FROM media_files "
            "WHERE key = 'site/a.jpg'"
        ).fetchone()
        top = c.con.execute("SELECT namespace FROM media_files WHERE key = 'top.txt'").fetchone()
    assert row == (media_id_for(BUCKET, "site/a.jpg"), "site", "a.jpg", "pending")
    assert top == ("default",)

    # b changes its ETag, c disappears, d is new.
    second = write_snapshot(tmp_path / "2.parquet", [
        ("site/a.jpg", 10, "e1"), ("site/b.jpg", 20, "e2-new"), ("top.txt", 5, "e4"),
        ("shop/d.gif", 40, "e5"),
    ])
    with open_catalog(home) as c:
        diff = c.apply_inventory(second, BUCKET)
    assert (diff.new, diff.changed, diff.unchanged, diff.missing) == (1, 1, 2, 1)
    assert statuses(home)["blog/c.png"] == "missing"

    # c comes back unchanged: it is restored, not duplicated.
    third = write_snapshot(tmp_path / "3.parquet", [
        ("site/a.jpg", 10, "e1"), ("site/b.jpg", 20, "e2-new"), ("top.txt", 5, "e4"),
        ("shop/d.gif", 40, "e5"), ("blog/c.png", 30, "e3"),
    ])
    with open_catalog(home) as c:
        diff = c.apply_inventory(third, BUCKET)
        count = c.con.execute("SELECT count(*), count(DISTINCT media_id) FROM media_files")
        total = count.fetchone()
    assert diff.reappeared == 1 and diff.missing == 0
    assert total == (5, 5)
    assert statuses(home)["blog/c.png"] == "pending"  # never fingerprinted, so still pending


def test_an_empty_listing_marks_everything_missing_and_drops_nothing(
    home: Path, tmp_path: Path
) -> None:
    """A restarted (empty) embedded S3 server must never make the catalog lose rows."""
    full = write_snapshot(tmp_path / "full.parquet", [(f"site/{i}.jpg", i + 1, f"e{i}")
                                                       for i in range(50)])
    empty = write_snapshot(tmp_path / "empty.parquet", [])
    with open_catalog(home) as c:
        c.apply_inventory(full, BUCKET)
    with open_catalog(home) as c:
        diff = c.apply_inventory(empty, BUCKET)
        rows = c.con.execute("SELECT status, count(*) FROM media_files GROUP BY ALL").fetchall()
    assert diff.missing == 50
    assert rows == [("missing", 50)]


def test_missing_is_scoped_to_the_bucket(home: Path, tmp_path: Path) -> None:
    with open_catalog(home) as c:
        c.apply_inventory(write_snapshot(tmp_path / "a.parquet", [("x/1", 1, "e")], "other"),
                          "other")
        diff = c.apply_inventory(write_snapshot(tmp_path / "b.parquet", []), BUCKET)
    assert diff.missing == 0
    assert statuses(home) == {"x/1": "pending"}


def fingerprint_fragment(path: Path, rows: list[dict[str, object]]) -> Path:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE f (media_id VARCHAR, etag VARCHAR, status VARCHAR, file_hash VARCHAR, "
        "hash_source VARCHAR, content_type VARCHAR, declared_content_type VARCHAR, "
        "phash UBIGINT, width BIGINT, height BIGINT, page_count BIGINT, metadata VARCHAR, "
        "quarantine_reason VARCHAR, bytes_read BIGINT, error VARCHAR)"
    )
    for r in rows:
        con.execute(
            "INSERT INTO f VALUES (?, ?, ?, ?, 'computed', 'image/png', 'image/png', ?, 1, 1, "
            "NULL, ?, ?, 1, NULL)",
            [r["media_id"], r["etag"], r.get("status", "active"), r.get("file_hash"),
             r.get("phash"), json.dumps({"format": "PNG"}), r.get("reason")],
        )
    con.execute(f"COPY f TO '{path}' (FORMAT parquet)")
    con.close()
    return path


def test_fingerprints_apply_only_to_the_version_that_was_read(home: Path, tmp_path: Path) -> None:
    snap = write_snapshot(tmp_path / "s.parquet", [("site/a.png", 10, "e1"),
                                                   ("site/b.png", 10, "e2"),
                                                   ("site/c.png", 10, "e3")])
    with open_catalog(home) as c:
        c.apply_inventory(snap, BUCKET)
        assert len(c.pending_fingerprints()) == 3
    frag = fingerprint_fragment(tmp_path / "f.parquet", [
        {"media_id": media_id_for(BUCKET, "site/a.png"), "etag": "e1", "file_hash": "aa"},
        # b changed after it was read: this result is stale and must not apply.
        {"media_id": media_id_for(BUCKET, "site/b.png"), "etag": "old", "file_hash": "bb"},
        {"media_id": media_id_for(BUCKET, "site/c.png"), "etag": "e3", "status": "quarantined",
         "file_hash": "cc", "reason": "corrupt image"},
    ])
    with open_catalog(home) as c:
        c.apply_fingerprints([frag])
        rows = dict(c.con.execute(
            "SELECT key, (status, file_hash, quarantine_reason) FROM media_files").fetchall())
        pending = [p.key for p in c.pending_fingerprints()]
    assert rows["site/a.png"] == ("active", "aa", None)
    assert rows["site/b.png"] == ("pending", None, None)
    assert rows["site/c.png"] == ("quarantined", "cc", "corrupt image")
    assert pending == ["site/b.png"]


def test_exact_duplicate_groups_have_a_canonical_member_and_wasted_bytes(
    home: Path, tmp_path: Path
) -> None:
    keys = ["site/a.png", "blog/a-copy.png", "shop/a-again.png", "site/other.png"]
    snap = write_snapshot(tmp_path / "s.parquet", [(k, 100, f"e{i}") for i, k in enumerate(keys)])
    hashes = ["h1", "h1", "h1", "h2"]
    frag = fingerprint_fragment(tmp_path / "f.parquet", [
        {"media_id": media_id_for(BUCKET, k), "etag": f"e{i}", "file_hash": h}
        for i, (k, h) in enumerate(zip(keys, hashes, strict=True))
    ])
    with open_catalog(home) as c:
        c.apply_inventory(snap, BUCKET)
        c.apply_fingerprints([frag])
        stats = c.rebuild_duplicate_groups()
        members = c.con.execute(
            "SELECT key, is_canonical FROM duplicate_members ORDER BY key").fetchall()
    assert (stats.groups, stats.duplicate_files, stats.wasted_bytes) == (1, 3, 200)
    # All three were first seen together; the smallest key is canonical.
    assert members == [("blog/a-copy.png", True), ("shop/a-again.png", False),
                       ("site/a.png", False)]


def test_near_duplicates_match_brute_force(home: Path, tmp_path: Path) -> None:
    import random

    rng = random.Random(3)
    base = [rng.getrandbits(64) for _ in range(60)]
    hashes: list[int] = []
    for h in base:
        hashes.append(h)
        flipped = h
        for bit in rng.sample(range(64), rng.randint(1, 9)):
            flipped ^= 1 << bit
        hashes.append(flipped)
    keys = [f"site/{i}.jpg" for i in range(len(hashes))]
    snap = write_snapshot(tmp_path / "s.parquet", [(k, 10, f"e{i}") for i, k in enumerate(keys)])
    frag = fingerprint_fragment(tmp_path / "f.parquet", [
        {"media_id": media_id_for(BUCKET, k), "etag": f"e{i}", "file_hash": f"h{i}", "phash": h}
        for i, (k, h) in enumerate(zip(keys, hashes, strict=True))
    ])
    for distance in (3, 6, 9):
        with open_catalog(home) as c:
            if distance == 3:
                c.apply_inventory(snap, BUCKET)
                c.apply_fingerprints([frag])
            c.rebuild_near_duplicates(distance)
            found = {
                tuple(sorted((a, b))): d for a, b, d in c.con.execute(
                    "SELECT media_id_a::VARCHAR, media_id_b::VARCHAR, distance "
                    "FROM near_duplicates").fetchall()
            }
        ids = [media_id_for(BUCKET, k) for k in keys]
        expected = {
            tuple(sorted((ids[i], ids[j]))): bin(hashes[i] ^ hashes[j]).count("1")
            for i in range(len(ids)) for j in range(i + 1, len(ids))
            if bin(hashes[i] ^ hashes[j]).count("1") <= distance
        }
        assert expected, "the fixture must contain near pairs"
        assert found == expected


WRITER = """
import sys
from pathlib import Path
from media_pipeline.catalog import Catalog
home, snap = Path(sys.argv[1]), Path(sys.argv[2])
for i in range(8):
    with Catalog.open(home) as c:
        c.apply_inventory(snap, "media")
        c.record_audit(sys.argv[3], "test-write", details={"i": i})
print("done")
"""


def test_two_writers_at_once_both_succeed(home: Path, tmp_path: Path) -> None:
    snap_a = write_snapshot(tmp_path / "a.parquet", [(f"site/{i}", i + 1, "e") for i in range(200)])
    with open_catalog(home):
        pass
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(snap_a), name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("writer-1", "writer-2")
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    with open_catalog(home) as c:
        actors = dict(c.con.execute(
            "SELECT actor, count(*) FROM audit_log GROUP BY actor").fetchall())
        total = c.con.execute("SELECT count(*), count(DISTINCT media_id) FROM media_files")
        counts = total.fetchone()
    assert actors == {"writer-1": 8, "writer-2": 8}
    assert counts == (200, 200)


def test_a_stale_missing_result_does_not_hide_a_reuploaded_object(
    home: Path, tmp_path: Path
) -> None:
    with open_catalog(home) as c:
        c.apply_inventory(write_snapshot(tmp_path / "1.parquet", [("site/a.png", 1, "e1")]),
                          BUCKET)
        c.apply_inventory(write_snapshot(tmp_path / "2.parquet", [("site/a.png", 2, "e2")]),
                          BUCKET)
    # The reader saw version e1 vanish; meanwhile e2 was uploaded.
    frag = fingerprint_fragment(tmp_path / "f.parquet", [
        {"media_id": media_id_for(BUCKET, "site/a.png"), "etag": "e1", "status": "missing"}])
    with open_catalog(home) as c:
        c.apply_fingerprints([frag])
    assert statuses(home) == {"site/a.png": "pending"}


def test_an_inventory_report_older_than_the_catalog_rolls_nothing_back(
    home: Path, tmp_path: Path
) -> None:
    def snap(name: str, rows: list[tuple[str, int, str, datetime]]) -> Path:
        con = duckdb.connect()
        con.execute(
            "CREATE TABLE s (bucket VARCHAR, key VARCHAR, version_id VARCHAR, size BIGINT, "
            "etag VARCHAR, last_modified TIMESTAMPTZ, storage_class VARCHAR)")
        con.executemany("INSERT INTO s VALUES (?, ?, NULL, ?, ?, ?, 'STANDARD')",
                        [[BUCKET, k, n, e, t] for k, n, e, t in rows])
        con.execute(f"COPY s TO '{tmp_path / name}' (FORMAT parquet)")
        return tmp_path / name

    day1, day2, day3 = (datetime(2026, 5, d, tzinfo=UTC) for d in (1, 2, 3))
    with open_catalog(home) as c:  # a live listing on day 3 knows a new and a changed object
        c.apply_inventory(snap("live.parquet", [("site/old.jpg", 1, "v1", day1),
                                                ("site/changed.jpg", 2, "v2", day3),
                                                ("site/new.jpg", 3, "n1", day3)]), BUCKET)
        # The inventory report taken on day 2 knows neither.
        diff = c.apply_inventory(
            snap("report.parquet", [("site/old.jpg", 1, "v1", day1),
                                    ("site/changed.jpg", 2, "v1", day1)]),
            BUCKET, source="inventory", as_of=day2)
        rows = dict(c.con.execute("SELECT key, (status, etag) FROM media_files").fetchall())
    assert diff.missing == 0 and diff.changed == 0
    assert rows["site/new.jpg"] == ("pending", "n1")
    assert rows["site/changed.jpg"] == ("pending", "v2")


def test_storage_class_moves_are_recorded_and_archived_objects_are_not_read(
    home: Path, tmp_path: Path
) -> None:
    def snap(name: str, cls: str) -> Path:
        con = duckdb.connect()
        con.execute(
            f"COPY (SELECT '{BUCKET}' AS bucket, 'site/a.jpg' AS key, NULL::VARCHAR AS version_id,"
            f" 5::BIGINT AS size, 'e' AS etag, now()::TIMESTAMPTZ AS last_modified,"
            f" '{cls}' AS storage_class) TO '{tmp_path / name}' (FORMAT parquet)")
        return tmp_path / name

    with open_catalog(home) as c:
        c.apply_inventory(snap("1.parquet", "STANDARD"), BUCKET)
        diff = c.apply_inventory(snap("2.parquet", "GLACIER"), BUCKET)
        cls = c.con.execute("SELECT storage_class, status FROM media_files").fetchone()
        pending = c.pending_fingerprints()
    assert (diff.changed, diff.unchanged) == (0, 1)
    assert cls == ("GLACIER", "pending")
    assert pending == []


def test_a_purged_key_that_comes_back_is_revived_not_duplicated(
    home: Path, tmp_path: Path
) -> None:
    first = write_snapshot(tmp_path / "1.parquet", [("site/a.jpg", 1, "e1")])
    with open_catalog(home) as c:
        c.apply_inventory(first, BUCKET)
        c.con.execute("UPDATE media_objects SET status = 'purged', purged_at = now()")
        c.apply_inventory(write_snapshot(tmp_path / "2.parquet", [("site/a.jpg", 1, "e9")]),
                          BUCKET)
        rows = c.con.execute("SELECT status, etag, purged_at FROM media_files").fetchall()
    assert rows == [("pending", "e9", None)]
