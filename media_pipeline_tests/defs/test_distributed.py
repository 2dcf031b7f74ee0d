"""Issue 14: the nightly reconciliation on Celery workers (separate processes) against one
shared catalog — PostgreSQL metadata, data files on the embedded S3 — gives the catalog an
in-process run gives, row for row.

The broker is the machine's RabbitMQ (127.0.0.1:5672, guest/guest): started if it is installed
and down, else the test is skipped with the reason. Each test sends its steps to a queue of its
own (``MEDIA_PIPELINE_CELERY_QUEUE``), so parallel tests never run each other's steps.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from media_pipeline.catalog import Catalog
from media_pipeline.cli import main as cli
from media_pipeline.corpus import generate_corpus, minimum_corpus_size
from media_pipeline.definitions import celery_queue_name, deployment_identity
from media_pipeline.demo import seed_bucket
from media_pipeline.demo_content import write_demo_content
from media_pipeline.settings import Settings
from media_pipeline.storage import ensure_bucket
from media_pipeline_tests.fixtures_db import POSTGRES_ADMIN_URL, _fresh_database
from media_pipeline_tests.fixtures_s3 import env_for

pytest.importorskip("dagster_celery", reason="the `distributed` extra is not installed")

BROKER = ("127.0.0.1", 5672)


def _listening(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def broker() -> str:
    if not _listening(BROKER):
        server = shutil.which("rabbitmq-server")
        if server is None:
            pytest.skip("RabbitMQ is not listening on 127.0.0.1:5672 and is not installed")
        subprocess.run([server, "-detached"], check=False, capture_output=True)
        deadline = time.monotonic() + 60
        while not _listening(BROKER) and time.monotonic() < deadline:
            time.sleep(1)
        if not _listening(BROKER):
            pytest.skip("RabbitMQ did not start on 127.0.0.1:5672 within 60 s")
    return "pyamqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def shared(settings: Settings, s3_client: Any, tmp_path: Path) -> Iterator[Settings]:
    """The bucket with a corpus and content sources, and a shared catalog for it."""
    ensure_bucket(s3_client, settings.bucket, settings.region)
    files = generate_corpus(count=minimum_corpus_size())
    seed_bucket(s3_client, settings.bucket, files)
    content = write_demo_content(tmp_path / "content", files, settings.bucket,
                                 settings.endpoint_url or "")
    ensure_bucket(s3_client, settings.bucket + "-lake", settings.region)
    for url in _fresh_database(POSTGRES_ADMIN_URL, "mp_celery_test"):
        yield replace(settings, content_sources=content.sources_file,
                      catalog_metadata=url.replace("postgresql+psycopg://", "postgresql://"),
                      catalog_data=f"s3://{settings.bucket}-lake/catalog/")


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {**env_for(settings), **extra,
           "MEDIA_PIPELINE_SOURCES": str(settings.content_sources or "")}
    if settings.catalog_metadata:
        env["MEDIA_PIPELINE_CATALOG_METADATA"] = settings.catalog_metadata
        env["MEDIA_PIPELINE_CATALOG_DATA"] = settings.catalog_data or ""
    return env


def _workers(env: dict[str, str], log_dir: Path, count: int = 2) -> list[subprocess.Popen[bytes]]:
    """``count`` `media-pipeline worker` processes, each ready (connected to the broker)."""
    workers, logs = [], []
    for n in range(count):
        log = log_dir / f"worker-{n}.log"
        logs.append(log)
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "media_pipeline", "worker", "--name", f"w{n}@%h"],
            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + 90
    while not all(" ready." in log.read_text(errors="replace") for log in logs):
        for worker, log in zip(workers, logs, strict=True):
            assert worker.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, [log.read_text(errors="replace") for log in logs]
        time.sleep(0.5)
    return workers


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


# What a run decides, without the times it ran at.
ROWS = {
    "media_files": "SELECT media_id, key, file_size, etag, content_type, file_hash, phash, width, "
                   "height, page_count, status, quarantine_reason, visibility, reference_count, "
                   "referenced_in::VARCHAR, is_deleted FROM media_files ORDER BY media_id",
    "duplicate_groups": "SELECT file_hash, file_size, member_count, canonical_media_id, "
                        "wasted_bytes FROM duplicate_groups ORDER BY file_hash",
    "near_duplicates": "SELECT media_id_a, media_id_b, distance, method, method_distance "
                       "FROM near_duplicates ORDER BY ALL",
    "media_references": "SELECT media_id, key, content_type, content_id, source, origin, form "
                        "FROM media_references ORDER BY ALL",
}


def _catalog_rows(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    with Catalog.open(settings.catalog_location, read_only=True) as catalog:
        return {name: catalog.con.execute(sql).fetchall() for name, sql in ROWS.items()}


def _in_process_rows(shared: Settings, home: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The same bucket and sources, catalogued in-process into a catalog of its own."""
    local = replace(shared, catalog_metadata=None, catalog_data=None, home=home)
    result = CliRunner().invoke(cli, ["run"], env=_env(local))
    assert result.exit_code == 0, result.output
    expected = _catalog_rows(local)
    assert len(expected["media_files"]) == minimum_corpus_size() and expected["duplicate_groups"]
    assert expected["near_duplicates"] and expected["media_references"]
    return expected


