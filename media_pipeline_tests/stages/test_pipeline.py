"""The object-catalog stretch end to end: embedded S3 over HTTP → Dagster assets → DuckDB file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from media_pipeline.catalog import Catalog
from media_pipeline.cli import main as cli
from media_pipeline.corpus import CorpusFile, generate_corpus
from media_pipeline.defs.execution import RunSummary, run_assets
from media_pipeline.demo import seed_bucket
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline_tests.fixtures_s3 import DEFAULT_PORT, dagster_resources, env_for


@pytest.fixture(scope="module")
def corpus() -> list[CorpusFile]:
    return generate_corpus()


def run(settings: Settings) -> RunSummary:
    import dagster as dg

    summary = run_assets(instance=dg.DagsterInstance.ephemeral(),
                         resources=dagster_resources(settings))
    assert summary.success, summary.failure
    return summary


def rows(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with Catalog.open(settings.catalog_location, read_only=True) as c:
        return c.con.execute(sql, params or []).fetchall()


def test_full_run_catalogs_validates_and_groups_the_corpus(
    settings: Settings, s3_client: Any, corpus: list[CorpusFile]
) -> None:
    seed_bucket(s3_client, settings.bucket, corpus)
    summary = run(settings)

    meta = summary.materialized
    assert meta["media_files"]["new"] == len(corpus)
    assert meta["media_files"]["bytes"] == sum(len(f.data) for f in corpus)
    assert meta["fingerprints"]["objects"] == len(corpus)
    assert meta["fingerprints"]["bytes_read"] == sum(len(f.data) for f in corpus)
    assert summary.checks == {"storage_usage": True, "file_accessibility": True,
                              "public_exposure": True, "reference_integrity": True,
                              "catalog_consistency": True, "content_sources_trusted": True}

    by_key = {k: (s, r) for k, s, r in rows(
        settings, "SELECT key, status, quarantine_reason FROM media_files")}
    assert set(by_key) == {f.key for f in corpus}
    hostile = {f.key for f in corpus if f.kind == "hostile"}
    for key, (status, reason) in by_key.items():
        if key in hostile:
            assert status == "quarantined" and reason, key
        else:
            assert status == "active", (key, reason)

    # Every exact copy is in a group with its source; sizes and wasted bytes add up.
    copies = [f for f in corpus if f.kind == "duplicate"]
    groups = rows(settings, "SELECT group_id, member_count, wasted_bytes, file_size "
                            "FROM duplicate_groups")
    assert len(groups) == len(copies)
    assert sum(g[2] for g in groups) == sum(len(f.data) for f in copies)
    members = dict(rows(settings, "SELECT key, group_id FROM duplicate_members"))
    for f in copies:
        assert f.original is not None
        assert members[f.key] == members[f.original]

    # Each resized or recompressed variant is reported as a near duplicate of its source.
    near = {frozenset(p) for p in rows(settings, """
        SELECT a.key, b.key FROM near_duplicates n
        JOIN media_files a ON a.media_id = n.media_id_a
        JOIN media_files b ON b.media_id = n.media_id_b""")}
    for f in corpus:
        if f.kind == "near-duplicate":
            assert frozenset((f.key, f.original)) in near, f.note


def test_second_run_reads_nothing_and_a_vanished_object_becomes_missing(
    settings: Settings, s3_client: Any, corpus: list[CorpusFile]
) -> None:
    files = corpus[:40]
    seed_bucket(s3_client, settings.bucket, files)
    run(settings)

    again = run(settings)
    assert again.materialized["media_files"]["unchanged"] == len(files)
    assert again.materialized["fingerprints"]["objects"] == 0
    assert again.materialized["fingerprints"]["bytes_read"] == 0

    gone, changed = files[0], files[1]
    s3_client.delete_object(Bucket=settings.bucket, Key=gone.key)
    s3_client.put_object(Bucket=settings.bucket, Key=changed.key, Body=changed.data + b"\0")
    third = run(settings)
    assert third.materialized["media_files"]["missing"] == 1
    assert third.materialized["media_files"]["changed"] == 1
    assert third.materialized["fingerprints"]["objects"] == 1
    assert third.checks["file_accessibility"] is False
    assert gone.key in third.check_descriptions["file_accessibility"]
    status = dict(rows(settings, "SELECT key, status FROM media_files"))
    assert status[gone.key] == "missing"
    assert len(status) == len(files)  # nothing dropped


def test_an_empty_restarted_server_marks_missing_and_deletes_nothing(
    settings: Settings, s3_client: Any, corpus: list[CorpusFile]
) -> None:
    files = corpus[:10]
    seed_bucket(s3_client, settings.bucket, files)
    run(settings)
    for f in files:  # what a restarted in-memory server looks like: the bucket is empty
        s3_client.delete_object(Bucket=settings.bucket, Key=f.key)
    summary = run_assets(resources=dagster_resources(settings))
    assert summary.materialized["media_files"]["missing"] == len(files)
    assert rows(settings, "SELECT status, count(*) FROM media_files GROUP BY ALL") == [
        ("missing", len(files))]


def test_analyst_queries_answer_while_a_run_is_writing(
    settings: Settings, s3_client: Any, corpus: list[CorpusFile]
) -> None:
    seed_bucket(s3_client, settings.bucket, corpus[:30])
    env = env_for(settings)
    subprocess.run([sys.executable, "-m", "media_pipeline.cli", "run"], env=env, check=True,
                   capture_output=True)
    seed_bucket(s3_client, settings.bucket, corpus[30:])
    runner = CliRunner()
    proc = subprocess.Popen([sys.executable, "-m", "media_pipeline.cli", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    answers = []
    while proc.poll() is None:
        result = runner.invoke(cli, ["query", "SELECT count(*) AS n FROM media_files",
                                     "--format", "json"], env=env)
        assert result.exit_code == 0, result.output
        answers.append(json.loads(result.output)[0]["n"])
        time.sleep(0.05)
    _out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert len(answers) >= 3, "the run finished before the analyst could ask"
    assert set(answers) <= {30, len(corpus)}  # the old or the new catalog, never half a commit
    final = runner.invoke(cli, ["query", "SELECT count(*) AS n FROM media_files", "--format",
                                "json"], env=env)
    assert json.loads(final.output)[0]["n"] == len(corpus)


def test_query_cli_formats_and_errors(settings: Settings, s3_client: Any,
                                      corpus: list[CorpusFile], tmp_path: Path) -> None:
    runner = CliRunner()
    env = env_for(settings)
    none = runner.invoke(cli, ["query", "SELECT 1"], env=env)
    assert none.exit_code == 1
    assert "no catalog" in none.output

    seed_bucket(s3_client, settings.bucket, corpus[:5])
    run(settings)
    csv_out = runner.invoke(cli, ["query", "SELECT key FROM media_files ORDER BY key",
                                  "--format", "csv"], env=env)
    assert csv_out.exit_code == 0
    assert csv_out.output.splitlines() == ["key"] + sorted(f.key for f in corpus[:5])
    bad = runner.invoke(cli, ["query", "SELEC nonsense"], env=env)
    assert bad.exit_code == 1 and "query failed" in bad.output
    write = runner.invoke(cli, ["query", "DELETE FROM media_objects"], env=env)
    assert write.exit_code == 1 and "read-only" in write.output.lower()
    assert rows(settings, "SELECT count(*) FROM media_files") == [(5,)]


@DEFAULT_PORT
def test_run_without_the_embedded_server_says_how_to_start_it(tmp_path: Path) -> None:
    import os
    import socket

    from media_pipeline.settings import EMBEDDED_S3_PORT

    def port_taken() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", EMBEDDED_S3_PORT)) == 0

    # Another session's embedded server on the default port would answer this run. The tests
    # before this one in its group (the demo's) may still be stopping theirs: wait for it.
    for _ in range(60):
        if not port_taken():
            break
        time.sleep(0.5)
    else:
        pytest.skip("something is listening on the embedded server's port on this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MEDIA_PIPELINE"))}
    env["MEDIA_PIPELINE_HOME"] = str(tmp_path)
    result = CliRunner().invoke(cli, ["run"], env=env)
    if result.exit_code == 0 or port_taken():
        pytest.skip("something is listening on the embedded server's port on this machine")
    assert result.exit_code == 1
    assert "media-pipeline s3-server" in result.output


def test_definitions_load_with_the_job_schedule_and_checks() -> None:
    import dagster as dg

    from media_pipeline.definitions import defs as load_defs

    defs = load_defs()
    job = defs.resolve_job_def("nightly_reconciliation")
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert keys >= {"inventory_snapshot", "media_files", "fingerprints", "duplicate_groups",
                    "near_duplicates", *(f"fingerprints_{digit}" for digit in "0123456789abcdef")}
    schedule = defs.resolve_schedule_def("nightly_reconciliation_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    specs = {c.name for c in defs.resolve_asset_graph().asset_check_keys}
    assert specs == {"storage_usage", "file_accessibility", "public_exposure",
                     "ai_service_status", "reference_integrity", "catalog_consistency",
                     "content_sources_trusted", "purge_undo_window"}
    assert {j.name for j in defs.jobs} >= {
        "nightly_reconciliation", "purge", "ai_batch", "ingest_new_objects"}
    purge = defs.resolve_schedule_def("purge_schedule")
    assert purge.cron_schedule == "0 4 * * *"
    assert purge.default_status == dg.DefaultScheduleStatus.STOPPED  # deleting is opt-in
    assert {n.name for n in defs.resolve_job_def("purge").nodes} >= {
        "content_sources", "reference_index", "purged_files"}
    assert defs.resolve_schedule_def("ai_batch_schedule").cron_schedule == "15 * * * *"
    assert defs.resolve_assets_def("ai_analysis").op.pool is None  # short commits only
    for name in ("media_files", "fingerprints", "duplicate_groups", "near_duplicates"):
        assert defs.resolve_assets_def(name).op.pool == "catalog"


@pytest.mark.parametrize("fmt", ["CSV", "Parquet"])
def test_run_from_an_inventory_report_instead_of_a_listing(
    settings: Settings, s3_client: Any, corpus: list[CorpusFile], fmt: str
) -> None:
    """With MEDIA_PIPELINE_INVENTORY set the pipeline reads the report, not the bucket listing:
    old versions and delete markers in the report are skipped, odd keys come out decoded."""
    from datetime import UTC, datetime

    from media_pipeline.inventory import write_inventory_report

    files = [f for f in corpus if f.kind == "photo"][:6]
    seed_bucket(s3_client, settings.bucket, files)
    etags = {f.key: s3_client.head_object(Bucket=settings.bucket, Key=f.key)["ETag"].strip('"')
             for f in files}
    now = datetime(2026, 11, 1, tzinfo=UTC)
    entries = [
        {"key": f.key, "size": len(f.data), "etag": etags[f.key], "last_modified": now,
         "version_id": f"v2-{i}", "is_latest": True, "is_delete_marker": False}
        for i, f in enumerate(files)
    ]
    entries += [
        {"key": files[0].key, "size": 1, "etag": "old", "last_modified": now,
         "version_id": "v1", "is_latest": False, "is_delete_marker": False},
        {"key": "site/deleted.jpg", "size": 0, "etag": "", "last_modified": now,
         "version_id": "dm", "is_latest": True, "is_delete_marker": True},
    ]
    s3_client.create_bucket(Bucket=settings.bucket + "-inv")
    report = write_inventory_report((s3_client, settings.bucket + "-inv", "inventory"),
                                    settings.bucket, entries, fmt=fmt, all_versions=True)
    res = dagster_resources(settings, inventory_location=report.location)
    import dagster as dg

    summary = run_assets(instance=dg.DagsterInstance.ephemeral(), resources=res)
    assert summary.success, summary.failure
    inv = summary.materialized["inventory_snapshot"]
    assert (inv["dagster/row_count"], inv["skipped_noncurrent"], inv["skipped_delete_markers"]) \
        == (len(files), 1, 1)
    got = dict(rows(settings, "SELECT key, version_id FROM media_files"))
    assert got == {f.key: f"v2-{i}" for i, f in enumerate(files)}
    assert summary.materialized["fingerprints"]["active"] == len(files)


def test_health_command_reports_missing_objects_and_exits_non_zero(
    settings: Settings, s3_client: Any, corpus: list[CorpusFile]
) -> None:
    files = corpus[:8]
    seed_bucket(s3_client, settings.bucket, files)
    run(settings)
    runner = CliRunner()
    env = env_for(settings)
    ok = runner.invoke(cli, ["health", "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.output)
    assert {c["check"]: c["passed"] for c in report["checks"]} == {
        "storage_usage": True, "file_accessibility": True, "public_exposure": True,
        "reference_integrity": True, "catalog_consistency": True, "content_sources": True,
        "purge_undo": True}
    assert sum(r["files"] for r in report["storage_usage"]) == len(files)

    # A page that uses a file the bucket does not have: reference_integrity fails with it.
    from media_pipeline.catalog import open_catalog

    with open_catalog(settings) as catalog:
        catalog.references.add_reference(media_id_for(settings.bucket, "site/nowhere.jpg"),
                                         "webpage", "42", "test")
    dangling = runner.invoke(cli, ["health", "--json"], env=env)
    assert dangling.exit_code == 1
    checks = {c["check"]: c for c in json.loads(dangling.output)["checks"]}
    assert not checks["reference_integrity"]["passed"]
    assert "webpage 42" in checks["reference_integrity"]["detail"]
    assert checks["catalog_consistency"]["passed"]
    with open_catalog(settings) as catalog:
        catalog.references.remove_reference(media_id_for(settings.bucket, "site/nowhere.jpg"),
                                            "webpage", "42", "test")

    s3_client.delete_object(Bucket=settings.bucket, Key=files[3].key)
    bad = runner.invoke(cli, ["health", "--json"], env=env)
    assert bad.exit_code == 1
    checks = {c["check"]: c for c in json.loads(bad.output)["checks"]}
    assert not checks["file_accessibility"]["passed"]
    assert files[3].key in checks["file_accessibility"]["detail"]


@DEFAULT_PORT
def test_demo_command_end_to_end_leaves_configured_catalogs_alone(tmp_path: Path) -> None:
    """The README's first command: embedded S3, corpus, Dagster run, summary. A production-like
    environment (real-looking home and bucket) is ignored, not written to."""
    import os

    prod_home = tmp_path / "prod-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MEDIA_PIPELINE"))}
    env.update({"MEDIA_PIPELINE_HOME": str(prod_home), "AWS_STORAGE_BUCKET_NAME": "prod-media"})
    proc = subprocess.run(
        [sys.executable, "-m", "media_pipeline.cli", "demo", "--json", "--no-ai", "--home",
         str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    corpus = generate_corpus()
    life = summary["lifecycle"]
    # The demo uploads one file through the API, refuses to delete a used file, soft-deletes
    # five unused ones and purges them only after the sources were scanned again.
    assert life["refused_delete"] and life["soft_deleted"] == 5
    assert life["purge_candidates_before_rescan"] == 0
    assert life["purge_dry_run_candidates"] == 5 and life["purged"] == 5
    assert summary["objects"] == len(corpus) + 1 - 5
    assert summary["bytes"] == (sum(len(f.data) for f in corpus) + life["uploaded_bytes"]
                                - life["bytes_freed"])
    assert len(summary["quarantined_files"]) == sum(f.kind == "hostile" for f in corpus)
    assert summary["duplicate_groups"] == sum(f.kind == "duplicate" for f in corpus)
    assert summary["near_duplicate_pairs"] >= sum(f.kind == "near-duplicate" for f in corpus)
    demo_home = (tmp_path / "demo").resolve()
    assert summary["catalog"] == (f"metadata {demo_home / 'catalog' / 'metadata.sqlite'}, "
                                  f"data {demo_home / 'catalog' / 'data'}/")
    assert summary["ai_analysed_files"] == 0 and "ai_analysis" not in summary["stages"]
    assert all(summary["checks"].values()) and summary["checks"]
    assert not prod_home.exists()


def test_storage_usage_check_reports_numbers_per_namespace_and_type(
    settings: Settings, s3_client: Any, corpus: list[CorpusFile]
) -> None:
    import dagster as dg

    from media_pipeline.defs.health import asset_check

    storage_usage = asset_check("storage_usage")

    files = [f for f in corpus if f.kind == "photo"][:16] + [f for f in corpus if f.kind == "pdf"]
    seed_bucket(s3_client, settings.bucket, files)
    run(settings)
    res = dagster_resources(settings)
    result = storage_usage(media=res["media"])
    assert isinstance(result, dg.AssetCheckResult) and result.passed
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    for namespace in {f.key.split("/", 1)[0] for f in files}:
        in_ns = [f for f in files if f.key.startswith(namespace + "/")]
        assert meta[f"files/namespace/{namespace}"] == len(in_ns)
        assert meta[f"bytes/namespace/{namespace}"] == sum(len(f.data) for f in in_ns)
    assert meta["files/type/application/pdf"] == sum(f.kind == "pdf" for f in files)
    assert meta["files"] == len(files)
