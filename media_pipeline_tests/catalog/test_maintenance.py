"""catalog_maintenance on a real lake: flush, merge, expire (never a purge's snapshot within
its retention), clean up; the figures it reports; the Dagster asset's metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from media_pipeline.catalog import history, lake
from media_pipeline.catalog.catalog import ensure_schema
from media_pipeline.catalog.lake import LakeLocation
from media_pipeline.catalog.maintenance import run_maintenance
from media_pipeline.defs.catalog import catalog_maintenance
from media_pipeline.defs.resources import MediaPipelineResource, MediaS3Resource
from media_pipeline.settings import Settings

LATER = datetime.now(UTC) + timedelta(days=3)  # every snapshot made now is then 3 days old


def _parquet_files(location: LakeLocation) -> set[Path]:
    return set(Path(location.data).rglob("*.parquet"))


def _busy_lake(location: LakeLocation) -> tuple[int, int]:
    """Many small commits (files and inlined rows); a purge decides midway. Returns the purge's
    snapshot and the row count it saw."""
    con = lake.connect(location)
    ensure_schema(con, location)
    con.execute("CREATE TABLE events (n INTEGER, note VARCHAR)")
    for i in range(6):
        con.execute("INSERT INTO events SELECT range, 'batch' FROM range(?, ?)",
                    [i * 100, i * 100 + 40])
    con.execute("INSERT INTO events VALUES (-1, 'inlined')")
    purge_seen = history.current_snapshot(con)
    con.execute("INSERT INTO purge_snapshots VALUES ('p1', ?, now())", [purge_seen])
    con.execute("DELETE FROM events WHERE n < 50")
    for i in range(3):
        con.execute("INSERT INTO events VALUES (?, 'inlined')", [1000 + i])
    con.close()
    return purge_seen, 241


def test_maintenance_compacts_expires_and_keeps_the_purge_snapshot(tmp_path: Path) -> None:
    location = LakeLocation.embedded(tmp_path)
    purge_seen, seen_rows = _busy_lake(location)
    con = lake.connect(location)
    today = con.execute("SELECT count(*), sum(n) FROM events").fetchall()
    before = len(con.execute("FROM ducklake_snapshots('lake')").fetchall())
    report = run_maintenance(con, snapshot_retention_days=1, purge_snapshot_retention_days=90,
                             now=LATER, grace=timedelta(0))
    assert report.rows_flushed >= 4  # the inlined rows became files
    assert report.files_merged > report.files_created >= 1
    assert report.snapshots_before == before
    assert report.snapshots_kept_for_purges == 1
    left = [r[0] for r in con.execute("SELECT snapshot_id FROM ducklake_snapshots('lake') "
                                      "ORDER BY 1").fetchall()]
    # all but the purge's and the newest (the flush and merge commits count too; the
    # cleanup's own commit comes after)
    assert report.snapshots_expired >= before - 2
    assert purge_seen in left and len(left) <= 3, left
    assert report.files_deleted > 0 and report.bytes_freed > 0
    # nothing lost: today's rows, and the catalog as the purge saw it
    assert con.execute("SELECT count(*), sum(n) FROM events").fetchall() == today
    assert con.execute(f"SELECT count(*) FROM events AT (VERSION => {purge_seen})"
                       ).fetchall() == [(seen_rows,)]
    # every file on disk is one the lake still lists, and the other way round
    listed = {Path(r[0]) for r in con.execute(
        "SELECT data_file FROM ducklake_list_files('lake', 'events')").fetchall()}
    assert listed <= _parquet_files(location)
    assert report.files_after < report.files_before + report.rows_flushed
    con.close()


def test_a_purge_snapshot_past_its_retention_is_expired(tmp_path: Path) -> None:
    location = LakeLocation.embedded(tmp_path)
    purge_seen, _ = _busy_lake(location)
    con = lake.connect(location)
    report = run_maintenance(con, snapshot_retention_days=1, purge_snapshot_retention_days=1,
                             now=LATER + timedelta(days=1), grace=timedelta(0))
    assert report.snapshots_kept_for_purges == 0
    left = [r[0] for r in con.execute("SELECT snapshot_id FROM ducklake_snapshots('lake')"
                                      ).fetchall()]
    assert purge_seen not in left
    con.close()


def test_recent_snapshots_and_files_stay_within_the_grace(tmp_path: Path) -> None:
    location = LakeLocation.embedded(tmp_path)
    _busy_lake(location)
    con = lake.connect(location)
    on_disk = _parquet_files(location)
    report = run_maintenance(con, snapshot_retention_days=30, purge_snapshot_retention_days=90)
    assert report.snapshots_expired == 0 and report.files_deleted == 0
    assert report.bytes_freed == 0
    assert on_disk <= _parquet_files(location)  # merged-away files wait for the grace
    later = run_maintenance(con, snapshot_retention_days=30, purge_snapshot_retention_days=90,
                            now=LATER)
    assert later.files_deleted == 5 and later.bytes_freed > 0  # past the grace: gone
    assert len(on_disk - _parquet_files(location)) == 5  # the five merged away
    listed = {Path(f) for row in con.execute(
        "SELECT data_file, delete_file FROM ducklake_list_files('lake', 'events')").fetchall()
        for f in row if f}
    assert listed <= _parquet_files(location)
    con.close()


def test_the_asset_reports_the_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path))
    _busy_lake(Settings.from_env().catalog_location)
    result = dg.materialize(
        [catalog_maintenance], instance=dg.DagsterInstance.ephemeral(),
        resources={"media": MediaPipelineResource(s3=MediaS3Resource(), home=str(tmp_path))})
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert {"files_before", "files_after", "snapshots_expired", "bytes_freed",
            "seconds"} <= set(metadata)
    assert metadata["rows_flushed"].value >= 4
    assert metadata["files_merged"].value > 0
