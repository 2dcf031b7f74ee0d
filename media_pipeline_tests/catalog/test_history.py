"""History on the lake: the snapshot a purge decided on, why a file was purged, and analysts'
queries as of a snapshot or a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from media_pipeline.catalog import history, lake
from media_pipeline.catalog.lake import TEST_TEMPLATE_ENV, LakeLocation
from media_pipeline.cli import main as cli
from media_pipeline.errors import CatalogError, InvalidInput, UnknownMedia
from media_pipeline_tests.catalog.lake_helpers import (
    KEY,
    MEDIA_ID,
    deleted_file,
    finish_purge,
    lake_catalog,
    purge_it,
)


@pytest.fixture(autouse=True)
def _raw_lakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests make their own tables in a new lake: not the suite's migrated template."""
    monkeypatch.delenv(TEST_TEMPLATE_ENV, raising=False)


@pytest.fixture
def location(tmp_path: Path) -> LakeLocation:
    return LakeLocation.embedded(tmp_path)


def test_current_snapshot_moves_with_commits_and_stays_put_inside_a_transaction(
        location: LakeLocation) -> None:
    con = lake.connect(location)
    con.execute("CREATE TABLE t (a INTEGER)")
    before = history.current_snapshot(con)
    con.execute("INSERT INTO t VALUES (1)")
    after = history.current_snapshot(con)
    assert after == before + 1
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO t VALUES (2)")
    assert history.current_snapshot(con) == after  # the snapshot the transaction reads
    con.execute("COMMIT")
    assert history.current_snapshot(con) == after + 1
    assert history.is_lake(con)


def test_the_old_single_file_catalog_records_nothing(tmp_path: Path) -> None:
    import duckdb

    con = duckdb.connect(str(tmp_path / "catalog.duckdb"))
    assert not history.is_lake(con)
    assert history.record_purge_snapshot(con, "p") is None


def test_a_purge_records_the_snapshot_that_committed_its_marks(
        location: LakeLocation) -> None:
    con, catalog = lake_catalog(location)
    deleted_file(catalog)
    purge_it(catalog, "p1")
    marks_committed = history.current_snapshot(con)
    # another process commits before the purge records: the recorded snapshot is still the
    # one with the marks, not the newest
    other = lake.connect(location)
    other.execute("INSERT INTO audit_log VALUES (now(), 'bob', 'tag.add', NULL, '{}', NULL)")
    other.close()
    recorded = history.record_purge_snapshot(con, "p1")
    assert recorded == marks_committed
    row = con.execute("SELECT purge_id, snapshot_id FROM purge_snapshots").fetchall()
    assert row == [("p1", marks_committed)]
    assert con.execute(f"SELECT count(*) FROM purge_marks AT (VERSION => {recorded - 1}) "
                       "WHERE purge_id = 'p1'").fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM purge_marks AT (VERSION => {recorded}) "
                       "WHERE purge_id = 'p1'").fetchone() == (1,)


def test_why_purged_comes_from_the_snapshot_not_from_today(location: LakeLocation) -> None:
    con, catalog = lake_catalog(location)
    deleted_file(catalog)
    purge_it(catalog, "p1")
    snapshot = history.record_purge_snapshot(con, "p1")
    finish_purge(catalog, "p1")
    # after the purge, a page starts pointing at the (gone) file and the scan history grows
    con.execute("INSERT INTO media_references (media_id, bucket, key, content_type, "
                "content_id, source, origin, first_seen, last_seen) "
                "VALUES (?, 'media', ?, 'webpage', '9', 'cms', 'scan', now(), now())",
                [MEDIA_ID, KEY])
    con.close()
    found = history.explain_purge(location, MEDIA_ID)
    assert found.purge_id == "p1" and found.snapshot_id == snapshot
    assert found.key == KEY
    assert found.references == []  # as the purge saw it
    assert found.file is not None
    assert found.file["deleted_by"] == "alice" and found.file["status"] == "deleted"
    assert found.file["reference_count"] == 0
    assert [s["source"] for s in found.scans] == ["cms"]
    assert found.scans[0]["documents"] == 120
    assert [a["action"] for a in found.audit] == ["delete", "purge"]
    assert found.run["state"] == "done"


def test_why_purged_of_a_file_never_purged_is_one_clear_error(location: LakeLocation) -> None:
    con, catalog = lake_catalog(location)
    deleted_file(catalog)
    con.close()
    with pytest.raises(UnknownMedia, match="was not purged"):
        history.explain_purge(location, MEDIA_ID)


