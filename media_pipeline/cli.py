"""The `media-pipeline` command.

Every command reads the same settings as the pipeline, prints data as a table (or JSON with
``--json``/``--format json``) and exits non-zero with a one-line reason on failure.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from media_pipeline.catalog import CatalogError
from media_pipeline.settings import EMBEDDED_S3_HOST, EMBEDDED_S3_PORT, Settings, SettingsError
from media_pipeline.storage.embedded import EmbeddedServerUnavailable, is_listening

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    CatalogError, SettingsError, ClientError, BotoCoreError, OSError, ValueError,
    EmbeddedServerUnavailable,
)


def fail(message: str) -> NoReturn:
    # One line whatever the terminal's width: a wrapped line reads as several to a script.
    err_console.print(f"[red]error:[/red] {escape(_flat(message))}", highlight=False,
                      soft_wrap=True)
    sys.exit(1)


# What to do next, for failures whose message names what failed but not the way out.
NEXT_STEPS: tuple[tuple[type[BaseException], str], ...] = (
    (SettingsError, "fix that environment variable and run the command again"),
    (ClientError, "check AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL and the credentials"),
    (BotoCoreError, "check AWS_S3_ENDPOINT_URL, the network and the credentials"),
    (OSError, "check that the path exists and is writable (MEDIA_PIPELINE_HOME, --home)"),
)


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
            hint = next((h for kind, h in NEXT_STEPS if isinstance(exc, kind)), None)
            fail(_one_line(exc) + (f" ({hint})" if hint else ""))
        except Exception as exc:  # last resort: still one line; MEDIA_PIPELINE_DEBUG=1 for more
            if os.environ.get("MEDIA_PIPELINE_DEBUG"):
                raise
            log = write_traceback(exc)
            fail(f"{type(exc).__name__}: {_one_line(exc)} (an unexpected error: the traceback "
                 f"is in {log}; please report it)" if log else
                 f"{type(exc).__name__}: {_one_line(exc)} (an unexpected error; "
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _flat(text) if text else type(exc).__name__


def _flat(text: str, limit: int = 800) -> str:
    """``text`` on one line: the lines of a multi-line message (every error of a sources file)
    joined with "; ", cut at ``limit`` characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    joined = "; ".join(lines)
    return joined if len(joined) <= limit else joined[:limit - 1] + "…"


def require_s3(settings: Settings) -> None:
    if settings.uses_embedded_s3 and not is_listening(settings.endpoint_url or ""):
        fail(
            f"no S3 server is running at {settings.endpoint_url}: start the embedded one with "
            "`media-pipeline s3-server`, or set AWS_S3_ENDPOINT_URL / AWS credentials "
            "(MEDIA_PIPELINE_S3=aws for an instance role)"
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="media-pipeline")
def main() -> None:
    """Media file management for S3: catalog, fingerprints, duplicates and safe cleanup."""


# -- s3-server -----------------------------------------------------------------------------------


@main.command("s3-server")
@click.option("--port", default=EMBEDDED_S3_PORT, show_default=True, help="Port on 127.0.0.1.")
@click.option("--seed/--no-seed", default=False, help="Upload the generated sample corpus.")
@friendly_errors
def s3_server(port: int, seed: bool) -> None:
    """Run the embedded S3-compatible server (in memory: a restart starts empty)."""
    from media_pipeline.demo import seed_bucket
    from media_pipeline.storage import ensure_bucket, make_client
    from media_pipeline.storage.embedded import port_free, start_embedded_s3

    url = f"http://{EMBEDDED_S3_HOST}:{port}"
    if not port_free(EMBEDDED_S3_HOST, port):
        fail(f"something is already listening on {url}: stop it, or choose another --port")
    server = start_embedded_s3(EMBEDDED_S3_HOST, port)
    settings = Settings.from_env(endpoint_url=server.url)
    client = make_client(settings)
    ensure_bucket(client, settings.bucket, settings.region)
    if seed:
        count = seed_bucket(client, settings.bucket)
        console.print(f"uploaded {count} sample files to s3://{settings.bucket}/")
    console.print(f"embedded S3 listening on [bold]{server.url}[/bold], bucket "
                  f"[bold]{settings.bucket}[/bold] (in memory; Ctrl-C to stop)")
    if port != EMBEDDED_S3_PORT:
        console.print(f"set AWS_S3_ENDPOINT_URL={server.url} for other commands")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


# -- run -----------------------------------------------------------------------------------------


@main.command("run")
@click.option("--select", "select", multiple=True,
              help="Asset to materialize (repeatable); default: all.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Show Dagster's step log.")
