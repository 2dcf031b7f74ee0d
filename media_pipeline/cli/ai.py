"""`analyze`: AI analysis of files in the catalog."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.text import Text

from media_pipeline.cli.output import console, fail, friendly_errors, require_s3
from media_pipeline.settings import Settings

# -- analyze -------------------------------------------------------------------------------------


@click.command("analyze")
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


COMMANDS = (analyze,)
