"""`run`: materialize the Dagster assets in-process."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from media_pipeline.cli.output import console, fail, friendly_errors, require_s3
from media_pipeline.settings import Settings

# -- run -----------------------------------------------------------------------------------------


@click.command("run")
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


COMMANDS = (run_command,)
