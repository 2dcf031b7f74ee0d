"""`report`: the duplicates page (see :mod:`media_pipeline.report.html`)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape

from media_pipeline.cli.output import console, friendly_errors, require_s3
from media_pipeline.settings import Settings


@click.command("report")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="Where to write the page.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@friendly_errors
def report_command(out: Path, as_json: bool) -> None:
    """One static HTML page to review duplicates: exact groups with a suggested keeper,
    near-duplicate pairs side by side, quarantined files, storage by namespace and type."""
    from media_pipeline.catalog import open_catalog
    from media_pipeline.report.html import write_report
    from media_pipeline.storage import make_client

    settings = Settings.from_env()
    require_s3(settings)
    summary = write_report(settings, out, make_client(settings), open_catalog)
    if as_json:
        click.echo(json.dumps({**summary.__dict__, "path": str(summary.path)}, indent=2))
        return
    console.print(f"{summary.groups} duplicate groups, {summary.near_pairs} near-duplicate pairs, "
                  f"{summary.quarantined} quarantined files, {summary.thumbnails} thumbnails "
                  f"({summary.thumbnails_made} made now)", highlight=False)
    console.print(f"report written to {escape(str(summary.path))}; open it in a browser: "
                  f"{escape(summary.path.as_uri())}", highlight=False, soft_wrap=True)


COMMANDS = (report_command,)
