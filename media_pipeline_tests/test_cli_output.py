"""The one CLI error handler: the package's errors (and OS/S3 errors) are answers, one line and
exit 1; any other exception, a builtin ValueError included, is a bug whose traceback is logged."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from media_pipeline import errors
from media_pipeline.cli.output import friendly_errors


def command_raising(exc: BaseException) -> click.Command:
    @click.command()
    @friendly_errors
    def boom() -> None:
        raise exc

    return boom


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDIA_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDIA_PIPELINE_DEBUG", raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize("exc", [
    errors.Refused("purge refused: source x is stale"),
    errors.UnknownMedia.of("42"),
    errors.PermissionDenied("'bob' may not delete files"),
    errors.InvalidInput("visibility must be public, internal or private"),
])
def test_the_package_errors_are_one_line_without_a_log(exc: Exception, home: Path) -> None:
    result = CliRunner().invoke(command_raising(exc), [])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {exc}"  # no hint glued on, no traceback
    assert not (home / "logs").exists()


def test_a_settings_error_says_what_to_do_next() -> None:
    result = CliRunner().invoke(command_raising(errors.SettingsError("MAX_FILE_SIZE: bad")), [])
    assert result.exit_code == 1 and "fix that environment variable" in result.stderr


def test_an_os_error_is_expected_with_what_to_check(home: Path) -> None:
    result = CliRunner().invoke(command_raising(NotADirectoryError("Not a directory: x")), [])
    assert result.exit_code == 1 and "MEDIA_PIPELINE_HOME" in result.stderr
    assert not (home / "logs").exists()


@pytest.mark.parametrize("exc", [ValueError("bad"), KeyError("k"), LookupError("gone")])
def test_a_builtin_error_is_a_bug_with_its_traceback_logged(exc: Exception, home: Path) -> None:
    result = CliRunner().invoke(command_raising(exc), [])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith(f"error: {type(exc).__name__}: ") and "an unexpected error" in line
    assert len(list((home / "logs").glob("error-*.log"))) == 1
