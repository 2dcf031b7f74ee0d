"""`sql`, `catalog migrate` and `why-purged`: the catalog as a DuckLake — attaching it from plain
DuckDB, converting the old single-file catalog into it, and reading its history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.text import Text

from media_pipeline.cli.output import (
    dict_table,
    echo_json,
    err_console,
    friendly_errors,
    print_rows,
    say,
)
from media_pipeline.settings import Settings

# -- sql -----------------------------------------------------------------------------------------


@click.command("sql")
@click.option("--python", "as_python", is_flag=True,
              help="Print the three-line Python snippet instead of the SQL statements.")
@friendly_errors
def sql_command(as_python: bool) -> None:
    """The statements that attach the catalog read-only in plain DuckDB 1.5.5, for the current
    settings (no passwords or keys: PGPASSWORD, and fill in the S3 keys)."""
    from media_pipeline.catalog.snippets import analyst_statements, python_snippet

    location = Settings.from_env().catalog_location
    if as_python:
        click.echo(python_snippet(location))
    else:
        for statement in analyst_statements(location):
            click.echo(statement + ";")


# -- catalog migrate ----------------------------------------------------------------------------


@click.group("catalog")
def catalog_group() -> None:
    """The catalog itself: converting the old single-file catalog into the lake."""


@catalog_group.command("migrate")
@click.option("--from", "source", type=click.Path(dir_okay=False, path_type=Path),
              help="The old catalog file (default: $MEDIA_PIPELINE_HOME/catalog.duckdb).")
@click.option("--force", is_flag=True,
              help="Replace the rows the lake already holds (refused otherwise).")
@click.option("--duckdb-venv", "venv", type=click.Path(file_okay=False, path_type=Path),
              help="Reuse (or make) this virtualenv for DuckDB 2.0.1 instead of a throwaway "
                   "one.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly_errors
def catalog_migrate(source: Path | None, force: bool, venv: Path | None,
                    as_json: bool) -> None:
    """Convert the old catalog.duckdb into the lake: every table copied in one transaction,
    row counts verified per table, the old file kept as catalog.duckdb.pre-lake. A file written
    by DuckDB 2.0.1 is exported with DuckDB 2.0.1 in a throwaway virtualenv (pip)."""
    from media_pipeline.catalog.convert import migrate_catalog

    settings = Settings.from_env()
    old = source or settings.legacy_catalog_path
    location = settings.catalog_location
    report = migrate_catalog(
        old, location, force=force, venv=venv, work_dir=settings.home,
        progress=lambda line: err_console.print(Text(line), soft_wrap=True, highlight=False))
    if as_json:
        echo_json(report.to_dict())
        return
    print_rows(["table", "rows in the old file", "rows in the lake", "columns not copied"],
               [(t.table, t.rows_old, t.rows_new, ", ".join(t.columns_not_copied))
                for t in report.tables], "table")
    say(f"migrated {old} into the lake ({location.describe()}) in {report.seconds:.1f} s; "
        f"the old file is kept as {report.kept_as}")


# -- why-purged ----------------------------------------------------------------------------------


@click.command("why-purged")
@click.argument("media_id")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def why_purged_command(media_id: str, as_json: bool) -> None:
    """Why a file was purged: the purge run, the catalog snapshot it decided on and, as of that
    snapshot, the file's deletion, its references (none) and each source's last trusted scan;
    then the file's audit log."""
    from media_pipeline.catalog.history import explain_purge

    found = explain_purge(Settings.from_env().catalog_location, media_id)
    if as_json:
        echo_json(found.to_dict())
        return
    run: dict[str, Any] = found.run
    say(f"{found.key} ({media_id}) was purged by purge {found.purge_id} "
        f"(started {run.get('started')}, state {run.get('state')}, retention "
        f"{run.get('retention_days')} days), marked {found.mark.get('marked_at')}, "
        f"deleted in S3 {found.mark.get('updated_at')}")
    if found.snapshot_id is None or found.file is None:
        say(f"catalog snapshot: {found.snapshot_note or 'the file is not in it'}")
    else:
        f = found.file
        say(f"decided on catalog snapshot {found.snapshot_id} ({found.decided_at}); "
            f"as of it (media-pipeline query --at {found.snapshot_id} \"SQL\"):")
        say(f"  deleted by {f.get('deleted_by')} at {f.get('deleted_at')}, status "
            f"{f.get('status')}, reference_count {f.get('reference_count')}")
        say("  references: " + ("none" if not found.references else "; ".join(
            f"{r['content_type']} {r['content_id']} ({r['source']})"
            for r in found.references)))
        for scan in found.scans:
            say(Text(f"  source {scan['source']}: last trusted scan "
                     f"{scan['last_trusted_scan'] or 'never'}"
                     + (f" ({scan['documents']} documents, {scan['refs']} references)"
                        if scan["last_trusted_scan"] else "")))
    say("audit log:")
    dict_table(["ts", "actor", "action", "details"], found.audit)


COMMANDS = (sql_command, catalog_group, why_purged_command)
