"""`media-pipeline demo`: the whole object-catalog stretch on this machine, no AWS account.

Starts the embedded S3 server, uploads the generated sample corpus, runs the pipeline through
Dagster and prints what it found. The server keeps objects in memory, so every demo puts back
what earlier demos created in the catalog's bucket — the corpus (byte for byte, so the same ETags)
less the files a demo purged, and the file it uploaded through the application API — before it
runs. A second demo therefore finds every object unchanged, reads no object data and every check
is green; it purges nothing new (the first run's purge already happened).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from media_pipeline.catalog import Catalog
from media_pipeline.corpus import CorpusFile, generate_corpus
from media_pipeline.demo_content import DEMO_CDN, DemoContent, write_demo_content
from media_pipeline.errors import DemoError  # noqa: F401
from media_pipeline.records import media_id_for
from media_pipeline.settings import EMBEDDED_S3_HOST, EMBEDDED_S3_PORT, Settings
from media_pipeline.storage import ensure_bucket, make_client
from media_pipeline.storage.embedded import EmbeddedS3, port_free, start_embedded_s3


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
    port = EMBEDDED_S3_PORT if port_free(EMBEDDED_S3_HOST, EMBEDDED_S3_PORT) else 0
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
    saved = dict(os.environ)  # the demo's settings are for its own run only
    try:
        # The demo's own S3, bucket and catalog for this process, whatever the shell says.
        for name in FOREIGN_SETTINGS:
            os.environ.pop(name, None)
        os.environ.update({
            "AWS_S3_ENDPOINT_URL": server.url,
            "AWS_STORAGE_BUCKET_NAME": DEMO_BUCKET,
            "MEDIA_PIPELINE_HOME": str(home),
            # The operator: the demo's files are already in the bucket when "site" is created,
            # and only a global admin may create a namespace that holds files.
            "MEDIA_PIPELINE_ADMINS": DEMO_OPERATOR,
        })
        settings = Settings.from_env()
        client = make_client(settings)
        ensure_bucket(client, settings.bucket, settings.region)
        say(f"[bold]1.[/bold] embedded S3 at {server.url}, bucket [bold]{settings.bucket}[/bold]")

        files = generate_corpus()
        purged = _purged_keys(settings)
        started = time.monotonic()
        count = seed_bucket(client, settings.bucket, [f for f in files if f.key not in purged])
        restored = _put_back_uploads(settings, client)
        size = sum(len(f.data) for f in files if f.key not in purged)
        say(f"[bold]2.[/bold] uploaded {count} sample files ({size / 1e6:.1f} MB) in "
            f"{time.monotonic() - started:.1f}s"
            + (f"; put back {restored} file(s) uploaded by an earlier demo" if restored else "")
            + (f"; {len(purged)} purged by an earlier demo left out" if purged else ""))

        say("[bold]3.[/bold] materializing inventory_snapshot → media_files → fingerprints → "
            "duplicate_groups → near_duplicates through Dagster …")
        run = run_assets()
        stages: dict[str, dict[str, Any]] = {}
        checks: dict[str, bool] = {}
        _collect(run, stages, checks)
        for asset, metadata in run.materialized.items():
            shown = ", ".join(f"{k}={v}" for k, v in metadata.items()
                              if isinstance(v, int | float) and not isinstance(v, bool))
            say(f"   [green]✓[/green] {asset}: {escape(shown)}", highlight=False)
        for check, passed in run.checks.items():
            say(f"   {'[green]✓' if passed else '[red]✗'}[/] check {check}")
        if not run.success:
            raise DemoError(_failed("the pipeline run", run))

        lifecycle_summary = _references_and_lifecycle(home, settings, client, files, say, 4,
                                                      stages, checks)

        if ai:
            say("[bold]8.[/bold] AI analysis with the local backend (offline models), once per "
                "content hash …")
            started = time.monotonic()
            ai_run = run_assets(["ai_analysis"])
            _collect(ai_run, stages, checks)
            meta = ai_run.materialized.get("ai_analysis", {})
            if not ai_run.success:
                raise DemoError(_failed("AI analysis", ai_run, "or run the demo with --no-ai"))
            elif meta.get("skipped"):
                say(f"   ai_analysis skipped: {escape(str(meta.get('reason')))}")
            else:
                say(f"   [green]✓[/green] ai_analysis: analysed={meta.get('analysed')}, "
                    f"files_updated={meta.get('files_updated')}, "
                    f"{time.monotonic() - started:.0f}s", highlight=False)

        with Catalog.open(settings.catalog_location, read_only=True) as catalog:
            summary = catalog.reports.summary()
        summary["lifecycle"] = lifecycle_summary
        summary["catalog"] = settings.catalog_location.describe()
        summary["home"] = str(settings.home)
        summary["run_id"] = run.run_id
        summary["stages"] = stages
        summary["checks"] = checks
        from media_pipeline.catalog import open_catalog
        from media_pipeline.report.html import write_report

        summary["report"] = str(write_report(settings, home / "report.html", client,
                                             open_catalog).path)
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
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def _collect(run: Any, stages: dict[str, dict[str, Any]], checks: dict[str, bool]) -> None:
    """Numbers of every stage a demo run materialized, and the checks' outcomes (last wins)."""
    for asset, metadata in run.materialized.items():
        stages[asset] = {k: v for k, v in metadata.items()
                         if isinstance(v, int | float | str) and not isinstance(v, bool)}
    checks.update(run.checks)


