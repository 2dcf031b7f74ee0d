"""The catalog as a DuckLake, attached by several real processes at once: migrations racing on a
new lake, conflicting writers retried without losing an update, a plain DuckDB reading while a
writer commits, the application and a pipeline run side by side, a writer killed mid-commit,
PostgreSQL metadata with data on S3, and the settings named when the lake cannot be reached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from media_pipeline import stages
from media_pipeline.analyst_query import run_query
from media_pipeline.catalog import Catalog, CatalogConflict, CatalogError, lake
from media_pipeline.catalog import catalog as catalog_module
from media_pipeline.catalog.lifecycle import PURGE_MIN_AGE
from media_pipeline.catalog.migrations import LATEST_VERSION
from media_pipeline.errors import SettingsError
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline.storage import ensure_bucket
from media_pipeline_tests.app_fixtures import png_bytes
from media_pipeline_tests.fixtures_db import POSTGRES_ADMIN_URL, _fresh_database
from media_pipeline_tests.fixtures_s3 import env_for

BUCKET = "media"
ROOT = Path(__file__).resolve().parents[2]


def objects(keys: list[str], size: int = 1) -> list[dict[str, Any]]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return [{"bucket": BUCKET, "key": k, "version_id": None, "size": size, "etag": f"e-{k}",
             "last_modified": now, "storage_class": "STANDARD"} for k in keys]


def python(code: str, *args: str, env: dict[str, str] | None = None,
           stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT,
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def finish(procs: list[subprocess.Popen[str]], timeout: float = 240) -> list[str]:
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-3000:]
        outs.append(out)
    return outs


# -- migrations --------------------------------------------------------------------------------

def test_processes_attaching_a_new_lake_at_once_migrate_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lake.TEST_TEMPLATE_ENV)  # every migration, from an empty lake
    home = tmp_path / "home"
    code = """
        import sys
        from media_pipeline.catalog import Catalog
        with Catalog.open(sys.argv[1]) as c:
            print(c.schema_version())
    """
    outs = finish([python(code, str(home)) for _ in range(3)])
    assert [int(out) for out in outs] == [LATEST_VERSION] * 3
    with Catalog.open(home) as c:
        versions = c.con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        assert versions == [(v,) for v in range(1, LATEST_VERSION + 1)]
        assert c.con.execute("SELECT count(*) FROM media_files").fetchall() == [(0,)]


def test_a_home_moved_elsewhere_attaches_where_it_is_now(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "old") as c:
        # enough rows to be written as a data file, not inlined into the metadata
        c.con.execute("INSERT INTO audit_log SELECT now(), 'someone', 'moved', NULL, NULL, "
                      "i::VARCHAR FROM range(5000) t(i)")
    (tmp_path / "old").rename(tmp_path / "new")
    with Catalog.open(tmp_path / "new") as c:
        assert c.con.execute("SELECT count(*) FROM audit_log WHERE action = 'moved'"
                             ).fetchall() == [(5000,)]


def test_a_new_lake_made_from_the_test_template_is_its_own(tmp_path: Path) -> None:
    """The suite's shortcut (conftest): a new embedded lake is a copy of one made once; each
    copy is at the current version and writes its data files in its own home."""
    template = Path(os.environ[lake.TEST_TEMPLATE_ENV])
    before = sorted(p for p in template.parent.rglob("*") if p.is_file())
    for name in ("a", "b"):
        with Catalog.open(tmp_path / name) as c:
            assert c.schema_version() == LATEST_VERSION
            c.con.execute("INSERT INTO audit_log SELECT now(), 'someone', ?, NULL, NULL, "
                          "i::VARCHAR FROM range(5000) t(i)", [name])
    for name in ("a", "b"):
        with Catalog.open(tmp_path / name) as c:
            assert c.con.execute("SELECT action, count(*) FROM audit_log GROUP BY 1"
                                 ).fetchall() == [(name, 5000)]
        assert list((tmp_path / name / "catalog" / "data").rglob("*.parquet"))
    assert sorted(p for p in template.parent.rglob("*") if p.is_file()) == before


def test_data_set_apart_from_the_metadata_is_not_silently_moved(tmp_path: Path) -> None:
    first = lake.LakeLocation(metadata=str(tmp_path / "meta.sqlite"),
                              data=str(tmp_path / "first") + os.sep)
    with Catalog.open(first) as c:
        c.con.execute("INSERT INTO audit_log VALUES (now(), 'someone', 'x', NULL, NULL, NULL)")
    other = replace(first, data=str(tmp_path / "other") + os.sep)
    with pytest.raises(CatalogError) as caught, Catalog.open(other):
        pass
    message = str(caught.value)
    assert "\n" not in message and lake.DATA_SETTING in message and "first" in message


def test_a_newer_catalog_is_refused_in_one_line_naming_both_versions(tmp_path: Path) -> None:
    with Catalog.open(tmp_path) as c:
        c.con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())",
                      [LATEST_VERSION + 7])
    # This process checked the version a moment ago and trusts that for a while (another
    # process, or this one once SCHEMA_CHECK_SECONDS have passed, checks again).
    with Catalog.open(tmp_path):
        pass
    lake.forget_schema_checks()
    for read_only in (False, True):
        with pytest.raises(CatalogError) as caught, Catalog.open(tmp_path, read_only=read_only):
            pass
        message = str(caught.value)
        assert "\n" not in message
        assert f"schema version {LATEST_VERSION + 7}" in message
        assert f"understands ({LATEST_VERSION})" in message


# -- conflicts ---------------------------------------------------------------------------------

INCREMENTER = """
    import sys
    from media_pipeline.catalog import Catalog
    home, media_id, name, times = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with Catalog.open(home) as c:
        def bump() -> None:
            # read, then write what was read plus one: a lost update would show in the total
            [(n,)] = c.con.execute("SELECT coalesce(width, 0) FROM media_objects "
                                   "WHERE media_id = ?", [media_id]).fetchall()
            c.con.execute("UPDATE media_objects SET width = ? WHERE media_id = ?",
                          [n + 1, media_id])
            c.application.record_audit(name, "test.bump", media_id)
        for _ in range(times):
            c.write(bump)
    print("done")
