"""What every command shares: the consoles, tables and JSON, and the one error handler.

:func:`friendly_errors` maps every failure to an exit status and one line on stderr:

- exit 0: done (``health``: every check passed);
- exit 1, the message and what to do next: an error of the package's tree
  (:class:`~media_pipeline.errors.MediaPipelineError`), ``OSError``, S3's ``ClientError`` and
  ``BotoCoreError``, or a command's own refusal (:func:`fail`: a failed check, a refused
  delete, a suspect scan...);
- exit 1, the type and message and where the traceback was written: anything else (a bug);
- exit 2: a usage error (click's message: a missing option, an unknown command).

``MEDIA_PIPELINE_DEBUG=1`` raises instead, with the traceback.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from media_pipeline.errors import MediaPipelineError, SettingsError
from media_pipeline.settings import Settings
from media_pipeline.storage.embedded import is_listening

if TYPE_CHECKING:
    from media_pipeline.library import MediaLibrary

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# Exit status of every failure the handler reports (click's usage errors exit 2 on their own).
EXIT_FAILURE = 1

# Failures that are answers, not bugs: one line, no traceback log.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    MediaPipelineError, OSError, ClientError, BotoCoreError,
)

# What to do next, for failures whose message names what failed but not the way out.
NEXT_STEPS: tuple[tuple[type[BaseException], str], ...] = (
    (SettingsError, "fix that environment variable and run the command again"),
    (MediaPipelineError, ""),  # the package's own messages say what to do
    (ClientError, "check AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL and the credentials"),
    (BotoCoreError, "check AWS_S3_ENDPOINT_URL, the network and the credentials"),
    (OSError, "check that the path exists and is writable (MEDIA_PIPELINE_HOME, --home)"),
)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """``error: message`` on stderr, then exit with ``code``."""
    # One line whatever the terminal's width: a wrapped line reads as several to a script.
    err_console.print(f"[red]error:[/red] {escape(flat(message))}", highlight=False,
                      soft_wrap=True)
    sys.exit(code)


def friendly_errors(func: F) -> F:
    """Turn failures into one line on stderr and exit status 1: what failed and what to do
    next. An unexpected error's traceback goes to a log file the line names
    (``MEDIA_PIPELINE_DEBUG=1`` raises it instead)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt, SystemExit):
            raise
        except EXPECTED_ERRORS as exc:
            if os.environ.get("MEDIA_PIPELINE_DEBUG"):
                raise
            hint = next((h for kind, h in NEXT_STEPS if isinstance(exc, kind)), "")
            fail(one_line(exc) + (f" ({hint})" if hint else ""))
        except Exception as exc:  # a bug: still one line; MEDIA_PIPELINE_DEBUG=1 for more
            if os.environ.get("MEDIA_PIPELINE_DEBUG"):
                raise
            log = write_traceback(exc)
            fail(f"{type(exc).__name__}: {one_line(exc)} (an unexpected error: the traceback "
                 f"is in {log}; please report it)" if log else
                 f"{type(exc).__name__}: {one_line(exc)} (an unexpected error; "
                 "MEDIA_PIPELINE_DEBUG=1 shows the traceback)")

    return wrapper  # type: ignore[return-value]


def write_traceback(exc: BaseException) -> Path | None:
    """The traceback of ``exc`` in ``$MEDIA_PIPELINE_HOME/logs/`` (or the temp folder); its path,
    or None when no folder could take it."""
    import tempfile
    import traceback
    from datetime import UTC, datetime

    from media_pipeline.settings import absolute

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    text = "".join(traceback.format_exception(exc))
    home = os.environ.get("MEDIA_PIPELINE_HOME") or ".media_pipeline"
    for folder in (absolute(home) / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"error-{stamp}.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def one_line(exc: BaseException) -> str:
    """The error's message on one line (its type's name when it has none)."""
    text = str(exc).strip()
    return flat(text) if text else type(exc).__name__


def flat(text: str, limit: int = 800) -> str:
    """``text`` on one line: the lines of a multi-line message (every error of a sources file)
    joined with "; ", cut at ``limit`` characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    joined = "; ".join(lines)
    return joined if len(joined) <= limit else joined[:limit - 1] + "…"


def require_s3(settings: Settings) -> None:
    """Fail with how to start one when the embedded S3 server is configured but not running."""
    if settings.uses_embedded_s3 and not is_listening(settings.endpoint_url or ""):
        fail(
            f"no S3 server is running at {settings.endpoint_url}: start the embedded one with "
            "`media-pipeline s3-server`, or set AWS_S3_ENDPOINT_URL / AWS credentials "
            "(MEDIA_PIPELINE_S3=aws for an instance role)"
        )


def library(*, needs_s3: bool = False) -> MediaLibrary:
    """The :class:`MediaLibrary` over the configured settings: every user action goes
    through it."""
    from media_pipeline.library import MediaLibrary

    settings = Settings.from_env()
    if needs_s3:
        require_s3(settings)
    return MediaLibrary(settings)


def say(text: str | Text) -> None:
    """One line of output, never wrapped (scripts grep it)."""
    console.print(text if isinstance(text, Text) else Text(text), soft_wrap=True)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, default=str, indent=2))


def dict_table(columns: list[str], rows: list[dict[str, Any]]) -> None:
    """``rows`` (dicts) as a table of ``columns``."""
    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text("" if row.get(c) is None else str(row.get(c))) for c in columns))
    console.print(table)


def print_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    """``rows`` (tuples) as a table, CSV or JSON."""
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str,
                              indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")  # not CSV's default CRLF
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*(Column(header=Text(c)) for c in columns))
        for r in rows:
            table.add_row(*(Text("" if v is None else str(v)) for v in r))
        console.print(table)
