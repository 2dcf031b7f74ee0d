"""Every command family fails with one line on stderr: what failed and what to do next.

Never a Python or Dagster stack trace on the terminal; those go to a log file the line names
(``MEDIA_PIPELINE_DEBUG=1`` raises instead).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from media_pipeline.cli import main as cli
from media_pipeline.demo import seed_bucket
from media_pipeline.settings import Settings
from media_pipeline_tests.fixtures_s3 import env_for

MEDIA_ID = "0b7cb4e0-52b0-4d8c-9a3e-5a6f1b2c3d4e"


def clean_env(**extra: str) -> dict[str, str | None]:
    """For CliRunner, which only overlays: our settings and AWS's unset, then ``extra``."""
    import os

    env: dict[str, str | None] = {k: None for k in os.environ
                                  if k.startswith(("AWS_", "MEDIA_PIPELINE"))}
    env.update(extra)
    return env


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for trace in ("Traceback", "Stack Trace", 'File "'):
        assert trace not in result.output
    return lines[0]


@pytest.fixture
def env(settings: Settings, s3_client: Any) -> dict[str, str]:
    return env_for(settings)


def broken_sources(tmp_path: Path) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - {name: site, type: files, root: nowhere, "
                    "content_type: webpage}\n", encoding="utf-8")
    return path


def test_a_bad_setting_names_the_variable_and_says_what_to_do(env: dict[str, str]) -> None:
    line = one_line_error(CliRunner().invoke(cli, ["run"], env={**env, "MAX_FILE_SIZE": "big"}))
    assert "MAX_FILE_SIZE must be an integer" in line
    assert "fix that environment variable" in line


def test_run_with_a_failing_step_names_the_step_and_the_log(
        env: dict[str, str], settings: Settings, s3_client: Any, tmp_path: Path) -> None:
    from media_pipeline.corpus import generate_corpus

    seed_bucket(s3_client, settings.bucket, generate_corpus()[:3])
    env = {**env, "MEDIA_PIPELINE_SOURCES": str(broken_sources(tmp_path))}
    line = one_line_error(CliRunner().invoke(cli, ["run"], env=env))
    assert "references_site" in line and "does not exist" in line
    assert str(tmp_path / "nowhere") in line  # resolved once, against the file's folder
    log = re.search(r"Dagster's log with the traceback: (\S+\.log)", line)
    assert log, line
    assert "Traceback" in Path(log.group(1)).read_text() or \
        "Stack Trace" in Path(log.group(1)).read_text()
    assert "run it again" in line


def test_scan_of_a_failing_source(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "MEDIA_PIPELINE_SOURCES": str(broken_sources(tmp_path))}
    line = one_line_error(CliRunner().invoke(cli, ["scan"], env=env))
    assert "content source site failed" in line and "purges blocked" in line


def test_a_sources_file_with_several_errors_is_still_one_line(env: dict[str, str],
                                                               tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sources:\n  - {name: a, type: files}\n  - {name: b, type: nope}\n",
                    encoding="utf-8")
    line = one_line_error(CliRunner().invoke(
        cli, ["scan"], env={**env, "MEDIA_PIPELINE_SOURCES": str(path)}))
    assert "'root': is required" in line and "unknown type 'nope'" in line


def test_query_errors(env: dict[str, str]) -> None:
    assert "no catalog" in one_line_error(CliRunner().invoke(cli, ["query", "SELECT 1"],
                                                             env=env))


def test_reference_and_lifecycle_commands(env: dict[str, str], settings: Settings,
                                          s3_client: Any) -> None:
    from media_pipeline.corpus import generate_corpus
    from media_pipeline.defs.execution import run_assets
    from media_pipeline_tests.fixtures_s3 import dagster_resources

    seed_bucket(s3_client, settings.bucket, generate_corpus()[:3])
    assert run_assets(resources=dagster_resources(settings)).success
    runner = CliRunner()
    for args in (["refs", "show", MEDIA_ID, "--user", "ops"], ["delete", MEDIA_ID, "--user", "ops"],
                 ["restore", MEDIA_ID, "--user", "ops"],
                 ["refs", "add", MEDIA_ID, "webpage", "1", "--user", "ops"]):
        assert MEDIA_ID in one_line_error(runner.invoke(cli, args, env=env)), args


def test_application_commands(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    line = one_line_error(runner.invoke(cli, ["url", MEDIA_ID, "--user", "bob"], env=env))
    assert MEDIA_ID in line
    line = one_line_error(runner.invoke(
        cli, ["members", "add", "nowhere", "bob", "editor", "--user", "alice"], env=env))
    assert "nowhere" in line
    bad = tmp_path / "evil.png"
    bad.write_bytes(b"<script>alert(1)</script>")
    runner.invoke(cli, ["namespaces", "create", "blog", "--user", "alice"], env=env)
    line = one_line_error(runner.invoke(
        cli, ["upload", str(bad), "--namespace", "blog", "--user", "alice"], env=env))
    assert "refused" in line


def test_commands_that_need_s3_say_how_to_start_it(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    env = clean_env(AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                    MEDIA_PIPELINE_HOME=str(tmp_path))
    for args in (["health"], ["run"], ["analyze", "--batch", "1"]):
        line = one_line_error(CliRunner().invoke(cli, args, env=env))
        assert "media-pipeline s3-server" in line, args


def test_s3_server_on_a_busy_port(env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        line = one_line_error(CliRunner().invoke(cli, ["s3-server", "--port", str(port)],
                                                 env=env))
    assert "already listening" in line


def test_a_home_that_cannot_be_made_is_one_line_with_what_to_check(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    env = clean_env(MEDIA_PIPELINE_HOME=str(tmp_path / "afile" / "home"))
    line = one_line_error(CliRunner().invoke(cli, ["delete", MEDIA_ID, "--user", "ops"],
                                             env=env))
    assert "Not a directory" in line and "MEDIA_PIPELINE_HOME" in line


def test_an_unexpected_error_leaves_its_traceback_in_a_log_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from media_pipeline.cli import friendly_errors

    class Surprise(Exception):
        pass

    @click.command()
    @friendly_errors
    def boom() -> None:
        raise Surprise("nobody expected this")

    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDIA_PIPELINE_DEBUG", raising=False)
    line = one_line_error(CliRunner().invoke(boom, []))
    assert "Surprise: nobody expected this" in line
    log = re.search(r"the traceback is in (/\S+\.log)", line)
    assert log and Path(log.group(1)).parent == tmp_path / "home" / "logs"
    assert "Traceback" in Path(log.group(1)).read_text()
    monkeypatch.setenv("MEDIA_PIPELINE_DEBUG", "1")
    debug = CliRunner().invoke(boom, [])
    assert isinstance(debug.exception, Surprise)


def test_demo_failure_is_one_line(tmp_path: Path) -> None:
    """The demo's home under a plain file cannot be made: one line, no trace."""
    import os

    blocker = tmp_path / "file"
    blocker.write_text("x")
    before = dict(os.environ)
    result = CliRunner().invoke(cli, ["demo", "--no-ai", "--home", str(blocker / "home")],
                                env=clean_env())
    line = one_line_error(result)
    assert str(blocker) in line
    assert dict(os.environ) == before  # the demo's settings do not outlive it


def test_run_with_an_unknown_asset_names_it_in_one_line(env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["run", "--select", "nope"], env=env)
    assert result.exit_code == 1
    line = " ".join(result.output.split())
    assert "no asset named nope" in line and "fingerprints" in line and "report it" not in line
