"""`sql`, `catalog migrate` and `why-purged`: the catalog as a DuckLake — attaching it from plain
DuckDB, converting the old single-file catalog into it, and reading its history."""

from __future__ import annotations

import click

from media_pipeline.cli.output import friendly_errors
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


COMMANDS = (sql_command,)