"""


def test_conflicting_writers_in_two_processes_are_retried_and_no_update_is_lost(
        tmp_path: Path) -> None:
    with Catalog.open(tmp_path) as c:
        c.objects.apply_objects(objects([f"k/{i}" for i in range(50)]), BUCKET)
    media_id = media_id_for(BUCKET, "k/7")
    times = 15
    finish([python(INCREMENTER, str(tmp_path), media_id, name, str(times))
            for name in ("one", "two")])
    with Catalog.open(tmp_path) as c:
        assert c.con.execute("SELECT width FROM media_objects WHERE media_id = ?",
                             [media_id]).fetchall() == [(2 * times,)]
        assert c.con.execute("SELECT actor, count(*) FROM audit_log WHERE action = 'test.bump' "
                             "GROUP BY ALL ORDER BY 1").fetchall() == [("one", times),
                                                                       ("two", times)]


def test_a_conflict_past_the_last_attempt_is_a_catalog_conflict_and_applies_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "WRITE_ATTEMPTS", 3)
    monkeypatch.setattr(catalog_module, "WRITE_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(catalog_module, "FIRST_BACKOFF", 0.001)
    with Catalog.open(tmp_path) as mine, Catalog.open(tmp_path) as other:
        mine.objects.apply_objects(objects(["a", "b"]), BUCKET)
        attempts = []

        def body() -> None:
            attempts.append(1)
            mine.con.execute("UPDATE media_objects SET status = 'active' WHERE key = 'a'")
            mine.application.record_audit("me", "test.never")
            # Another session changes the same rows and commits first, every time.
            other.con.execute("UPDATE media_objects SET etag = etag || '+' WHERE key = 'a'")

        with pytest.raises(CatalogConflict,
                           match=r"after 3 attempts in \d+ s; nothing of it was applied"):
            mine.write(body)
        assert len(attempts) == 3
        assert mine.con.execute("SELECT status, etag FROM media_files WHERE key = 'a'"
                                ).fetchall() == [("pending", "e-a+++")]
        assert mine.con.execute("SELECT count(*) FROM audit_log WHERE action = 'test.never'"
                                ).fetchall() == [(0,)]


# -- readers -----------------------------------------------------------------------------------

PLAIN_READER = """
    import json, sys
    import duckdb
    setup = json.loads(sys.stdin.readline())
    con = duckdb.connect(config=setup["config"])
    for statement in setup["statements"]:
        con.execute(statement)
    print("ready", flush=True)
    for line in sys.stdin:
        [(n,)] = con.execute("SELECT count(*) FROM media_files").fetchall()
        print(n, flush=True)
