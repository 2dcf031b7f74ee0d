"""`refs`, `delete`, `restore`, `unpurge` and `purge`: where files are used, and their
lifecycle.

``refs show`` reads the live catalog read-only and never waits for a running pipeline.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from media_pipeline.access import PermissionDenied
from media_pipeline.cli.output import console, fail, friendly_errors, library, require_s3
from media_pipeline.errors import UnknownMedia
from media_pipeline.lifecycle import PurgeReport, enabled_source_names
from media_pipeline.settings import MAX_PURGE_DAYS, Settings


def _describe(refs: dict[str, list[str]]) -> str:
    return "; ".join(f"{content_type} {', '.join(ids)}" for content_type, ids in refs.items())


# -- refs ----------------------------------------------------------------------------------------


@click.group("refs")
def refs() -> None:
    """Where files are used: add, remove and show references."""


@refs.command("add")
@click.argument("media_id")
@click.argument("content_type")
@click.argument("content_id")
@click.option("--user", required=True, help="Who adds it (editor in the file's namespace).")
@friendly_errors
def refs_add(media_id: str, content_type: str, content_id: str, user: str) -> None:
    """Record that CONTENT_TYPE CONTENT_ID (e.g. webpage 123) uses the file."""
    added = library().add_reference(media_id, content_type, content_id, user)
    console.print(Text(f"{'added' if added else 'already recorded'}: {content_type} "
                       f"{content_id} uses {media_id}"))


@refs.command("remove")
@click.argument("media_id")
@click.argument("content_type")
@click.argument("content_id")
@click.option("--user", required=True, help="Who removes it (editor in the file's namespace).")
@friendly_errors
def refs_remove(media_id: str, content_type: str, content_id: str, user: str) -> None:
    """Remove a reference added through the API (scanned ones follow the content)."""
    lib = library()
    removed = lib.remove_reference(media_id, content_type, content_id, user)
    try:  # where else the file is used is shown only to those who may see it
        left = lib.get_references(media_id, user)
    except (PermissionDenied, UnknownMedia):
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
def refs_show(media_id: str, user: str, as_json: bool) -> None:
    """The file's references in the seed's shape {"webpage": ["123"], ...} and their count."""
    details = library().reference_details(media_id, user)  # checks who asks
    found, rows, count = details.referenced_in, details.rows, details.reference_count
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


@click.command("delete")
@click.argument("media_id")
@click.option("--user", required=True, help="Who deletes (editor; admin with --force).")
@click.option("--force", is_flag=True, help="Delete even while referenced (admins only).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@friendly_errors
def delete_command(media_id: str, user: str, force: bool, as_json: bool) -> None:
    """Soft-delete a file (it stays in S3 until a purge); refused while it is referenced."""
    outcome = library().delete_outcome(media_id, user, force=force)
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


@click.command("restore")
@click.argument("media_id")
@click.option("--user", required=True, help="Who restores (editor in the file's namespace).")
@friendly_errors
def restore_command(media_id: str, user: str) -> None:
    """Undo a soft delete."""
    library().restore(media_id, user)
    console.print(Text(f"restored {media_id}"))


# -- purge ---------------------------------------------------------------------------------------


@click.command("unpurge")
@click.argument("media_id")
@click.option("--user", required=True, help="Who brings it back (admin in its namespace).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@friendly_errors
def unpurge_command(media_id: str, user: str, as_json: bool) -> None:
    """Undo a purge on a versioned bucket: remove the delete marker while the version exists."""
    done = library(needs_s3=True).unpurge(media_id, user)
    if as_json:
        click.echo(json.dumps({"media_id": media_id, **done}, indent=2))
        return
    console.print(Text(f"unpurged {media_id}: {done['key']} is back (version "
                       f"{done['version_id']}, {len(done['removed_markers'])} delete marker(s) "
                       "removed)"))


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Show what would be purged; change nothing.")
@click.option("--days", type=click.IntRange(min=0, max=MAX_PURGE_DAYS), default=None,
              help="Retention in days (default: MEDIA_PIPELINE_RETENTION_DAYS).")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=None,
              help="Files per S3 DeleteObjects (default: MEDIA_PIPELINE_PURGE_BATCH_SIZE).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly_errors
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
    if report.too_recent:
        rows.append(("deleted moments ago, waiting", str(report.too_recent)))
    for name, value in rows:
        summary.add_row(name, Text(value))
    console.print(summary)
    if report.too_recent:
        console.print(f"{report.too_recent} file(s) deleted less than "
                      "MEDIA_PIPELINE_PURGE_MIN_AGE_SECONDS ago: a later purge takes them",
                      highlight=False)
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


def _sources_text(report: PurgeReport) -> str:
    if not report.sources:
        return "none: API references only"
    by_name = {s["source"]: s for s in report.source_status}
    parts = []
    for name in report.sources:
        origin = ("configured" if name in report.configured
                  else "configured, disabled" if name in report.disabled else "remembered")
        status = by_name.get(name, {})
        state = status.get("reason") or f"last trusted scan {status.get('last_ok_started')}"
        parts.append(f"{name} ({origin}): {state}")
    return "; ".join(parts)


COMMANDS = (refs, delete_command, restore_command, unpurge_command, purge_command)
