"""Issue 11, item 8: analysts' SQL is bounded in time, memory and threads (settings), and a
query over a limit ends with one line naming the setting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from media_pipeline.cli import main as cli
from media_pipeline.settings import Settings
from media_pipeline.stages import ingest_keys
from media_pipeline_tests.app_fixtures import png_bytes
from media_pipeline_tests.fixtures_s3 import env_for

CROSS_JOIN = ("SELECT count(*) FROM range(100000) a, range(100000) b "
              "WHERE a.range + b.range = -1")
HUGE_LIST = "SELECT len(list(range(2000000000)))"


@pytest.fixture
def env(settings: Settings, s3_client: Any) -> dict[str, str]:
    """A catalog with one file and its published snapshot."""
    s3_client.put_object(Bucket=settings.bucket, Key="site/a.png", Body=png_bytes(),
                         ContentType="image/png")
    ingest_keys(settings, ["site/a.png"], s3_client)
    return {**env_for(settings), "MEDIA_PIPELINE_QUERY_TIMEOUT": "2",
            "MEDIA_PIPELINE_QUERY_MEMORY": "512MiB", "MEDIA_PIPELINE_QUERY_THREADS": "1"}


def one_line(result: Any) -> str:
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1
    return str(result.output)


def test_queries_run_with_the_configured_limits(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, [
        "query", "SELECT (SELECT count(*) FROM media_files) AS n, "
        "current_setting('threads') AS threads, current_setting('memory_limit') AS memory",
        "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["n"] == 1 and row["threads"] == 1 and row["memory"].startswith("512")


def test_a_runaway_join_is_stopped_at_the_timeout(env: dict[str, str]) -> None:
    line = one_line(CliRunner().invoke(cli, ["query", CROSS_JOIN], env=env))
    assert "stopped after 2 s" in line and "MEDIA_PIPELINE_QUERY_TIMEOUT" in line


def test_the_limits_cannot_be_changed_by_the_query(env: dict[str, str]) -> None:
    for sql in ("SET memory_limit = '100GB'", "SET threads = 64", "RESET memory_limit"):
        assert "query failed" in one_line(CliRunner().invoke(cli, ["query", sql], env=env))


def test_a_query_over_the_memory_limit_is_stopped(env: dict[str, str], tmp_path: Path) -> None:
    line = one_line(CliRunner().invoke(cli, ["query", HUGE_LIST], env=env))
    assert "needs more than 512 MiB" in line and "MEDIA_PIPELINE_QUERY_MEMORY" in line
    # In a process of its own, so its only child is the query's: what did the query take?
    probe = (
        "import resource, sys\n"
        "from media_pipeline.analyst_query import QueryFailed, run_query\n"
        "from media_pipeline.settings import Settings\n"
        "try:\n"
        f"    run_query(Settings.from_env(), {HUGE_LIST!r})\n"
        "except QueryFailed as exc:\n"
        "    print(exc)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, check=True)
    message, peak_kib = done.stdout.strip().splitlines()
    assert "needs more than 512 MiB" in message
    assert int(peak_kib) < 1024 * 1024  # KiB: well under 1 GiB, not the 12 GB of the review


@pytest.mark.parametrize(("name", "value"), [("MEDIA_PIPELINE_QUERY_MEMORY", "lots"),
                                             ("MEDIA_PIPELINE_QUERY_TIMEOUT", "-1"),
                                             ("MEDIA_PIPELINE_QUERY_THREADS", "0")])
def test_a_bad_limit_is_one_line_naming_the_setting(env: dict[str, str], name: str,
                                                    value: str) -> None:
    line = one_line(CliRunner().invoke(cli, ["query", "SELECT 1"], env={**env, name: value}))
    assert name in line


def test_sizes_are_read_in_any_unit() -> None:
    from media_pipeline.settings import parse_size

    assert [parse_size(v, "X") for v in ("2GB", "512MiB", "1.5 GiB", "1048576")] == [
        2 * 1000**3, 512 * 2**20, int(1.5 * 2**30), 2**20]


def test_csv_lines_end_with_a_newline_not_crlf(env: dict[str, str]) -> None:
    # Issue 10: csv.writer's default line ending is "\r\n".
    result = CliRunner().invoke(cli, [
        "query", "SELECT key, 'a,b' AS x FROM media_files", "--format", "csv"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b'key,x\nsite/a.png,"a,b"\n'