"""


def test_a_plain_duckdb_in_another_process_reads_fresh_rows_while_a_writer_commits(
        tmp_path: Path) -> None:
    location = lake.LakeLocation.embedded(tmp_path)
    with Catalog.open(location):
        pass
    setup = lake.session_setup(location)
    # Only DuckDB itself and the printed statements: LOAD of the pinned extension files, ATTACH.
    assert all(s.startswith(("LOAD ", "ATTACH ", "USE ", "CREATE OR REPLACE SECRET"))
               for s in setup["statements"])
    reader = python(PLAIN_READER, stdin=subprocess.PIPE)
    assert reader.stdin is not None and reader.stdout is not None
    reader.stdin.write(json.dumps(setup) + "\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "ready"

    def count() -> int:
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.write("?\n")
        reader.stdin.flush()
        return int(reader.stdout.readline())

    try:
        with Catalog.open(location) as writer:
            seen = [count()]
            for batch in range(3):
                with writer.transaction():
                    writer.objects.apply_objects(
                        objects([f"b{batch}/{i}" for i in range(40)]), BUCKET)
                    seen.append(count())  # mid-transaction: the reader is not blocked
                seen.append(count())
        assert seen == [0, 0, 40, 40, 80, 80, 120]
    finally:
        reader.kill()
        reader.wait()


def test_the_analysts_query_reads_the_live_catalog_read_only(settings: Settings) -> None:
    with Catalog.open(settings.catalog_location) as c:
        c.objects.apply_objects(objects(["a", "b"]), BUCKET)
        assert run_query(settings, "SELECT count(*) FROM media_files")[1] == [(2,)]
        c.objects.apply_objects(objects(["c"]), BUCKET)
    assert run_query(settings, "SELECT count(*) FROM media_files")[1] == [(3,)]
    with pytest.raises(Exception, match="read-only"):
        run_query(settings, "DELETE FROM media_objects")


# -- the application and a pipeline run ----------------------------------------------------------

PIPELINE = """
    import sys
    from media_pipeline import stages
    from media_pipeline.settings import Settings
    from media_pipeline.storage import make_client
    settings = Settings.from_env()
    client = make_client(settings)
    for _ in range(int(sys.argv[1])):
        stages.take_inventory(settings, client)
        stages.commit_inventory(settings)
        stages.fingerprint_pending(settings, client)
        stages.rebuild_duplicates(settings)
    print("done")
"""

APPLICATION = """
    import io
    import sys
    from media_pipeline.library import MediaLibrary
    from media_pipeline.settings import Settings
    from media_pipeline_tests.app_fixtures import png_bytes
    library = MediaLibrary(Settings.from_env())
    library.create_namespace("team", "alice")
    for i in range(int(sys.argv[1])):
        media = library.upload("team", io.BytesIO(png_bytes(seed=i)), f"p{i}.png", "alice")
        library.add_tag(media.media_id, f"tag{i % 3}", "alice")
        library.add_reference(media.media_id, "webpage", str(i), "alice")
    print("done")
