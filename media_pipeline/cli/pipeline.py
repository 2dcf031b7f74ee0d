"""`run`: materialize the Dagster assets in-process."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from media_pipeline.cli.output import console, fail, friendly_errors, require_s3
from media_pipeline.settings import Settings

# -- run -----------------------------------------------------------------------------------------


def _as_json(value: object) -> object:
    """``value`` with Dagster's table previews as lists of dicts: ``json`` takes them for tuples
    and fails iterating their records."""
    import dagster as dg  # the CLI starts without Dagster; `run` has imported it already

    if isinstance(value, dg.TableMetadataValue):
        return [dict(record.data) for record in value.records]
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    return value


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
        click.echo(json.dumps(_as_json(summary.__dict__), default=str, indent=2))
    else:
        for asset, metadata in summary.materialized.items():
            shown = ", ".join(f"{k}={v}" for k, v in metadata.items() if not isinstance(v, dict))
            console.print(f"[green]✓[/green] {asset}: {escape(shown)}", highlight=False)
        for check, passed in summary.checks.items():
            mark = "[green]✓[/green]" if passed else "[red]✗[/red]"
            extra = summary.check_descriptions.get(check, "")
            console.print(f"{mark} check {check} {escape(extra)}", highlight=False)
    if not summary.success:
        where = (summary.log_file if summary.log_file
                 else "the run's event log in the Dagster instance (DAGSTER_HOME; the UI shows it)")
        fail(f"run {summary.run_id} failed at {summary.failure}; Dagster's log with the "
             f"traceback: {where}; fix the cause and run it again (-v shows the log)")


# -- worker --------------------------------------------------------------------------------------


@click.command("worker")
@click.option("--name", default=None,
              help="The worker's name (default: media-pipeline-<pid>@<host>).")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Steps this worker runs at once (each in its own process).")
@click.option("--loglevel", default="INFO", show_default=True, help="Celery's log level.")
@friendly_errors
def worker_command(name: str | None, concurrency: int, loglevel: str) -> None:
    """A Celery worker that runs pipeline steps (MEDIA_PIPELINE_EXECUTOR=celery): start one
    or more on any machine with the same settings and DAGSTER_HOME."""
    import os
    import sys

    from media_pipeline.definitions import celery_queue_name
    from media_pipeline.defs.distributed import dagster_instance

    settings = Settings.from_env()
    try:
        import dagster_celery  # noqa: F401
    except ImportError:
        fail("`media-pipeline worker` needs dagster-celery: "
             "pip install 'media-pipeline[distributed]'")
    require_s3(settings)
    with dagster_instance():  # created before the worker forks (see dagster_instance)
        pass
    args = [sys.executable, "-m", "celery", "-A", "media_pipeline.defs.celery_worker", "worker",
            "--prefetch-multiplier=1", "-Q", celery_queue_name(settings),
            "--concurrency", str(concurrency), "--loglevel", loglevel,
            "-n", name or f"media-pipeline-{os.getpid()}@%h"]
    os.execv(sys.executable, args)


COMMANDS = (run_command, worker_command)
