"""`s3-server` and `demo`: the embedded S3 server, and the whole pipeline on a sample corpus."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
from rich.markup import escape

from media_pipeline.cli.output import console, err_console, fail, friendly_errors
from media_pipeline.settings import EMBEDDED_S3_HOST, EMBEDDED_S3_PORT, Settings

# -- s3-server -----------------------------------------------------------------------------------


@click.command("s3-server")
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


# -- demo ----------------------------------------------------------------------------------------


@click.command("demo")
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


COMMANDS = (s3_server, demo)
