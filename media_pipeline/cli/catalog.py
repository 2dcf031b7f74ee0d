"""`query` and `health`: reading the catalog (the analysts' snapshot) and the checks."""

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


COMMANDS = (query, health_command)