def _failed(what: str, run: Any, extra: str = "") -> str:
    log = f"; Dagster's log: {run.log_file}" if getattr(run, "log_file", None) else ""
    hint = f" ({extra})" if extra else ""
    return (f"{what} failed at {run.failure}{log}; run the demo again once it is fixed{hint}")


def _catalog_exists(settings: Settings) -> bool:
    location = settings.catalog_location
    return location.is_postgres or Path(location.metadata).exists()


def _purged_keys(settings: Settings) -> set[str]:
    """Keys a demo purged from the bucket: putting them back would make them new files."""
    if not _catalog_exists(settings):
        return set()
    with Catalog.open(settings.catalog_location) as catalog:
        return catalog.application.purged_keys(settings.bucket)


def _put_back_uploads(settings: Settings, client: Any) -> int:
    """The demo's application-API upload, put back (same bytes, key and type, so the same ETag)
    when the catalog has it and the restarted in-memory server does not."""
    import hashlib

    from media_pipeline.library import upload_key
    from media_pipeline.storage.s3 import is_not_found

    if not _catalog_exists(settings):
        return 0
    data = _demo_upload_bytes().getvalue()
    key = upload_key(DEMO_NAMESPACE, DEMO_UPLOAD_NAME, DEMO_UPLOADER,
                     hashlib.sha256(data).hexdigest())
    with Catalog.open(settings.catalog_location) as catalog:
        row = catalog.application.media_row(media_id_for(settings.bucket, key))
    if row is None or row["status"] == "purged":
        return 0
    try:
        client.head_object(Bucket=settings.bucket, Key=key)
        return 0
    except ClientError as exc:
        if not is_not_found(exc):
            raise
    client.put_object(Bucket=settings.bucket, Key=key, Body=data,
                      ContentType=str(row["content_type"] or "image/png"))
    return 1


DEMO_NAMESPACE = "site"
DEMO_OPERATOR = "ops"
DEMO_UPLOADER = "bob"
DEMO_UPLOAD_NAME = "Team photo.png"