"""


def test_the_application_and_a_pipeline_run_in_other_processes_both_write_everything(
        settings: Settings, s3_client: Any) -> None:
    for i in range(30):
        s3_client.put_object(Bucket=settings.bucket, Key=f"site/{i}.png",
                             Body=png_bytes(seed=100 + i), ContentType="image/png")
    env = {**env_for(settings), "MEDIA_PIPELINE_ADMINS": "alice",
           "MEDIA_PIPELINE_FINGERPRINT_WORKERS": "2"}
    uploads = 12
    finish([python(PIPELINE, "3", env=env), python(APPLICATION, str(uploads), env=env)],
           timeout=280)
    with Catalog.open(settings.catalog_location, read_only=True) as c:
        assert c.con.execute(
            "SELECT count(*) FROM media_files WHERE key LIKE 'site/%' AND status = 'active'"
        ).fetchall() == [(30,)]
        team = c.con.execute(
            "SELECT key, status, owner, reference_count FROM media_files WHERE namespace = 'team' "
            "ORDER BY key").fetchall()
        assert [row[1:] for row in team] == [("active", "alice", 1)] * uploads, team
        assert c.con.execute("SELECT count(*) FROM media_tags").fetchall() == [(uploads,)]
        assert c.con.execute("SELECT action, count(*) FROM audit_log WHERE actor = 'alice' "
                             "GROUP BY ALL ORDER BY 1").fetchall() == [
            ("namespace.create", 1), ("reference.add", uploads), ("tag.add", uploads),
            ("upload", uploads)]


# -- a writer killed mid-commit ----------------------------------------------------------------

BATCH_WRITER = """
    import sys
    from datetime import UTC, datetime, timedelta
    from media_pipeline.catalog import Catalog
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with Catalog.open(sys.argv[1]) as c:
        for batch in range(10_000):
            rows = [{"bucket": "media", "key": f"w{batch}/{i}", "version_id": None, "size": 1,
                     "etag": "e", "last_modified": now, "storage_class": "STANDARD"}
                    for i in range(25)]
            with c.transaction():
                c.objects.apply_objects(rows, "media", run_id=f"batch-{batch}")
                c.application.record_audit("writer", "test.batch", details={"batch": batch})
            print(batch, flush=True)
"""


@pytest.mark.parametrize("after_batches", [1, 4])
def test_a_writer_killed_mid_commit_leaves_whole_batches(tmp_path: Path,
                                                         after_batches: int) -> None:
    with Catalog.open(tmp_path):
        pass
    writer = python(BATCH_WRITER, str(tmp_path))
    assert writer.stdout is not None
    for _ in range(after_batches):
        writer.stdout.readline()
    os.kill(writer.pid, signal.SIGKILL)  # somewhere in the next batches' transactions
    writer.communicate()
    with Catalog.open(tmp_path) as c:
        [(files, batches)] = c.con.execute(
            "SELECT count(*), count(DISTINCT split_part(key, '/', 1)) FROM media_files"
        ).fetchall()
        audits = c.con.execute("SELECT (details->>'batch')::INT FROM audit_log "
                               "WHERE action = 'test.batch' ORDER BY 1").fetchall()
        runs = c.con.execute("SELECT count(*) FROM inventory_runs").fetchall()
        assert batches >= after_batches
        assert files == 25 * batches  # never part of a batch
        assert audits == [(b,) for b in range(batches)] and runs == [(batches,)]
        # and the lake still takes writes
        c.objects.apply_objects(objects(["after"]), BUCKET)


# -- PostgreSQL metadata, data on S3 -------------------------------------------------------------

@pytest.fixture
def lake_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one lake (a lake keeps its data path)."""
    for url in _fresh_database(POSTGRES_ADMIN_URL, "mp_lake_test"):
        yield url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def team_settings(settings: Settings, s3_client: Any, lake_database: str) -> Iterator[Settings]:
    ensure_bucket(s3_client, settings.bucket + "-lake", settings.region)
    yield replace(settings, catalog_metadata=lake_database,
                  catalog_data=f"s3://{settings.bucket}-lake/catalog-lake/")


