"""`query` and `health`: reading the catalog (read-only) and the checks."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table
from rich.text import Text

from media_pipeline.cli.output import console, fail, friendly_errors, print_rows, require_s3
from media_pipeline.settings import Settings

# -- query ---------------------------------------------------------------------------------------


@click.command("query")
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("--at", "at", metavar="SNAPSHOT|TIMESTAMP",
              help="The catalog as it was: a snapshot id or a time (ISO, UTC by default).")
@friendly_errors
def query(sql: str, fmt: str, at: str | None) -> None:
    """Read-only SQL on the live catalog (never blocked by a running pipeline),
    bounded by MEDIA_PIPELINE_QUERY_TIMEOUT, _QUERY_MEMORY and _QUERY_THREADS."""
    from media_pipeline.analyst_query import QueryFailed, run_query
    from media_pipeline.catalog.history import parse_at

    settings = Settings.from_env()
    try:
        columns, rows = run_query(settings, sql, None if at is None else parse_at(at))
    except QueryFailed as exc:
        fail(str(exc))
    print_rows(columns, rows, fmt)


# -- health --------------------------------------------------------------------------------------


@click.command("health")
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
    client = make_client(settings)
    # One list of checks (health.CHECKS), the same the Dagster asset checks are built from.
    checks = health.run_checks(settings, client, sample)
    usage = health.storage_usage(settings)
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


COMMANDS = (query, health_command)
