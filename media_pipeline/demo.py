"""`media-pipeline demo`: the whole object-catalog stretch on this machine, no AWS account.

Starts the embedded S3 server, uploads the generated sample corpus, runs the pipeline through
Dagster and prints what it found. The server keeps objects in memory, so every demo re-seeds it;
the catalog under MEDIA_PIPELINE_HOME persists, and a second demo finds nothing new to fingerprint.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from media_pipeline.catalog import Catalog
from media_pipeline.corpus import CorpusFile, generate_corpus
from media_pipeline.demo_content import DEMO_CDN, DemoContent, write_demo_content
from media_pipeline.records import media_id_for
from media_pipeline.settings import EMBEDDED_S3_HOST, EMBEDDED_S3_PORT, Settings
from media_pipeline.storage import ensure_bucket, make_client
from media_pipeline.storage.embedded import EmbeddedS3, is_listening, start_embedded_s3


def seed_bucket(client: Any, bucket: str, files: list[CorpusFile] | None = None,
                on_upload: Any = None) -> int:
    """Upload the sample corpus; returns the number of objects."""
    files = files if files is not None else generate_corpus()

    def put(f: CorpusFile) -> None:
        client.put_object(Bucket=bucket, Key=f.key, Body=f.data, ContentType=f.content_type)
        if on_upload is not None:
            on_upload(f)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, files))
    return len(files)


def _start_server() -> EmbeddedS3:
    default = f"http://{EMBEDDED_S3_HOST}:{EMBEDDED_S3_PORT}"
    port = 0 if is_listening(default) else EMBEDDED_S3_PORT
    return start_embedded_s3(EMBEDDED_S3_HOST, port)


DEMO_BUCKET = "media"
# Settings that could point the demo at real data; it clears them for its own process.
FOREIGN_SETTINGS = (
    "AWS_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_PROFILE", "AWS_STORAGE_BUCKET_NAME", "MEDIA_PIPELINE_INVENTORY", "MEDIA_PIPELINE_S3",
    "MEDIA_PIPELINE_SOURCES", "MEDIA_PIPELINE_CDN_BASE_URLS", "AWS_S3_CUSTOM_DOMAIN",
    "MEDIA_PIPELINE_RETENTION_DAYS", "MEDIA_PIPELINE_AUTO_DELETE_DAYS", "MEDIA_PIPELINE_ADMINS",
    "MEDIA_PIPELINE_SQS_QUEUE_URL",
)


def run_demo(home: Path, console: Console | None = None, keep_server: bool = False,
             ai: bool = True) -> dict[str, Any]:
    from media_pipeline.defs.execution import run_assets

    say = console.print if console is not None else (lambda *a, **k: None)
    server = _start_server()
    try:
        # The demo's own S3, bucket and catalog for this process, whatever the shell says.
        for name in FOREIGN_SETTINGS:
            os.environ.pop(name, None)
        os.environ.update({
            "AWS_S3_ENDPOINT_URL": server.url,
            "AWS_STORAGE_BUCKET_NAME": DEMO_BUCKET,
            "MEDIA_PIPELINE_HOME": str(home),
        })
        settings = Settings.from_env()
        client = make_client(settings)
        ensure_bucket(client, settings.bucket, settings.region)
        say(f"[bold]1.[/bold] embedded S3 at {server.url}, bucket [bold]{settings.bucket}[/bold]")

        files = generate_corpus()
        started = time.monotonic()
        count = seed_bucket(client, settings.bucket, files)
        size = sum(len(f.data) for f in files)
        say(f"[bold]2.[/bold] uploaded {count} sample files ({size / 1e6:.1f} MB) in "
            f"{time.monotonic() - started:.1f}s")

        say("[bold]3.[/bold] materializing inventory_snapshot → media_files → fingerprints → "
            "duplicate_groups → near_duplicates through Dagster …")
        run = run_assets()
        for asset, metadata in run.materialized.items():
            shown = ", ".join(f"{k}={v}" for k, v in metadata.items()
                              if isinstance(v, int | float) and not isinstance(v, bool))
            say(f"   [green]✓[/green] {asset}: {escape(shown)}", highlight=False)
        for check, passed in run.checks.items():
            say(f"   {'[green]✓' if passed else '[red]✗'}[/] check {check}")
        if not run.success:
            raise RuntimeError(f"pipeline run failed: {run.failure}")

        if ai:
            say("[bold]4.[/bold] AI analysis with the local backend (offline models) …")
            started = time.monotonic()
            ai_run = run_assets(["ai_analysis"])
            meta = ai_run.materialized.get("ai_analysis", {})
            if not ai_run.success:
                raise RuntimeError(f"AI analysis failed: {ai_run.failure}")
            elif meta.get("skipped"):
                say(f"   ai_analysis skipped: {escape(str(meta.get('reason')))}")
            else:
                say(f"   [green]✓[/green] ai_analysis: analysed={meta.get('analysed')}, "
                    f"files_updated={meta.get('files_updated')}, "
                    f"{time.monotonic() - started:.0f}s", highlight=False)

        step = 5 if ai else 4
        lifecycle_summary = _references_and_lifecycle(home, settings, client, files, say, step)

        with Catalog.open_snapshot(settings.snapshot_path, settings.catalog_path) as catalog:
            summary = catalog.summary()
        summary["lifecycle"] = lifecycle_summary
        summary["catalog"] = str(settings.catalog_path.resolve())
        summary["snapshot"] = str(settings.snapshot_path.resolve())
        summary["run_id"] = run.run_id
        if console is not None:
            print_summary(console, summary)
        if keep_server:
            say(f"embedded S3 still running at {server.url} (Ctrl-C to stop)")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return summary
    finally:
        server.stop()


def _references_and_lifecycle(home: Path, settings: Settings, client: Any,
                              files: list[CorpusFile], say: Any, step: int) -> dict[str, Any]:
    """The application API, the reference index, a refused delete and a purge."""
    from media_pipeline import lifecycle
    from media_pipeline.access import PermissionDenied
    from media_pipeline.defs.execution import run_assets
    from media_pipeline.library import MediaLibrary

    content = write_demo_content(home / "content", files, settings.bucket,
                                 settings.endpoint_url or "")
    # The demo's content uses these: the sources file, its CDN, and a retention of 0 days so
    # the purge can be shown now (the default is 30).
    os.environ.update({
        "MEDIA_PIPELINE_SOURCES": str(content.sources_file),
        "MEDIA_PIPELINE_CDN_BASE_URLS": DEMO_CDN,
        "MEDIA_PIPELINE_RETENTION_DAYS": "0",
    })
    settings = Settings.from_env()
    lib = MediaLibrary(settings, client)
    out: dict[str, Any] = {}

    say(f"[bold]{step}.[/bold] application API: namespace [bold]site[/bold], alice admin, "
        "bob editor; bob uploads a file")
    with Catalog.open(settings.catalog_path) as catalog:
        known = catalog.namespace_info("site") is not None
    if not known:
        lib.create_namespace("site", "alice")
        lib.add_member("site", "bob", "editor", "alice")
    uploaded = lib.upload("site", _demo_upload_bytes(), "Team photo.png", "bob",
                          visibility="internal")
    say(f"   {'deduplicated' if uploaded.deduplicated else 'stored'} "
        f"{escape(uploaded.key)} ({uploaded.content_type}, {uploaded.file_size} bytes)",
        highlight=False)
    url = lib.url(uploaded.media_id, "bob", expires=600)
    say(f"   signed URL (10 min): {escape(url[:90])}…", highlight=False)
    lib.add_reference(uploaded.media_id, "newsletter", "2026-11", "bob")
    lib.add_tag(uploaded.media_id, "team", "bob")
    out["uploaded"] = uploaded.key
    out["uploaded_bytes"] = uploaded.file_size

    say(f"[bold]{step + 1}.[/bold] reference index from the content sources "
        "(pages folder + CMS database) …")
    run = run_assets(_reference_selection(settings))
    for asset, meta in run.materialized.items():
        if asset.startswith("references_"):
            say(f"   [green]✓[/green] {asset}: {meta.get('documents')} documents, "
                f"{meta.get('dagster/row_count')} references", highlight=False)
    for check in ("reference_integrity", "catalog_consistency"):
        if check in run.checks:
            say(f"   {'[green]✓' if run.checks[check] else '[red]✗'}[/] check {check}")
    if not run.success:
        raise RuntimeError(f"reference scan failed: {run.failure}")
    used = sorted(content.referenced_keys)
    table = Table("file", "referenced_in", title="Where files are used (examples)")
    for key in used[:5]:
        refs = lib.get_references(media_id_for(settings.bucket, key))
        table.add_row(Text(key), Text(json.dumps(refs)))
    say(table)

    say(f"[bold]{step + 2}.[/bold] deletes: a used file is refused, unused ones are "
        "soft-deleted")
    used_site = next(k for k in used if k.startswith("site/"))  # bob edits site/ only
    used_id = media_id_for(settings.bucket, used_site)
    outcome = lib.delete_outcome(used_id, "bob")
    say(f"   bob deletes {escape(used_site)}: [red]refused[/red], used in "
        f"{escape(json.dumps(outcome.references))}", highlight=False)
    try:
        lib.delete(used_id, "bob", force=True)
    except PermissionDenied as exc:
        say(f"   bob forces it: [red]{escape(str(exc))}[/red]", highlight=False)
    victims = _unused_photos(files, content)[:5]
    for key in victims:
        lib.delete(media_id_for(settings.bucket, key), "bob")
    say(f"   bob soft-deletes {len(victims)} unused photos (still in S3 until purged)")

    say(f"[bold]{step + 3}.[/bold] purge (retention {settings.retention_days} days for the "
        "demo) …")
    sources = lifecycle.enabled_source_names(settings)
    early = lifecycle.purge(settings, client, enabled_sources=sources, dry_run=True)
    say(f"   dry run before a rescan: {early.candidates} candidates — every source must be "
        "scanned after a file's deletion")
    run = run_assets(_reference_selection(settings))
    if not run.success:
        raise RuntimeError(f"reference scan failed: {run.failure}")
    dry = lifecycle.purge(settings, client, enabled_sources=sources, dry_run=True)
    say(f"   dry run after the rescan: {dry.candidates} candidates, "
        f"{dry.candidate_bytes:,} bytes; nothing changed")
    done = lifecycle.purge(settings, client, enabled_sources=sources)
    say(f"   purge: {done.purged} files deleted from S3, {done.bytes_freed:,} bytes freed"
        + (f"; refused: {escape(done.refused_reason)}" if done.refused_reason else ""),
        highlight=False)
    still = client.head_object(Bucket=settings.bucket, Key=used_site)["ContentLength"]
    say(f"   the used file is still there ({escape(used_site)}, {still} bytes)",
        highlight=False)
    out.update(refused_delete=used_site, soft_deleted=len(victims),
               purge_candidates_before_rescan=early.candidates,
               purge_dry_run_candidates=dry.candidates, purged=done.purged,
               bytes_freed=done.bytes_freed)
    return out


def _reference_selection(settings: Settings) -> list[str]:
    from media_pipeline.defs.references import source_asset_name
    from media_pipeline.lifecycle import enabled_source_names

    return ["content_sources", *(source_asset_name(n) for n in enabled_source_names(settings)),
            "reference_index"]


def _unused_photos(files: list[CorpusFile], content: DemoContent) -> list[str]:
    """Photos in site/ that no content uses and that no copy or variant was made from (so the
    duplicate figures stay as they were)."""
    originals = {f.original for f in files if f.original}
    return [f.key for f in files if f.kind == "photo" and f.key.startswith("site/")
            and f.key not in content.referenced_keys and f.key not in originals]


def _demo_upload_bytes() -> Any:
    import io

    from PIL import Image

    image = Image.new("RGB", (64, 48), (30, 120, 200))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    buf.seek(0)
    return buf


def print_summary(console: Console, s: dict[str, Any]) -> None:
    console.print()
    console.print(f"[bold]{s['objects']}[/bold] objects, [bold]{s['bytes'] / 1e6:.1f} MB[/bold]; "
                  f"{s['duplicate_groups']} duplicate groups ({s['duplicate_files']} files, "
                  f"{s['wasted_bytes'] / 1e3:.0f} kB wasted); "
                  f"{s['near_duplicate_pairs']} near-duplicate pairs; "
                  f"{len(s['quarantined_files'])} quarantined; {s['missing']} missing")
    types = Table("content type (sniffed)", "files", "bytes", title="Types")
    for t in s["types"]:
        types.add_row(Text(t["content_type"]), str(t["files"]), f"{t['bytes']:,}")
    console.print(types)
    if s["near_duplicate_examples"]:
        near = Table("file", "near-duplicate of", "distance", title="Near duplicates (examples)")
        for n in s["near_duplicate_examples"]:
            near.add_row(Text(n["a"]), Text(n["b"]), str(n["distance"]))
        console.print(near)
    if s["quarantined_files"]:
        q = Table("key", "why", title="Quarantined")
        for item in s["quarantined_files"]:
            q.add_row(Text(item["key"]), Text(item["reason"] or ""))
        console.print(q)
    if s.get("ai_examples"):
        ai = Table("file", "AI title", "AI tags", "text found (OCR / PDF)",
                   title=f"AI analysis ({s['ai_analysed_files']} files; examples)")
        for item in s["ai_examples"]:
            text = (item["text"] or "").replace("\n", " ")
            ai.add_row(Text(item["key"]), Text(item["title"] or ""),
                       Text(", ".join(item["tags"][:6])),
                       Text(text[:60] + ("…" if len(text) > 60 else "")))
        console.print(ai)
    console.print(f"catalog: {escape(s['catalog'])}", highlight=False)
    home = escape(str(Path(s["catalog"]).parent))
    console.print(f"analysts' snapshot: {escape(s['snapshot'])}", highlight=False)
    console.print(f"try: MEDIA_PIPELINE_HOME={home} media-pipeline query "
                  "\"SELECT status, count(*) FROM media_files GROUP BY ALL\"", highlight=False)