def test_postgres_metadata_and_s3_data_take_a_pipeline_run_and_a_read(
        team_settings: Settings, s3_client: Any) -> None:
    settings = team_settings
    files = 24  # more rows than DuckLake inlines into the metadata: Parquet files on S3
    for i in range(files):
        s3_client.put_object(Bucket=settings.bucket, Key=f"site/{i}.png",
                             Body=png_bytes(seed=i), ContentType="image/png")
    stages.take_inventory(settings, s3_client)
    stages.commit_inventory(settings)
    stages.fingerprint_pending(settings, s3_client)
    with Catalog.open(settings.catalog_location, read_only=True) as c:
        assert c.con.execute("SELECT status, count(*) FROM media_files GROUP BY ALL"
                             ).fetchall() == [("active", files)]
    assert run_query(settings, "SELECT count(*) FROM media_files WHERE status = 'active'"
                     )[1] == [(files,)]
    # The data files are in the bucket, under the prefix; nothing under home but work files.
    listed = s3_client.list_objects_v2(Bucket=settings.bucket + "-lake",
                                       Prefix="catalog-lake/")
    assert listed.get("KeyCount", 0) > 0
    assert not (settings.home / "catalog").exists()


@pytest.mark.parametrize("metadata", [
    "postgresql://postgres:hunter2secret@127.0.0.1:1/nowhere",
    "postgresql://postgres:hunter2secret@127.0.0.1:5432/no_such_database_here",
])
def test_an_unreachable_postgres_is_one_line_naming_the_setting_without_the_password(
        settings: Settings, metadata: str) -> None:
    bad = replace(settings, catalog_metadata=metadata)
    for attempt in (lambda: Catalog.open(bad.catalog_location).__enter__(),
                    lambda: run_query(bad, "SELECT 1")):
        with pytest.raises(CatalogError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and "MEDIA_PIPELINE_CATALOG_METADATA" in message
        assert "hunter2secret" not in message


def test_a_postgres_url_without_a_database_names_the_setting(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="MEDIA_PIPELINE_CATALOG_METADATA"):
        Catalog.open(replace(settings, catalog_metadata="postgresql://u:pw@127.0.0.1/"
                             ).catalog_location).__enter__()


def test_the_catalog_settings_from_the_environment(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"MEDIA_PIPELINE_CATALOG_METADATA": "meta/lake.sqlite",
                                  "MEDIA_PIPELINE_CATALOG_DATA": "files",
                                  "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
                                  "AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"})
    location = settings.catalog_location
    assert location.metadata == str(tmp_path / "meta" / "lake.sqlite")
    assert location.data == str(tmp_path / "files") + "/"
    team = Settings.from_env({
        "MEDIA_PIPELINE_CATALOG_METADATA": "postgresql://u:topsecret@db.example/lake",
        "MEDIA_PIPELINE_CATALOG_DATA": "s3://lake-bucket/catalog/",
        "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_S3_REGION_NAME": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"})
    location = team.catalog_location
    assert location.is_postgres and location.data_on_s3
    assert location.data == "s3://lake-bucket/catalog/"
    assert (location.s3_endpoint_url, location.s3_region, location.s3_access_key_id,
            location.s3_secret_access_key) == ("http://127.0.0.1:9", "eu-west-1", "ak", "sk")
    shown = json.dumps(team.redacted(), default=str)
    assert "topsecret" not in shown and "db.example" in shown
    assert "topsecret" not in repr(team)


# -- a purge and a new reference, from two sessions at once ---------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
def any_lake(request: pytest.FixtureRequest, tmp_path: Path) -> lake.LakeLocation:
    if request.param == "sqlite":
        return lake.LakeLocation.embedded(tmp_path)
    return lake.LakeLocation(metadata=request.getfixturevalue("lake_database"),
                             data=str(tmp_path / "data") + "/")


def marked_for_purge(c: Catalog, key: str) -> tuple[str, datetime]:
    """A deleted, unreferenced file marked by a purge run (batch 0); returns (purge id, now)."""
    long_ago = datetime(2025, 1, 1, tzinfo=UTC)
    now = datetime.now(UTC)
    c.objects.apply_objects(objects([key]), BUCKET)
    media_id = media_id_for(BUCKET, key)
    outcome = c.lifecycle.soft_delete(media_id, "ed", allow_referenced=False, now=long_ago)[0]
    assert outcome == "deleted"
    purge_id = f"p-{key}"
    assert c.lifecycle.start_purge_run(purge_id, now, retention_days=30, versions="marker",
                                       sources=[], cutoff=now, horizon=now, batch_size=10)[0] == 1
    return purge_id, now


def test_a_reference_committed_during_a_purge_recheck_makes_the_recheck_skip_the_file(
        any_lake: lake.LakeLocation) -> None:
    with Catalog.open(any_lake) as purge, Catalog.open(any_lake) as app:
        purge_id, now = marked_for_purge(purge, "x")
        media_id = media_id_for(BUCKET, "x")
        attempts: list[list[dict[str, Any]]] = []

        def recheck() -> list[dict[str, Any]]:
            deleting = purge.lifecycle.recheck_purge_batch(purge_id, 0, now, now)
            attempts.append(deleting)
            if len(attempts) == 1:  # another process references it before this commits
                assert app.references.add_reference(media_id, "webpage", "1", "ed") is True
            return deleting

        assert purge.write(recheck) == []
        assert len(attempts) == 2 and [m["media_id"] for m in attempts[0]] == [media_id]
        assert purge.lifecycle.purge_marks_in(purge_id, 0, "skipped")[0]["reason"] == "referenced"
        assert app.references.references_of(media_id) == {"webpage": ["1"]}


REFERENCER = """
import sys
from media_pipeline.catalog import Catalog
from media_pipeline.catalog.lake import LakeLocation
with Catalog.open(LakeLocation(metadata=sys.argv[1], data=sys.argv[2])) as c:
    print(c.references.add_reference(sys.argv[3], "webpage", "1", "ed"))
"""


def test_a_delete_that_saw_no_reference_racing_a_new_one_never_lets_a_purge_take_it(
        any_lake: lake.LakeLocation) -> None:
    # A delete appends a fact and a reference a row: nothing makes them conflict, so a delete
    # that read "no references" may commit after another process added one. Whichever way it
    # goes, the file is never purged while referenced: the purge reads the index itself.
    long_ago = datetime(2025, 1, 1, tzinfo=UTC)
    now = datetime.now(UTC)
    with Catalog.open(any_lake) as c:
        c.objects.apply_objects(objects(["z"]), BUCKET)
        media_id = media_id_for(BUCKET, "z")
        try:
            with c.transaction():
                assert c.references.references_of(media_id) == {}  # what the delete decides on
                out = finish([python(REFERENCER, any_lake.metadata, any_lake.data, media_id)])
                assert out == ["True\n"]
                outcome = c.lifecycle.soft_delete(media_id, "ed", allow_referenced=False,
                                                  now=long_ago)[0]
                assert outcome == "deleted"  # it did not see the reference
        except CatalogConflict:  # the catalog serialised them: run again, it sees it
            outcome = c.lifecycle.soft_delete(media_id, "ed", allow_referenced=False,
                                              now=long_ago)[0]
            assert outcome == "refused"
        assert c.references.references_of(media_id) == {"webpage": ["1"]}
        assert c.lifecycle.media_state(media_id)["reference_count"] == 1  # type: ignore[index]
        assert c.lifecycle.purge_candidates(now, now)["count"] == 0
        assert c.lifecycle.start_purge_run("p-z", now, retention_days=30, versions="marker",
                                           sources=[], cutoff=now, horizon=now,
                                           batch_size=10)[0] == 0
        if outcome == "deleted":
            assert [r["key"] for r in c.references.kept_referenced(now)] == ["z"]


def test_app_actions_do_not_conflict_with_a_bulk_stage_rewriting_the_file_rows(
        lake_database: str, tmp_path: Path) -> None:
    # PostgreSQL metadata (with SQLite any two overlapping writers conflict). Delete, restore
    # and references append facts or touch small tables: a stage that rewrites every row of
    # media_objects meanwhile commits on its first attempt, and so do they.
    location = lake.LakeLocation(metadata=lake_database, data=str(tmp_path / "data") + "/")
    with Catalog.open(location) as stage, Catalog.open(location) as app:
        stage.objects.apply_objects(objects(["p", "q"]), BUCKET)
        p, q = media_id_for(BUCKET, "p"), media_id_for(BUCKET, "q")
        attempts: list[int] = []

        def bulk() -> None:
            attempts.append(1)
            stage.con.execute("UPDATE media_objects SET last_seen = now()")
            if len(attempts) == 1:  # the application acts before the stage commits
                assert app.lifecycle.soft_delete(p, "ed", allow_referenced=False)[0] == "deleted"
                assert app.references.add_reference(q, "webpage", "1", "ed") is True
                app.lifecycle.restore_media(p, "ed")
                assert app.lifecycle.soft_delete(p, "ed", allow_referenced=False)[0] == "deleted"

        stage.write(bulk)
        assert len(attempts) == 1
        assert stage.con.execute(
            "SELECT key, status, reference_count FROM media_files ORDER BY key").fetchall() == [
            ("p", "deleted", 0), ("q", "pending", 1)]


def test_a_reference_after_the_recheck_committed_is_refused(any_lake: lake.LakeLocation
                                                            ) -> None:
    from media_pipeline.errors import LifecycleError

    with Catalog.open(any_lake) as purge, Catalog.open(any_lake) as app:
        purge_id, now = marked_for_purge(purge, "y")
        media_id = media_id_for(BUCKET, "y")
        assert len(purge.lifecycle.recheck_purge_batch(purge_id, 0, now, now)) == 1
        with pytest.raises(LifecycleError, match="a purge is deleting"):
            app.references.add_reference(media_id, "webpage", "1", "ed")
        assert app.references.references_of(media_id) == {}


def deleted_long_ago(c: Catalog, key: str) -> str:
    """A deleted, unreferenced file no purge has marked yet; returns its media id."""
    c.objects.apply_objects(objects([key]), BUCKET)
    media_id = media_id_for(BUCKET, key)
    long_ago = datetime(2025, 1, 1, tzinfo=UTC)
    assert c.lifecycle.soft_delete(media_id, "ed", allow_referenced=False,
                                   now=long_ago)[0] == "deleted"
    return media_id


def mark_and_recheck(c: Catalog, key: str, min_age: timedelta = timedelta(0)
                     ) -> list[dict[str, Any]]:
    """A whole purge run's catalog side up to its S3 calls: mark, then re-check batch 0 (a file
    deleted less than ``min_age`` ago is not marked)."""
    now = datetime.now(UTC)
    c.lifecycle.start_purge_run(f"p-{key}", now, retention_days=30, versions="marker",
                                sources=[], cutoff=now, horizon=now, batch_size=10,
                                min_age=min_age)
    return c.lifecycle.recheck_purge_batch(f"p-{key}", 0, now, now, min_age=min_age)


def test_a_reference_whose_transaction_began_before_the_purge_marked_the_file_is_not_lost(
        any_lake: lake.LakeLocation) -> None:
    # The reference's snapshot has no mark (so it updates none); the purge marks and re-checks
    # (no reference committed yet) before the reference commits. One of them must lose: an
    # acknowledged reference to a file whose object the purge goes on to delete breaks the
    # promise.
    from media_pipeline.errors import LifecycleError

    with Catalog.open(any_lake) as purge, Catalog.open(any_lake) as app:
        media_id = deleted_long_ago(purge, "w")
        rechecks: list[list[dict[str, Any]]] = []

        def purge_meanwhile(context: dict[str, Any] | None) -> None:
            if not rechecks:
                rechecks.append(mark_and_recheck(purge, "w"))

        try:
            added = app.references.add_reference(media_id, "webpage", "1", "ed",
                                                 check=purge_meanwhile)
        except LifecycleError:
            added = False
        deleting = purge.lifecycle.purge_marks_in("p-w", 0, "deleting")
        assert not (added and deleting), "reference acknowledged and the file being purged"


def test_a_restore_whose_transaction_began_before_the_purge_marked_the_file_is_not_lost(
        any_lake: lake.LakeLocation) -> None:
    from media_pipeline.errors import LifecycleError

    with Catalog.open(any_lake) as purge, Catalog.open(any_lake) as app:
        media_id = deleted_long_ago(purge, "v")
        rechecks: list[list[dict[str, Any]]] = []

        def purge_meanwhile(state: dict[str, Any]) -> None:
            if not rechecks:
                rechecks.append(mark_and_recheck(purge, "v"))

        try:
            app.lifecycle.restore_media(media_id, "ed", check=purge_meanwhile)
            restored = True
        except LifecycleError:
            restored = False
        deleting = purge.lifecycle.purge_marks_in("p-v", 0, "deleting")
        assert not (restored and deleting), "restore acknowledged and the file being purged"


def test_a_reference_whose_transaction_began_before_the_file_was_deleted_and_purged_is_not_lost(
        any_lake: lake.LakeLocation) -> None:
    # `purge --days 0`: a file deleted a moment ago is past the retention. The reference's
    # snapshot shows the file active (nothing to claim, no mark), so no conflict stops it;
    # meanwhile an editor deletes the file and a purge marks and re-checks it. The purge's
    # minimum age keeps the file: it is skipped, not deleted.
    from media_pipeline.errors import LifecycleError

    with Catalog.open(any_lake) as other, Catalog.open(any_lake) as app:
        other.objects.apply_objects(objects(["u"]), BUCKET)
        media_id = media_id_for(BUCKET, "u")
        rechecks: list[list[dict[str, Any]]] = []

        def delete_and_purge_meanwhile(context: dict[str, Any] | None) -> None:
            if not rechecks:
                assert other.lifecycle.soft_delete(media_id, "ed", allow_referenced=False
                                                   )[0] == "deleted"
                rechecks.append(mark_and_recheck(other, "u", min_age=PURGE_MIN_AGE))

        try:
            added = app.references.add_reference(media_id, "webpage", "1", "ed",
                                                 check=delete_and_purge_meanwhile)
        except LifecycleError:
            added = False
        deleting = other.lifecycle.purge_marks_in("p-u", 0, "deleting")
        assert not (added and deleting), "reference acknowledged and the file being purged"
        assert added and rechecks == [[]]
        assert other.lifecycle.purge_marks_in("p-u", None, "marked") == []


def test_a_reference_transaction_older_than_the_limit_runs_again_on_a_new_snapshot(
        any_lake: lake.LakeLocation, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same race with the file past the purge's minimum age by the time the purge re-checks
    # it (the reference's transaction stayed open that long): the reference may not commit on
    # its old snapshot. Run again, it sees the purge's 'deleting' mark and is refused.
    import time as time_module

    from media_pipeline.catalog import references as references_module
    from media_pipeline.errors import LifecycleError

    monkeypatch.setattr(references_module, "WRITE_TRANSACTION_LIMIT", timedelta(seconds=0.5))
    with Catalog.open(any_lake) as other, Catalog.open(any_lake) as app:
        other.objects.apply_objects(objects(["t"]), BUCKET)
        media_id = media_id_for(BUCKET, "t")
        attempts: list[dict[str, Any] | None] = []

        def delete_wait_and_purge_meanwhile(context: dict[str, Any] | None) -> None:
            attempts.append(context)
            if len(attempts) == 1:
                assert other.lifecycle.soft_delete(media_id, "ed", allow_referenced=False
                                                   )[0] == "deleted"
                time_module.sleep(0.7)
                assert len(mark_and_recheck(other, "t", min_age=timedelta(seconds=0.6))) == 1

        with pytest.raises(LifecycleError, match="a purge is deleting"):
            app.references.add_reference(media_id, "webpage", "1", "ed",
                                         check=delete_wait_and_purge_meanwhile)
        assert len(attempts) == 2
        assert other.references.references_of(media_id) == {}
