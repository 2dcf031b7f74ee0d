"""`media-pipeline refs|delete|restore|purge` through click, against moto and a real catalog."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from media_pipeline.cli import main
from media_pipeline.settings import Settings
from media_pipeline_tests.lifecycle_helpers import (
    ADMIN,
    EDITOR,
    add_member,
    catalog_files,
    cli_env,
    object_keys,
)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return cli_env(settings)


@pytest.fixture
def files(settings: Settings, s3_client: Any) -> dict[str, str]:
    ids = catalog_files(settings, s3_client, ["blog/a.txt", "blog/b.txt"])
    add_member(settings, "blog", EDITOR, "editor")
    return ids


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_refs_delete_restore(env: dict[str, str], files: dict[str, str]) -> None:
    # Content ids hold a letter no media id has, so "not in the output" cannot match the id.
    a = files["blog/a.txt"]
    # A discovered file is private to the admins: they record where it is used.
    assert run(env, "refs", "add", a, "webpage", "q123", "--user", ADMIN).exit_code == 0
    assert run(env, "refs", "add", a, "blog_post", "7", "--user", ADMIN).exit_code == 0
    shown = run(env, "refs", "show", a, "--user", ADMIN, "--json")
    assert shown.exit_code == 0
    shown_json = json.loads(shown.output)
    assert [(r["content_type"], r["origin"]) for r in shown_json.pop("references")] == [
        ("blog_post", "api"), ("webpage", "api")]
    assert shown_json == {"media_id": a, "reference_count": 2, "referenced_in": {
        "blog_post": ["7"], "webpage": ["q123"]}}

    # A discovered file is private to the admins: the editor may delete by role, but learns
    # only how often it is used, not where.
    refused = run(env, "delete", a, "--user", EDITOR)
    assert refused.exit_code == 1
    assert "refused" in refused.output and "referenced by 2" in refused.output
    assert "webpage" not in refused.output and "q123" not in refused.output
    hidden = run(env, "refs", "show", a, "--user", EDITOR)
    assert hidden.exit_code == 1 and "no media file" in hidden.output
    assert "q123" not in hidden.output
    assert run(env, "refs", "show", a).exit_code == 2  # --user is required
    refused = run(env, "delete", a, "--user", ADMIN)
    assert refused.exit_code == 1 and "webpage q123" in refused.output
    not_admin = run(env, "delete", a, "--user", EDITOR, "--force")
    # the editor may delete it by role, so knows it exists: told why not
    assert not_admin.exit_code == 1 and "needs admin" in not_admin.output

    # The editor may not see the file: refused alike whether the reference exists or not.
    refusals = [run(env, "refs", verb, a, "webpage", content_id, "--user", EDITOR)
                for verb in ("add", "remove") for content_id in ("q123", "999")]
    assert [r.exit_code for r in refusals] == [1, 1, 1, 1]
    assert all("no media file" in r.output and "q123" not in r.output for r in refusals)
    assert len({r.output for r in refusals}) == 1
    assert run(env, "refs", "remove", a, "webpage", "q123", "--user", ADMIN).exit_code == 0
    missing = run(env, "refs", "remove", a, "webpage", "q123", "--user", ADMIN)
    assert missing.exit_code == 1 and "still referenced: blog_post 7" in missing.output

    forced = run(env, "delete", a, "--user", ADMIN, "--force", "--json")
    assert forced.exit_code == 0 and json.loads(forced.output)["forced"] is True
    assert run(env, "restore", a, "--user", EDITOR).exit_code == 0
    again = run(env, "restore", a, "--user", EDITOR)
    assert again.exit_code == 1 and "is not deleted" in again.output


def test_unknown_ids_and_bad_input_are_one_line_errors(env: dict[str, str],
                                                       files: dict[str, str]) -> None:
    for args in (["delete", "nope", "--user", ADMIN], ["refs", "show", "nope", "--user", ADMIN],
                 ["refs", "add", files["blog/a.txt"], "webpage", " ", "--user", ADMIN]):
        result = run(env, *args)
        assert result.exit_code == 1
        assert result.output.startswith("error:") and result.output.count("\n") == 1


def test_purge_dry_run_then_purge(env: dict[str, str], settings: Settings, s3_client: Any,
                                  files: dict[str, str]) -> None:
    assert run(env, "delete", files["blog/a.txt"], "--user", EDITOR).exit_code == 0
    dry = run(env, "purge", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.output)
    assert report["dry_run"] and report["candidates"] == 1 and report["purged"] == 0
    assert [f["key"] for f in report["files"]] == ["blog/a.txt"]
    assert object_keys(s3_client, settings) == {"blog/a.txt", "blog/b.txt"}

    done = run(env, "purge", "--batch-size", "10")
    assert done.exit_code == 0, done.output
    assert "purged" in done.output
    assert object_keys(s3_client, settings) == {"blog/b.txt"}


def test_purge_refusal_exits_non_zero(env: dict[str, str], settings: Settings,
                                      s3_client: Any, files: dict[str, str]) -> None:
    run(env, "delete", files["blog/a.txt"], "--user", EDITOR)
    capped = run({**env, "MEDIA_PIPELINE_PURGE_MAX_COUNT": "0"}, "purge")
    assert capped.exit_code == 1 and "runaway purge" in capped.output
    waiting = run(env, "purge", "--days", "30", "--json")
    assert waiting.exit_code == 0 and json.loads(waiting.output)["candidates"] == 0
    assert object_keys(s3_client, settings) == {"blog/a.txt", "blog/b.txt"}


def test_a_file_deleted_moments_ago_waits_for_the_minimum_age(
        env: dict[str, str], settings: Settings, s3_client: Any, files: dict[str, str]) -> None:
    # `--days 0` is not "now": an application write that began before the delete may still
    # commit a reference for a few seconds (catalog/lifecycle.py PURGE_MIN_AGE).
    aged = {**env, "MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS": "60"}
    assert run(aged, "delete", files["blog/a.txt"], "--user", EDITOR).exit_code == 0
    done = run(aged, "purge", "--days", "0", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["candidates"] == 0 and report["too_recent"] == 1 and report["purged"] == 0
    shown = run(aged, "purge", "--dry-run")
    assert "deleted less than MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS ago" in " ".join(
        shown.output.split())
    assert object_keys(s3_client, settings) == {"blog/a.txt", "blog/b.txt"}
    too_short = run({**env, "MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS": "5"}, "purge")
    assert too_short.exit_code != 0 and "at least 30" in too_short.output


@pytest.mark.parametrize("variable, value", [
    ("MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS", "999999999999"),
    ("MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS", "99999999999999999999"),
    ("MEDIA_PIPELINE_RETENTION_DAYS", "99999999"),
])
def test_a_huge_minimum_age_or_retention_is_a_settings_error(
        env: dict[str, str], settings: Settings, s3_client: Any, files: dict[str, str],
        variable: str, value: str) -> None:
    # Each failed with an OverflowError (an "unexpected error" with a traceback) before.
    run(env, "delete", files["blog/a.txt"], "--user", EDITOR)
    for args in (("purge", "--dry-run"), ("purge",)):
        result = run({**env, variable: value}, *args)
        assert result.exit_code == 1, result.output
        assert f"{variable} must be at most" in " ".join(result.output.split())
        assert "unexpected" not in result.output
    days = run(env, "purge", "--days", "99999999")
    assert days.exit_code == 2 and "--days" in days.output
    assert object_keys(s3_client, settings) == {"blog/a.txt", "blog/b.txt"}


def test_the_commands_are_there_on_python_dash_m_too() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]  # this checkout's package, not another one
    for command in (["purge", "--help"], ["refs", "show", "--help"]):
        done = subprocess.run([sys.executable, "-m", "media_pipeline.cli", *command],
                              capture_output=True, text=True, timeout=60, cwd=root, check=False)
        assert done.returncode == 0, done.stderr
        assert f"python -m media_pipeline.cli {' '.join(command[:-1])}" in done.stdout