def _celery_env(shared: Settings, broker: str, tmp_path: Path) -> dict[str, str]:
    return _env(shared, MEDIA_PIPELINE_EXECUTOR="celery", MEDIA_PIPELINE_CELERY_BROKER=broker,
                MEDIA_PIPELINE_CELERY_QUEUE=f"mp-test-{uuid.uuid4().hex[:12]}",
                DAGSTER_HOME=str(tmp_path / "dagster"))


def _run(env: dict[str, str], tmp_path: Path, workers: int) -> None:
    started = _workers(env, tmp_path, workers)
    try:
        run = subprocess.run([sys.executable, "-m", "media_pipeline", "run", "--json"],
                             env=env, capture_output=True, text=True, timeout=600)
    finally:
        _stop(started)
    logs = [(tmp_path / f"worker-{n}.log").read_text(errors="replace") for n in range(workers)]
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:], logs)
    # Steps ran on every worker.
    for n, log in enumerate(logs):
        assert "succeeded in" in log, (n, log[-3000:])


def test_a_worker_killed_mid_run_then_two_workers_give_the_in_process_catalog(
        shared: Settings, broker: str, tmp_path: Path) -> None:
    """One test for both (each run costs a minute of the suite): a worker killed while it
    fingerprints leaves whole pieces in the catalog, and the next run, on two workers, leaves
    the catalog an in-process run gives, row for row."""
    import dagster as dg

    expected = _in_process_rows(shared, tmp_path / "local")
    env = _celery_env(shared, broker, tmp_path)
    [worker] = _workers(env, tmp_path, 1)
    run = subprocess.Popen([sys.executable, "-m", "media_pipeline", "run"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    killed_in = None
    try:
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
        deadline = time.monotonic() + 300
        while killed_in is None and time.monotonic() < deadline and run.poll() is None:
            for record in instance.get_runs():
                for event in instance.all_logs(record.run_id,
                                               of_type=dg.DagsterEventType.STEP_START):
                    if (event.step_key or "").startswith("fingerprints_"):
                        killed_in = event.step_key
            time.sleep(0.05)
        assert killed_in is not None, "no fingerprint piece started"
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and the step it runs, at once
    finally:
        for proc in (worker, run):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Each piece commits its objects in one transaction: all of a piece or none of it.
    with Catalog.open(shared.catalog_location, read_only=True) as catalog:
        pieces = catalog.con.execute(
            "SELECT left(media_id::VARCHAR, 1), count(*) FILTER (file_hash IS NOT NULL), "
            "count(*) FROM media_files GROUP BY 1").fetchall()
    assert all(done in (0, total) for _, done, total in pieces), (killed_in, pieces)
    _run(env, tmp_path, workers=2)
    assert _catalog_rows(shared) == expected
    assert not (shared.home / "catalog").exists()  # the shared catalog is not on local disk


def test_celery_without_dagster_home_or_the_extra_is_a_one_line_error(
        settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in _env(settings, MEDIA_PIPELINE_EXECUTOR="celery").items()
           if k != "DAGSTER_HOME"}
    result = CliRunner().invoke(cli, ["run"], env=env)
    assert result.exit_code != 0
    assert result.output.startswith("error:") and result.output.count("\n") == 1, result.output
    assert "DAGSTER_HOME" in result.output
    bad = CliRunner().invoke(cli, ["run"], env={**env, "MEDIA_PIPELINE_EXECUTOR": "kubernetes"})
    assert bad.exit_code != 0 and "MEDIA_PIPELINE_EXECUTOR" in bad.output
    assert "multiprocess, in_process, celery, k8s" in bad.output


@pytest.mark.skipif(importlib.util.find_spec("dagster_celery") is None,
                    reason="dagster-celery is not installed: pip install '.[distributed]'")
def test_a_broker_that_refuses_the_run_is_named_in_the_error_line(
        settings: Settings, tmp_path: Path) -> None:
    # Found by the hostile review: a wrong broker URL failed the run before any step, and the
    # one line said "failed at None".
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens there once the socket is closed
    env = _env(settings, MEDIA_PIPELINE_EXECUTOR="celery", DAGSTER_HOME=str(tmp_path / "dagster"),
               MEDIA_PIPELINE_CELERY_BROKER=f"pyamqp://guest:s3cr3tPW@127.0.0.1:{closed}//")
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    run = subprocess.run([sys.executable, "-m", "media_pipeline", "run"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    line = run.stderr.strip()
    assert line.startswith("error:") and "\n" not in line, run.stderr
    assert "failed at None" not in line and "the run: " in line, line
    assert "s3cr3tPW" not in run.stdout + run.stderr


def test_a_worker_for_another_bucket_or_catalog_listens_on_another_queue(
        settings: Settings) -> None:
    # A worker started with another deployment's settings (a stale environment, a copied
    # machine) must never take this deployment's steps — a purge among them — and run them
    # against its own bucket or catalog: without MEDIA_PIPELINE_CELERY_QUEUE the queue is named
    # after the bucket, the endpoint and the catalog.
    from media_pipeline.definitions import celery_config

    queue = celery_queue_name(settings)
    assert queue.startswith("media-pipeline-")
    assert celery_queue_name(replace(settings)) == queue  # the same deployment, the same queue
    for other in (replace(settings, bucket="other-bucket"),
                  replace(settings, endpoint_url="http://127.0.0.1:1"),
                  replace(settings, catalog_metadata="postgresql://u:secret@db/catalog"),
                  replace(settings, catalog_data="s3://lake-bucket/other/"),
                  replace(settings, home=settings.home / "elsewhere")):
        assert celery_queue_name(other) != queue
    assert "secret" not in celery_queue_name(replace(
        settings, catalog_metadata="postgresql://u:secret@db/catalog"))
    assert celery_config(settings)["config_source"] == {"task_default_queue": queue}
    assert celery_queue_name(replace(settings, celery_queue="shared")) == "shared"


def test_a_worker_whose_sources_or_purge_settings_differ_listens_on_another_queue(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by the hostile review: a worker started with SITE_ROOT pointing at an old export
    # scanned it for the run, the drift guard saw the same counts, the purge trusted the scan
    # and deleted a file the live pages use; one with a retention of 0 days purged a file a
    # minute after its delete. Every setting a step's result depends on names the queue.
    for folder in ("site_new", "site_old"):
        (tmp_path / folder).mkdir()
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - name: site\n    type: files\n"
                       "    root: ${SITE_ROOT}\n    content_type: html\n")
    monkeypatch.setenv("SITE_ROOT", str(tmp_path / "site_new"))
    deployment = replace(settings, content_sources=sources)
    queue = celery_queue_name(deployment)
    monkeypatch.setenv("SITE_ROOT", str(tmp_path / "site_old"))
    assert celery_queue_name(deployment) != queue  # the same file, other content
    monkeypatch.setenv("SITE_ROOT", str(tmp_path / "site_new"))
    assert celery_queue_name(deployment) == queue
    for other in (replace(deployment, content_sources=None),
                  replace(deployment, retention_days=0),
                  replace(deployment, purge_min_age_seconds=3600),
                  replace(deployment, purge_max_share=1.0),
                  replace(deployment, cdn_base_urls=("https://cdn.example.com",)),
                  replace(deployment, ai_service_url="https://u:pw@ai.example.com/v1")):
        assert celery_queue_name(other) != queue
    # What may differ from machine to machine does not: credentials, thread counts, the broker.
    for same in (replace(deployment, access_key_id="other", secret_access_key="other"),
                 replace(deployment, fingerprint_workers=3, query_threads=1),
                 replace(deployment, celery_broker="pyamqp://u:pw@elsewhere//")):
        assert celery_queue_name(same) == queue
    identity = str(deployment_identity(
        replace(deployment, ai_service_url="https://u:pw@ai.example.com/v1")))
    assert "pw" not in identity and "ai.example.com" in identity
