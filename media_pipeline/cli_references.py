"""`media-pipeline refs`, `delete`, `restore` and `purge`: registered on the main command.

Writes go through ``pipeline.open_catalog`` (waits for the lock, publishes the analysts'
snapshot); ``refs show`` reads the published snapshot and never waits for a running pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from media_pipeline.access import PermissionDenied
from media_pipeline.cli import _one_line, console, fail, friendly_errors, main, require_s3
from media_pipeline.lifecycle import (
    LifecycleError,
    PurgeReport,
    SourcesUnavailable,
    UnknownMedia,
    enabled_source_names,
)
from media_pipeline.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def lifecycle_errors(func: F) -> F:
    """Refusals and unknown ids are expected answers: one line on stderr, exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (PermissionDenied, UnknownMedia, LifecycleError, SourcesUnavailable) as exc:
            fail(_one_line(exc))

    return wrapper  # type: ignore[return-value]


def _describe(refs: dict[str, list[str]]) -> str:
    return "; ".join(f"{content_type} {', '.join(ids)}" for content_type, ids in refs.items())


# -- refs ----------------------------------------------------------------------------------------


@main.group("refs")
def refs() -> None:
    """Where files are used: add, remove and show references."""


@refs.command("add")
@click.argument("media_id")
@click.argument("content_type")
@click.argument("content_id")
@click.option("--user", required=True, help="Who adds it (editor in the file's namespace).")
@friendly_errors
@lifecycle_errors
def refs_add(media_id: str, content_type: str, content_id: str, user: str) -> None:
    """Record that CONTENT_TYPE CONTENT_ID (e.g. webpage 123) uses the file."""
    from media_pipeline.lifecycle import add_reference
    from media_pipeline.pipeline import open_catalog

    settings = Settings.from_env()
    with open_catalog(settings) as catalog:
        added = add_reference(catalog, settings, media_id, content_type, content_id, user)
    console.print(Text(f"{'added' if added else 'already recorded'}: {content_type} "
                       f"{content_id} uses {media_id}"))


@refs.command("remove")
@click.argument("media_id")
@click.argument("content_type")
@click.argument("content_id")
@click.option("--user", required=True, help="Who removes it (editor in the file's namespace).")
@friendly_errors
@lifecycle_errors
def refs_remove(media_id: str, content_type: str, content_id: str, user: str) -> None:
    """Remove a reference added through the API (scanned ones follow the content)."""
    from media_pipeline.lifecycle import references, remove_reference
    from media_pipeline.pipeline import open_catalog

    settings = Settings.from_env()
    with open_catalog(settings) as catalog:
        removed = remove_reference(catalog, settings, media_id, content_type, content_id, user)
        try:  # where else the file is used is shown only to those who may see it
            left = references(catalog, settings, media_id, user)
        except PermissionDenied:
            left = {}
    if not removed:
        fail(f"no API reference {content_type} {content_id} on {media_id}"
             + (f" (the file is still referenced: {_describe(left)})" if left else ""))
    console.print(Text(f"removed: {content_type} {content_id} no longer uses {media_id}"))


