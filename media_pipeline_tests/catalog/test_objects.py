"""catalog.objects on a real lake: the inventory diff (new, changed, unchanged, missing,
reappeared), reports older than the catalog, storage classes, a purged key that comes back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from media_pipeline.records import media_id_for
from media_pipeline_tests.catalog.store_helpers import (
    BUCKET,
    open_catalog,
    statuses,
    write_snapshot,
)


def test_inventory_diff_new_changed_unchanged_missing_and_reappeared(
    home: Path, tmp_path: Path
) -> None:
    first = write_snapshot(tmp_path / "1.parquet", [
        ("site/a.jpg", 10, "e1"), ("site/b.jpg", 20, "e2"), ("blog/c.png", 30, "e3"),
        ("top.txt", 5, "e4"),
    ])
    with open_catalog(home) as c:
        diff = c.objects.apply_inventory(first, BUCKET)
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
        diff = c.objects.apply_inventory(second, BUCKET)
    assert (diff.new, diff.changed, diff.unchanged, diff.missing) == (1, 1, 2, 1)
    assert statuses(home)["blog/c.png"] == "missing"

    # c comes back unchanged: it is restored, not duplicated.
    third = write_snapshot(tmp_path / "3.parquet", [
        ("site/a.jpg", 10, "e1"), ("site/b.jpg", 20, "e2-new"), ("top.txt", 5, "e4"),
        ("shop/d.gif", 40, "e5"), ("blog/c.png", 30, "e3"),
    ])
    with open_catalog(home) as c:
        diff = c.objects.apply_inventory(third, BUCKET)
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
        c.objects.apply_inventory(full, BUCKET)
    with open_catalog(home) as c:
        diff = c.objects.apply_inventory(empty, BUCKET)
        rows = c.con.execute("SELECT status, count(*) FROM media_files GROUP BY ALL").fetchall()
    assert diff.missing == 50
    assert rows == [("missing", 50)]


def test_missing_is_scoped_to_the_bucket(home: Path, tmp_path: Path) -> None:
    with open_catalog(home) as c:
        c.objects.apply_inventory(
            write_snapshot(tmp_path / "a.parquet", [("x/1", 1, "e")], "other"), "other")
        diff = c.objects.apply_inventory(write_snapshot(tmp_path / "b.parquet", []), BUCKET)
    assert diff.missing == 0
    assert statuses(home) == {"x/1": "pending"}


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
        c.objects.apply_inventory(snap("live.parquet", [("site/old.jpg", 1, "v1", day1),
                                                        ("site/changed.jpg", 2, "v2", day3),
                                                        ("site/new.jpg", 3, "n1", day3)]), BUCKET)
        # The inventory report taken on day 2 knows neither.
        diff = c.objects.apply_inventory(
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
        c.objects.apply_inventory(snap("1.parquet", "STANDARD"), BUCKET)
        diff = c.objects.apply_inventory(snap("2.parquet", "GLACIER"), BUCKET)
        cls = c.con.execute("SELECT storage_class, status FROM media_files").fetchone()
        pending = c.fingerprints.pending_fingerprints()
    assert (diff.changed, diff.unchanged) == (0, 1)
    assert cls == ("GLACIER", "pending")
    assert pending == []


def test_a_purged_key_that_comes_back_is_revived_not_duplicated(
    home: Path, tmp_path: Path
) -> None:
    first = write_snapshot(tmp_path / "1.parquet", [("site/a.jpg", 1, "e1")])
    with open_catalog(home) as c:
        c.objects.apply_inventory(first, BUCKET)
        c.con.execute("UPDATE media_objects SET status = 'purged', purged_at = now()")
        c.objects.apply_inventory(
            write_snapshot(tmp_path / "2.parquet", [("site/a.jpg", 1, "e9")]), BUCKET)
        rows = c.con.execute("SELECT status, etag, purged_at FROM media_files").fetchall()
    assert rows == [("pending", "e9", None)]


def test_last_seen_is_the_latest_listing_that_saw_the_object_without_rewriting_rows(
    home: Path, tmp_path: Path
) -> None:
    # Migration 6: a whole listing records itself in inventory_runs; media_files derives a
    # present object's last_seen from it, and media_objects' rows are not written again.
    objects = [("site/a.jpg", 10, "e1"), ("site/b.jpg", 20, "e2"), ("site/c.jpg", 30, "e3")]
    first = write_snapshot(tmp_path / "1.parquet", objects)
    second = write_snapshot(tmp_path / "2.parquet", objects[:2])  # c has gone

    def seen(c: Any) -> dict[str, Any]:
        return dict(c.con.execute("SELECT key, last_seen FROM media_files").fetchall())

    with open_catalog(home) as c:
        c.objects.apply_inventory(first, BUCKET)
        after_first = seen(c)
        snapshot = c.con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots("
                                 "current_database())").fetchall()[0][0]
        c.objects.apply_inventory(first, BUCKET)  # nothing changed
        again = seen(c)
        runs = [r[0] for r in c.con.execute(
            "SELECT started FROM inventory_runs ORDER BY started").fetchall()]
        changes = c.con.execute(
            "SELECT changes FROM ducklake_snapshots(current_database()) WHERE snapshot_id > ?",
            [snapshot]).fetchall()
        objects_id = c.con.execute(
            "SELECT table_id FROM ducklake_table_info(current_database()) "
            "WHERE table_name = 'media_objects'").fetchall()[0][0]
        c.objects.apply_inventory(second, BUCKET)
        after_second = seen(c)
        runs.append(c.con.execute("SELECT max(started) FROM inventory_runs").fetchall()[0][0])
        c.objects.apply_inventory(second, BUCKET)
        after_third = seen(c)
    assert set(after_first.values()) == {runs[0]}
    assert set(again.values()) == {runs[1]} and runs[1] > runs[0]
    # the unchanged listing wrote no object row (changes name tables by id)
    touched = {t for (change,) in changes for tables in change.values() for t in tables}
    assert changes and str(objects_id) not in touched
    # c went missing at the third listing: it keeps the time of the last listing that saw it
    assert after_second == {"site/a.jpg": runs[2], "site/b.jpg": runs[2], "site/c.jpg": runs[1]}
    assert after_third["site/c.jpg"] == runs[1] and after_third["site/a.jpg"] > runs[2]