def _references_and_lifecycle(home: Path, settings: Settings, client: Any,
                              files: list[CorpusFile], say: Any, step: int,
                              stages: dict[str, dict[str, Any]], checks: dict[str, bool],
                              ) -> dict[str, Any]:
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
        # nothing else writes to the demo's catalog: no minimum age either
        "MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS": "0",
    })
    settings = Settings.from_env()
    lib = MediaLibrary(settings, client)
    out: dict[str, Any] = {}

    say(f"[bold]{step}.[/bold] application API: the operator ({DEMO_OPERATOR}) creates "
        "namespace [bold]site[/bold] (it already holds files), alice admin, bob editor; "
        "bob uploads a file")
    with Catalog.open(settings.catalog_location) as catalog:
        known = catalog.application.namespace_info(DEMO_NAMESPACE) is not None
    if not known:
        lib.create_namespace(DEMO_NAMESPACE, DEMO_OPERATOR)
        lib.add_member(DEMO_NAMESPACE, "alice", "admin", DEMO_OPERATOR)
        lib.add_member(DEMO_NAMESPACE, "bob", "editor", "alice")
    uploaded = lib.upload(DEMO_NAMESPACE, _demo_upload_bytes(), DEMO_UPLOAD_NAME, DEMO_UPLOADER,
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
    _collect(run, stages, checks)
    for asset, meta in run.materialized.items():
        if asset.startswith("references_"):
            say(f"   [green]✓[/green] {asset}: {meta.get('documents')} documents, "
                f"{meta.get('dagster/row_count')} references", highlight=False)
    for check in ("reference_integrity", "catalog_consistency"):
        if check in run.checks:
            say(f"   {'[green]✓' if run.checks[check] else '[red]✗'}[/] check {check}")
    if not run.success:
        raise DemoError(_failed("the reference scan", run))
    used = sorted(content.referenced_keys)
    table = Table("file", "referenced_in", title="Where files are used (examples)")
    for key in used[:5]:
        refs = lib.get_references(media_id_for(settings.bucket, key), DEMO_OPERATOR)
        table.add_row(Text(key), Text(json.dumps(refs)))
    say(table)

    say(f"[bold]{step + 2}.[/bold] deletes: a used file is refused, unused ones are "
        "soft-deleted")
    used_site = next(k for k in used if k.startswith("site/"))  # bob edits site/ only
    used_id = media_id_for(settings.bucket, used_site)
    outcome = lib.delete_outcome(used_id, "bob")
    where = (f"used in {json.dumps(outcome.references)}" if outcome.references else
             f"used in {outcome.hidden_references} place(s) bob may not see")
    say(f"   bob deletes {escape(used_site)}: [red]refused[/red], {escape(where)}",
        highlight=False)
    try:
        lib.delete(used_id, "bob", force=True)
    except PermissionDenied as exc:
        say(f"   bob forces it: [red]{escape(str(exc))}[/red]", highlight=False)
    chosen = _unused_photos(files, content)[:5]
    with Catalog.open(settings.catalog_location) as catalog:
        rows = {key: catalog.application.media_row(media_id_for(settings.bucket, key))
                for key in chosen}
    status = {key: (row or {}).get("status") for key, row in rows.items()}
    victims = [key for key in chosen if status[key] not in ("deleted", "purged")]
    for key in victims:
        lib.delete(media_id_for(settings.bucket, key), "bob")
    gone = sum(1 for key in chosen if status[key] == "purged")
    say(f"   bob soft-deletes {len(victims)} unused photos (still in S3 until purged)"
        + (f"; {gone} were purged by an earlier demo" if gone else ""))

    say(f"[bold]{step + 3}.[/bold] purge (retention {settings.retention_days} days for the "
        "demo) …")
    sources = lifecycle.enabled_source_names(settings)
    early = lifecycle.purge(settings, client, enabled_sources=sources, dry_run=True)
    say(f"   dry run before a rescan: {early.candidates} candidates — every source must be "
        "scanned after a file's deletion")
    run = run_assets(_reference_selection(settings))
    _collect(run, stages, checks)
    if not run.success:
        raise DemoError(_failed("the reference rescan", run))
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
    # Paths and commands on lines of their own, never wrapped: they are copied and pasted.
    console.print(f"catalog: {escape(s['catalog'])}", highlight=False, soft_wrap=True)
    home = escape(s["home"])
    console.print(f"try: MEDIA_PIPELINE_HOME={home} media-pipeline query "
                  "\"SELECT status, count(*) FROM media_files GROUP BY ALL\"", highlight=False,
                  soft_wrap=True)
    if s.get("report"):
        console.print(f"duplicates report (open it in a browser): "
                      f"{escape(Path(s['report']).as_uri())}", highlight=False, soft_wrap=True)