@refs.command("show")
@click.argument("media_id")
@click.option("--user", required=True, help="Who asks (must be allowed to see the file).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
@lifecycle_errors
def refs_show(media_id: str, user: str, as_json: bool) -> None:
    """The file's references in the seed's shape {"webpage": ["123"], ...} and their count."""
    from media_pipeline.catalog import Catalog
    from media_pipeline.lifecycle import references

    settings = Settings.from_env()
    with Catalog.open_snapshot(settings.snapshot_path, settings.catalog_path) as catalog:
        found = references(catalog, settings, media_id, user)  # checks who asks
        rows = catalog.reference_rows(media_id)
    count = sum(len(ids) for ids in found.values())
    if as_json:
        click.echo(json.dumps({"media_id": media_id, "reference_count": count,
                               "referenced_in": found,
                               "references": [{k: r[k] for k in (
                                   "content_type", "content_id", "source", "origin", "form",
                                   "snippet")} for r in rows]}, indent=2))
        return
    console.print(Text(json.dumps(found)))
    console.print(Text(f"{count} reference{'s' if count != 1 else ''}"))
    for r in rows:  # where each was found; mentions with the text around them
        where = f"{r['content_type']} {r['content_id']} ({r['source']}): {r['form']}"
        console.print(Text(where + (f': "{r["snippet"]}"' if r["snippet"] else "")))


# -- delete / restore ----------------------------------------------------------------------------


@main.command("delete")
@click.argument("media_id")
@click.option("--user", required=True, help="Who deletes (editor; admin with --force).")
@click.option("--force", is_flag=True, help="Delete even while referenced (admins only).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@friendly_errors
@lifecycle_errors
def delete_command(media_id: str, user: str, force: bool, as_json: bool) -> None:
    """Soft-delete a file (it stays in S3 until a purge); refused while it is referenced."""
    from media_pipeline.lifecycle import delete
    from media_pipeline.pipeline import open_catalog

    settings = Settings.from_env()
    with open_catalog(settings) as catalog:
        outcome = delete(catalog, settings, media_id, user, force=force)
    if as_json:
        click.echo(json.dumps({"media_id": outcome.media_id, "deleted": outcome.deleted,
                               "refused": outcome.refused, "forced": outcome.forced,
                               "already_deleted": outcome.already_deleted,
                               "reference_count": outcome.reference_count,
                               "referenced_in": outcome.references}, indent=2))
    if outcome.refused:
        where = (f" ({_describe(outcome.references)})" if outcome.references else "")
        fail(f"refused: {media_id} is referenced by {outcome.reference_count} content items"
             f"{where}; remove the references first, or an admin can --force")
    if not as_json:
        if outcome.already_deleted:
            console.print(Text(f"{media_id} was already deleted"))
        else:
            extra = (f" (forced; still referenced by {_describe(outcome.references)})"
                     if outcome.forced else "")
            console.print(Text(f"deleted {media_id}{extra}; restore is possible until it is "
                               "purged"))


@main.command("restore")
@click.argument("media_id")
@click.option("--user", required=True, help="Who restores (editor in the file's namespace).")
@friendly_errors
@lifecycle_errors
def restore_command(media_id: str, user: str) -> None:
    """Undo a soft delete."""
    from media_pipeline.lifecycle import restore
    from media_pipeline.pipeline import open_catalog

    settings = Settings.from_env()
    with open_catalog(settings) as catalog:
        restore(catalog, settings, media_id, user)
    console.print(Text(f"restored {media_id}"))


# -- purge ---------------------------------------------------------------------------------------


@main.command("unpurge")
@click.argument("media_id")
@click.option("--user", required=True, help="Who brings it back (admin in its namespace).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@friendly_errors
@lifecycle_errors
def unpurge_command(media_id: str, user: str, as_json: bool) -> None:
    """Undo a purge on a versioned bucket: remove the delete marker while the version exists."""
    from media_pipeline.lifecycle import unpurge
    from media_pipeline.storage import make_client

    settings = Settings.from_env()
    require_s3(settings)
    done = unpurge(settings, make_client(settings), media_id, user)
    if as_json:
        click.echo(json.dumps({"media_id": media_id, **done}, indent=2))
        return
    console.print(Text(f"unpurged {media_id}: {done['key']} is back (version "
                       f"{done['version_id']}, {len(done['removed_markers'])} delete marker(s) "
                       "removed)"))


@main.command("purge")
@click.option("--dry-run", is_flag=True, help="Show what would be purged; change nothing.")
@click.option("--days", type=click.IntRange(min=0), default=None,
              help="Retention in days (default: MEDIA_PIPELINE_RETENTION_DAYS).")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=None,
              help="Files per S3 DeleteObjects (default: MEDIA_PIPELINE_PURGE_BATCH_SIZE).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly_errors
@lifecycle_errors
def purge_command(dry_run: bool, days: int | None, batch_size: int | None,
                  as_json: bool) -> None:
    """Delete from S3 the files soft-deleted longer than the retention that nothing uses."""
    from media_pipeline.lifecycle import purge
    from media_pipeline.storage import make_client

    settings = Settings.from_env()
    require_s3(settings)
    sources = enabled_source_names(settings)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        console=console, transient=True, disable=as_json)
    task: list[Any] = []

    def on_step(step: str, info: dict[str, Any]) -> None:
        if step == "marked" and info["batches"]:
            task.append(progress.add_task("purging batches", total=info["batches"]))
        elif step == "catalog_updated" and task:
            progress.advance(task[0])

    with progress:
        report = purge(settings, make_client(settings), enabled_sources=sources,
                       dry_run=dry_run, retention_days=days, batch_size=batch_size,
                       on_step=on_step)
    if as_json:
        click.echo(json.dumps(_report_dict(report), default=str, indent=2))
    else:
        _print_report(report)
    if report.refused:
        fail(f"purge refused: {report.refused_reason}")
    if report.errors:
        fail(f"{len(report.errors)} files could not be purged: {report.errors[0]}")


def _report_dict(report: PurgeReport) -> dict[str, Any]:
    out = dict(report.__dict__)
    out["batches"] = [b.__dict__ for b in report.batches]
    out["refused"] = report.refused
    return out


def _print_report(report: PurgeReport) -> None:
    if report.dry_run and report.files:
        table = Table("key", "size", "deleted at", title="would be purged")
        for f in report.files:
            table.add_row(Text(f["key"]), str(f["size"]), str(f["deleted_at"]))
        console.print(table)
    summary = Table("", "", show_header=False)
    rows = [("dry run" if report.dry_run else "purge id", "yes" if report.dry_run
             else str(report.purge_id)),
            ("content sources checked", _sources_text(report)),
            ("candidates", f"{report.candidates} ({report.candidate_bytes} bytes)")]
    if not report.dry_run:
        rows += [("purged", str(report.purged)), ("bytes freed", str(report.bytes_freed)),
                 ("skipped at re-check", str(len(report.skipped))),
                 ("cancelled at re-check (restored)", str(len(report.cancelled))),
                 ("errors", str(len(report.errors)))]
    if report.settled:
        rows.append(("settled from an interrupted run", str(report.settled)))
    if report.unsettled:
        rows.append(("interrupted deletes to settle", str(report.unsettled)))
    for name, value in rows:
        summary.add_row(name, Text(value))
    console.print(summary)
    for kept in report.kept[:20]:
        where = f"{kept['content_type']} {kept['content_id']} ({kept['source']})"
        snippet = f': "{kept["snippet"]}"' if kept.get("snippet") else ""
        console.print(Text(f"kept {kept['key']}: {kept['form']} in {where}{snippet}"))
    for skipped in report.skipped[:20]:
        console.print(f"skipped {escape(skipped['key'])}: {escape(str(skipped['reason']))}",
                      highlight=False)
    for cancelled in report.cancelled[:20]:
        console.print(f"cancelled {escape(cancelled['key'])}: "
                      f"{escape(str(cancelled['reason']))}", highlight=False)


# -- sources -------------------------------------------------------------------------------------


@main.group("sources")
def sources_group() -> None:
    """The content sources a purge relies on: configured today, or ever scanned."""


@sources_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
@lifecycle_errors
def sources_list(as_json: bool) -> None:
    """Configured and remembered sources, their latest scan and whether purges wait for them."""
    from media_pipeline.catalog import Catalog

    settings = Settings.from_env()
    configured = enabled_source_names(settings)
    with Catalog.open_snapshot(settings.snapshot_path, settings.catalog_path) as catalog:
        remembered = {r["source"]: r for r in catalog.remembered_sources(include_retired=True)}
        names = sorted(set(configured) | set(remembered))
        status = {s["source"]: s for s in catalog.source_scan_status(names)}
    rows = []
    for name in names:
        memory = remembered.get(name, {})
        rows.append({
            "source": name, "configured": name in configured,
            "remembered": name in remembered, "kind": memory.get("kind"),
            "retired_at": memory.get("retired_at"), "retired_by": memory.get("retired_by"),
            "required": memory.get("retired_at") is None or name in configured,
            "state": status[name]["state"], "stale": status[name]["stale"],
            "reason": status[name]["reason"],
            "last_trusted_scan": status[name]["last_ok_started"],
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("source", "configured", "required by purge", "latest scan",
                  "last trusted scan", "retired", "stale because")
    for r in rows:
        table.add_row(Text(r["source"]), "yes" if r["configured"] else "no",
                      "yes" if r["required"] else "no", str(r["state"] or "never"),
                      str(r["last_trusted_scan"] or ""),
                      Text(f"{r['retired_at']} by {r['retired_by']}" if r["retired_at"] else ""),
                      Text(r["reason"] or ""))
    console.print(table)


@sources_group.command("retire")
@click.argument("name")
@click.option("--user", required=True, help="Who retires it (a global admin).")
@click.option("--reason", default=None, help="Why (kept in the audit log).")
@friendly_errors
@lifecycle_errors
def sources_retire(name: str, user: str, reason: str | None) -> None:
    """Forget a source whose content is gone: its scanned references are removed and purges
    stop waiting for it. Refused while it is configured and enabled."""
    from media_pipeline.pipeline import open_catalog

    settings = Settings.from_env()
    if user not in settings.admins:
        fail(f"{user} may not retire a content source: only admins (MEDIA_PIPELINE_ADMINS) may")
    if name in enabled_source_names(settings):
        fail(f"content source {name} is configured and enabled in {settings.content_sources}; "
             "remove it (or set enabled: false) before retiring it")
    with open_catalog(settings) as catalog:
        try:
            done = catalog.retire_source(name, user, reason)
        except ValueError as exc:
            fail(str(exc))
    console.print(Text(f"retired {name}: {done['references_removed']} scanned references "
                       "removed; purges no longer wait for it"))


def _sources_text(report: PurgeReport) -> str:
    if not report.sources:
        return "none: API references only"
    by_name = {s["source"]: s for s in report.source_status}
    parts = []
    for name in report.sources:
        origin = "configured" if name in report.configured else "remembered"
        status = by_name.get(name, {})
        state = status.get("reason") or f"last trusted scan {status.get('last_ok_started')}"
        parts.append(f"{name} ({origin}): {state}")
    return "; ".join(parts)


def _register_on_script_entry() -> None:
    """``python -m media_pipeline.cli`` runs cli.py as ``__main__``, a second copy of the group
    beside the imported ``media_pipeline.cli``: give that copy these commands too."""
    import sys

    script = sys.modules.get("__main__")
    spec = getattr(script, "__spec__", None)
    group = getattr(script, "main", None)
    if (spec is not None and spec.name == "media_pipeline.cli" and isinstance(group, click.Group)
            and group is not main):
        for name in ("refs", "delete", "restore", "purge", "sources", "unpurge"):
            group.commands.setdefault(name, main.commands[name])


_register_on_script_entry()


# -- scan ----------------------------------------------------------------------------------------


@main.command("scan")
@click.argument("sources", nargs=-1)
@click.option("--accept-drop", is_flag=True,
              help="Apply this scan of SOURCE even though it finds far less than the last "
                   "trusted one (admins; audited).")
@click.option("--user", default=None, help="Who accepts the drop (with --accept-drop).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@friendly_errors
def scan(sources: tuple[str, ...], accept_drop: bool, user: str | None, as_json: bool) -> None:
    """Rebuild the reference index from the content sources (all enabled ones, or SOURCES).

    Each source is committed on its own, only when read to the end; a source that fails keeps
    its previous references, is marked stale (purges refuse) and makes the exit status 1. A scan
    that returns nothing, or drops by more than MEDIA_PIPELINE_SCAN_MAX_DROP (or the source's
    max_drop) from its baseline (the highest of recent trusted scans), is suspect: not applied,
    the source stale, exit 1, until an admin rescans it with --accept-drop --user.
    """
    from media_pipeline.references.index import scan_sources, select_sources

    settings = Settings.from_env()
    if settings.content_sources is None:
        fail("no content sources configured: set MEDIA_PIPELINE_SOURCES to a sources YAML "
             "file (see docs/content-sources.md)")
    if accept_drop:
        if len(sources) != 1 or not user:
            fail("--accept-drop needs exactly one SOURCE and --user")
        if user not in settings.admins:
            fail(f"{user} may not accept a scan drop: only admins (MEDIA_PIPELINE_ADMINS) may")
    elif user:
        fail("--user is only used with --accept-drop")
    names = list(sources) or None
    selected = select_sources(settings, names)
    if not selected:
        fail(f"no enabled content source in {settings.content_sources}")
    with Progress(TextColumn("{task.description}"), TextColumn("{task.fields[docs]} documents"),
                  TextColumn("{task.fields[mb]:.1f} MB"), console=console,
                  disable=as_json, transient=True) as progress:
        tasks = {s.name: progress.add_task(s.name, docs=0, mb=0.0) for s in selected}

        def on_progress(name: str, documents: int, size: int) -> None:
            progress.update(tasks[name], docs=documents, mb=size / 1e6)

        outcomes = scan_sources(settings, [s.name for s in selected], progress=on_progress,
                                accepted_by=user if accept_drop else None)
    if as_json:
        click.echo(json.dumps([o.__dict__ for o in outcomes], indent=2, default=str))
    else:
        colour = {"trusted": "green", "accepted": "yellow", "suspect": "red", "failed": "red"}
        table = Table("source", "state", "documents", "MB", "references", "added", "removed",
                      "read as text", "error / drift")
        for o in outcomes:
            table.add_row(Text(o.source), f"[{colour.get(o.state, 'red')}]{o.state}",
                          str(o.documents), f"{o.bytes / 1e6:.1f}", str(o.refs), str(o.added),
                          str(o.removed), str(o.text_fallbacks),
                          Text(o.error or "; ".join(o.reasons)))
        console.print(table)
        for o in outcomes:
            if o.state == "accepted":
                console.print(Text(f"{o.source}: drop accepted by {user} and applied "
                                   f"({'; '.join(o.reasons)}); recorded in the audit log"))
    problems = []
    for o in outcomes:
        if not o.ok:
            problems.append(f"content source {o.source} failed: previous references kept, "
                            f"purges blocked until it scans cleanly ({o.error})")
        elif o.state == "suspect":
            problems.append(
                f"content source {o.source} suspect ({'; '.join(o.reasons)}): previous "
                "references kept, purges blocked; if the drop is real, accept it with "
                f"media-pipeline scan {o.source} --accept-drop --user ADMIN")
    if problems:
        fail(" | ".join(problems))