@friendly_errors
def run_command(select: tuple[str, ...], as_json: bool, verbose: bool) -> None:
    """Materialize the assets in-process (what the nightly job does)."""
    from media_pipeline.defs.execution import run_assets

    settings = Settings.from_env()
    require_s3(settings)
    summary = run_assets(list(select) or None, log_level="DEBUG" if verbose else "CRITICAL")
    if as_json:
        click.echo(json.dumps(summary.__dict__, default=str, indent=2))
    else:
        for asset, metadata in summary.materialized.items():
            shown = ", ".join(f"{k}={v}" for k, v in metadata.items() if not isinstance(v, dict))
            console.print(f"[green]✓[/green] {asset}: {escape(shown)}", highlight=False)
        for check, passed in summary.checks.items():
            mark = "[green]✓[/green]" if passed else "[red]✗[/red]"
            extra = summary.check_descriptions.get(check, "")
            console.print(f"{mark} check {check} {escape(extra)}", highlight=False)
    if not summary.success:
        fail(f"run {summary.run_id} failed at {summary.failure}; Dagster's log with the "
             f"traceback: {summary.log_file}; fix the cause and run it again (-v shows the log)")


# -- query ---------------------------------------------------------------------------------------


@main.command("query")
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@friendly_errors
def query(sql: str, fmt: str) -> None:
    """Read-only SQL on the published catalog snapshot (never blocked by a running pipeline),
    bounded by MEDIA_PIPELINE_QUERY_TIMEOUT, _QUERY_MEMORY and _QUERY_THREADS."""
    from media_pipeline.analyst_query import QueryFailed, run_query

    settings = Settings.from_env()
    try:
        columns, rows = run_query(settings, sql)
    except QueryFailed as exc:
        fail(str(exc))
    print_rows(columns, rows, fmt)


def print_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str,
                              indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*(Column(header=Text(c)) for c in columns))
        for r in rows:
            table.add_row(*(Text("" if v is None else str(v)) for v in r))
        console.print(table)


# -- analyze -------------------------------------------------------------------------------------


@main.command("analyze")
@click.argument("media_ids", nargs=-1)
@click.option("--batch", "batch", default=20, show_default=True,
              help="Files without a result to analyse (when no MEDIA_ID is given).")