def test_why_purged_says_when_the_snapshot_is_gone(location: LakeLocation) -> None:
    con, catalog = lake_catalog(location)
    deleted_file(catalog)
    purge_it(catalog, "p1")
    con.execute("INSERT INTO purge_snapshots VALUES ('p1', 987654, now())")  # never made
    finish_purge(catalog, "p1")
    con.close()
    found = history.explain_purge(location, MEDIA_ID)
    assert found.file is None and "no snapshot at 987654" in str(found.snapshot_note)
    assert [a["action"] for a in found.audit] == ["delete", "purge"]


def test_why_purged_command(location: LakeLocation, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path))
    con, catalog = lake_catalog(location)
    deleted_file(catalog)
    purge_it(catalog, "p1")
    snapshot = history.record_purge_snapshot(con, "p1")
    finish_purge(catalog, "p1")
    con.close()
    result = CliRunner().invoke(cli, ["why-purged", MEDIA_ID])
    assert result.exit_code == 0, result.output
    assert f"decided on catalog snapshot {snapshot}" in result.output
    assert "deleted by alice" in result.output and "references: none" in result.output
    assert "source cms: last trusted scan" in result.output
    as_json = CliRunner().invoke(cli, ["why-purged", MEDIA_ID, "--json"])
    assert json.loads(as_json.output)["snapshot_id"] == snapshot
    missing = CliRunner().invoke(cli, ["why-purged", "00000000-0000-0000-0000-000000000000"])
    assert missing.exit_code == 1 and "was not purged" in missing.output


# -- query --at -----------------------------------------------------------------------------------


def _two_versions(location: LakeLocation) -> tuple[int, datetime]:
    con = lake.connect(location)
    con.execute("CREATE TABLE media_files (media_id VARCHAR, status VARCHAR)")
    con.execute("INSERT INTO media_files VALUES ('a', 'active'), ('b', 'active')")
    first = history.current_snapshot(con)
    between = datetime.now(UTC)
    con.execute("UPDATE media_files SET status = 'deleted' WHERE media_id = 'b'")
    con.execute("INSERT INTO media_files VALUES ('c', 'active')")
    con.close()
    return first, between


def _query(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["query", *args, "--format", "json"])
    return result.exit_code, result.output


def test_query_at_a_snapshot_or_a_time_reads_the_catalog_as_it_was(
        location: LakeLocation, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path))
    first, between = _two_versions(location)
    sql = "SELECT media_id, status FROM media_files ORDER BY media_id"
    then = [{"media_id": "a", "status": "active"}, {"media_id": "b", "status": "active"}]
    code, out = _query(sql, "--at", str(first))
    assert code == 0, out
    assert json.loads(out) == then
    code, out = _query(sql, "--at", between.isoformat())
    assert code == 0, out
    assert json.loads(out) == then
    code, out = _query(sql, "--at", str(first + 2))
    assert code == 0, out
    assert [r["media_id"] for r in json.loads(out)] == ["a", "b", "c"]


def test_query_at_stays_read_only_and_bounded(location: LakeLocation, tmp_path: Path,
                                              monkeypatch) -> None:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path))
    first, _ = _two_versions(location)
    for sql in ("INSERT INTO media_files VALUES ('x', 'active')",
                "SELECT * FROM read_csv('/etc/passwd')",
                "SET enable_external_access = true"):
        code, out = _query(sql, "--at", str(first))
        assert code == 1 and out.startswith("error: query failed"), (sql, out)
        assert len(out.strip().splitlines()) == 1


def test_query_at_bad_input_is_one_line(location: LakeLocation, tmp_path: Path,
                                        monkeypatch) -> None:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path))
    _two_versions(location)
    code, out = _query("SELECT 1", "--at", "last tuesday")
    assert code == 1 and "--at takes a snapshot id" in out
    code, out = _query("SELECT 1", "--at", "99999")
    assert code == 1 and "no snapshot at 99999" in out, out
    code, out = _query("SELECT 1", "--at", "2001-01-01")
    assert code == 1 and "no snapshot at 2001-01-01" in out, out


def test_parse_at() -> None:
    assert history.parse_at(" 42 ") == 42
    assert history.parse_at("2026-12-01T09:00:00") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert history.parse_at("2026-12-01T09:00:00+01:00").utcoffset() is not None
    with pytest.raises(InvalidInput):
        history.parse_at("yesterday")
    with pytest.raises(CatalogError):
        lake.connect(LakeLocation.embedded(Path("/nonexistent-for-sure")), at=1)
