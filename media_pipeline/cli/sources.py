"""`scan` and `sources`: the content sources a purge relies on, and their scans."""

from __future__ import annotations

import json

import click
from rich.progress import Progress, TextColumn
from rich.table import Table
from rich.text import Text

from media_pipeline.cli.output import console, fail, friendly_errors, library
from media_pipeline.kinds import ScanState
from media_pipeline.lifecycle import disabled_source_names, enabled_source_names
from media_pipeline.settings import Settings

# -- scan ----------------------------------------------------------------------------------------


@click.command("scan")
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
    elif user:
        fail("--user is only used with --accept-drop")
    if accept_drop:  # the library checks the admin first, then the source's name
        names = list(sources)
    else:
        selected = select_sources(settings, list(sources) or None)
        if not selected:
            fail(f"no enabled content source in {settings.content_sources}")
        names = [s.name for s in selected]
    with Progress(TextColumn("{task.description}"), TextColumn("{task.fields[docs]} documents"),
                  TextColumn("{task.fields[mb]:.1f} MB"), console=console,
                  disable=as_json, transient=True) as progress:
        tasks = {name: progress.add_task(name, docs=0, mb=0.0) for name in names}

        def on_progress(name: str, documents: int, size: int) -> None:
            progress.update(tasks[name], docs=documents, mb=size / 1e6)

        if accept_drop and user:  # a user's action: through the library (admin, audit)
            outcomes = [library().accept_scan_drop(names[0], user, progress=on_progress)]
        else:  # an operator's job, as in the nightly run: no user
            outcomes = scan_sources(settings, names, progress=on_progress)
    if as_json:
        click.echo(json.dumps([o.__dict__ for o in outcomes], indent=2, default=str))
    else:
        colour: dict[str, str] = {ScanState.TRUSTED: "green", ScanState.ACCEPTED: "yellow",
                                  ScanState.SUSPECT: "red", ScanState.FAILED: "red"}
        table = Table("source", "state", "documents", "MB", "references", "added", "removed",
                      "read as text", "error / drift")
        for o in outcomes:
            table.add_row(Text(o.source), f"[{colour.get(o.state, 'red')}]{o.state}",
                          str(o.documents), f"{o.bytes / 1e6:.1f}", str(o.refs), str(o.added),
                          str(o.removed), str(o.text_fallbacks),
                          Text(o.error or "; ".join(o.reasons)))
        console.print(table)
        for o in outcomes:
            if o.state == ScanState.ACCEPTED:
                console.print(Text(f"{o.source}: drop accepted by {user} and applied "
                                   f"({'; '.join(o.reasons)}); recorded in the audit log"))
    problems = []
    for o in outcomes:
        if not o.ok:
            problems.append(f"content source {o.source} failed: previous references kept, "
                            f"purges blocked until it scans cleanly ({o.error})")
        elif o.state == ScanState.SUSPECT:
            problems.append(
                f"content source {o.source} suspect ({'; '.join(o.reasons)}): previous "
                "references kept, purges blocked; if the drop is real, accept it with "
                f"media-pipeline scan {o.source} --accept-drop --user ADMIN")
    if problems:
        fail(" | ".join(problems))


# -- sources -------------------------------------------------------------------------------------


@click.group("sources")
def sources_group() -> None:
    """The content sources a purge relies on: configured today, or ever scanned."""


@sources_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def sources_list(as_json: bool) -> None:
    """Configured and remembered sources, their latest scan and whether purges wait for them."""
    from media_pipeline.catalog import Catalog

    settings = Settings.from_env()
    configured = enabled_source_names(settings)
    disabled = disabled_source_names(settings)
    with Catalog.open(settings.catalog_location, read_only=True) as catalog:
        remembered = {r["source"]: r
                      for r in catalog.references.remembered_sources(include_retired=True)}
        names = sorted(set(configured) | set(disabled) | set(remembered))
        status = {s["source"]: s for s in catalog.references.source_scan_status(names)}
    rows = []
    for name in names:
        memory = remembered.get(name, {})
        rows.append({
            "source": name, "configured": name in configured or name in disabled,
            "disabled": name in disabled,
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
        table.add_row(Text(r["source"]),
                      "disabled" if r["disabled"] else "yes" if r["configured"] else "no",
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
def sources_retire(name: str, user: str, reason: str | None) -> None:
    """Forget a source whose content is gone: its scanned references are removed and purges
    stop waiting for it. Refused while it is configured and enabled."""
    done = library().retire_source(name, user, reason)
    console.print(Text(f"retired {name}: {done['references_removed']} scanned references "
                       "removed; purges no longer wait for it"))


COMMANDS = (scan, sources_group)