@click.option("--all", "redo", is_flag=True, help="Analyse again even where results exist.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@friendly_errors
def analyze(media_ids: tuple[str, ...], batch: int, redo: bool, as_json: bool) -> None:
    """AI analysis (tags, title, OCR text, labels, faces, moderation) of files in the catalog."""
    from media_pipeline.ai.runner import analyze_batch
    from media_pipeline.ai.service import MediaAIService, summarize
    from media_pipeline.ai.thresholds import Thresholds
    from media_pipeline.pipeline import open_catalog
    from media_pipeline.storage import make_client

    settings = Settings.from_env()
    require_s3(settings)
    service = MediaAIService(settings, thresholds=Thresholds.from_settings(
        settings.ai_confidence_threshold, settings.ai_detector_thresholds))
    status = service.backend.status()
    if not status.get("ok"):
        fail(f"no AI backend is available: {status}")
    found: list[dict[str, Any]] = []

    def on_result(key: str, result: Any) -> None:
        found.append(summarize(result, service.thresholds, key=key))
        if not as_json:
            item = found[-1]
            tags = ", ".join(t["name"] for t in item["tags"][:8])
            text = (item["extracted_text"] or "").replace("\n", " ")[:60]
            console.print(Text(f"{key}: title={item['title']!r} tags=[{tags}]"
                               + (f" text={text!r}" if text else "")))

    stats = analyze_batch(
        settings, make_client(settings), service, lambda: open_catalog(settings),
        batch_size=min(batch, 20), max_files=len(media_ids) or batch,
        mode="all" if redo or media_ids else "missing", media_ids=list(media_ids) or None,
        on_result=on_result,
    )
    if as_json:
        click.echo(json.dumps({"results": found, "stats": stats.__dict__}, default=str, indent=2))
    else:
        console.print(f"analysed {stats.analysed}, failed {stats.failed}, deferred "
                      f"{stats.deferred}, files updated {stats.files_updated} "
                      f"({stats.seconds:.1f}s, backend {stats.backend})", highlight=False)
    if stats.deferred:
        fail(f"{stats.deferred} files deferred: {stats.deferred_reason}")


# -- health --------------------------------------------------------------------------------------


@main.command("health")
@click.option("--sample", default=50, show_default=True, help="Objects to HEAD.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def health_command(sample: int, as_json: bool) -> None:
    """The asset checks, as a table: storage usage, file accessibility, public exposure,
    reference integrity and catalog consistency; exit 1 when one fails."""
    from media_pipeline import health
    from media_pipeline.storage import make_client

    settings = Settings.from_env()
    require_s3(settings)
    usage = health.storage_usage(settings)
    report = health.check_accessibility(settings, make_client(settings), sample)
    checks = [
        {"check": "storage_usage", "passed": True,
         "detail": f"{sum(r['files'] for r in usage)} files, "
                   f"{sum(r['bytes'] for r in usage)} bytes"},
        {"check": "file_accessibility", "passed": report.ok,
         "detail": f"{report.checked} checked, {len(report.missing_keys)} missing"
                   + (": " + ", ".join(report.missing_keys[:10]) if report.missing_keys else "")
                   + (f", {len(report.errors)} errors" if report.errors else "")},
    ]
    exposure = health.check_public_exposure(settings, make_client(settings))
    checks.append(
        {"check": "public_exposure", "passed": exposure.ok,
         "detail": f"{exposure.checked} checked, {len(exposure.exposed)} public in S3 but not "
                   "in the catalog" + (": " + ", ".join(exposure.exposed[:10])
                                       if exposure.exposed else "")
                   + (f", {len(exposure.errors)} errors" if exposure.errors else "")})
    refs = health.reference_health(settings)
    gone = refs.dangling + refs.to_gone_files
    checks += [
        {"check": "reference_integrity", "passed": not gone,
         "detail": f"{len(refs.dangling)} dangling, {len(refs.to_gone_files)} to purged or "
                   "missing files" + (": " + ", ".join(
                       f"{r.get('key') or r.get('media_id')} in {r.get('content_type')} "
                       f"{r.get('content_id')}" for r in gone[:5]) if gone else "")},
        {"check": "catalog_consistency", "passed": not refs.count_mismatches,
         "detail": f"{len(refs.count_mismatches)} files whose reference_count/referenced_in "
                   "disagree with the index"},
    ]
    stale = [s for s in health.source_health(settings) if s["stale"]]
    checks.append({"check": "content_sources", "passed": not stale,
                   "detail": "; ".join(f"{s['source']}: {s['reason']}" for s in stale)
                   or "every source a purge needs has a trusted latest scan"})
    from media_pipeline.lifecycle import bucket_versioning

    undo = bucket_versioning(settings, make_client(settings))
    # a warning, not a failure: permanent purges are a choice, but one to know about
    checks.append({"check": "purge_undo", "passed": True, "warn": not undo["undo"],
                   "versioning": undo["versioning"], "detail": undo["detail"]})
    if as_json:
        click.echo(json.dumps({"checks": checks, "storage_usage": usage}, indent=2))
    else:
        table = Table("check", "status", "detail")
        for c in checks:
            status = ("[red]FAIL[/red]" if not c["passed"] else
                      "[yellow]warn[/yellow]" if c.get("warn") else "[green]pass[/green]")
            table.add_row(Text(str(c["check"])), status, Text(str(c["detail"])))
        console.print(table)
        print_rows(["namespace", "content_type", "files", "bytes"],
                   [tuple(r.values()) for r in usage], "table")
    if not all(c["passed"] for c in checks):
        sys.exit(1)


# -- demo ----------------------------------------------------------------------------------------


@main.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--keep-server", is_flag=True,
              help="Keep the embedded S3 server running after the demo (Ctrl-C to stop).")
@click.option("--ai/--no-ai", default=True, show_default=True,
              help="Run the AI analysis step (local models, offline; about a minute).")
@click.option("--home", type=click.Path(path_type=Path), default=Path(".media_pipeline"),
              show_default=True,
              help="The demo's catalog folder (MEDIA_PIPELINE_HOME is ignored on purpose).")
@friendly_errors
def demo(as_json: bool, keep_server: bool, ai: bool, home: Path) -> None:
    """Embedded S3 + sample corpus + a full pipeline run + a summary. No AWS account needed.

    The demo never touches your configured S3 or catalog: it starts its own embedded server,
    uses the bucket `media` and its own catalog folder.
    """
    from media_pipeline.demo import run_demo
    from media_pipeline.settings import absolute

    home = absolute(home)  # relative to where the command runs, resolved once
    configured = os.environ.get("MEDIA_PIPELINE_HOME")
    if configured and absolute(configured) != home:
        err_console.print(f"note: the demo uses its own catalog at {escape(str(home))}, "
                          "not MEDIA_PIPELINE_HOME", highlight=False, soft_wrap=True)
    if any(os.environ.get(v) for v in ("AWS_ACCESS_KEY_ID", "AWS_S3_ENDPOINT_URL", "AWS_PROFILE",
                                       "AWS_STORAGE_BUCKET_NAME", "MEDIA_PIPELINE_INVENTORY")):
        err_console.print("note: the demo ignores AWS and inventory settings and uses its own "
                          "embedded S3", soft_wrap=True)
    summary = run_demo(home, console=None if as_json else console, keep_server=keep_server,
                       ai=ai)
    if as_json:
        click.echo(json.dumps(summary, default=str, indent=2))


# The command groups defined in their own modules register themselves on `main`.
from media_pipeline import cli_application, cli_references, cli_report  # noqa: E402,F401

if __name__ == "__main__":
    main()
