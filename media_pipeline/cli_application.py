"""`media-pipeline` commands for applications and people: uploads, URLs, tags, collections,
namespaces and members. They call :class:`media_pipeline.library.MediaLibrary`, so the same
roles, validation and audit rules apply as for a web application.

Registered on :data:`media_pipeline.cli.main` by importing this module (the last line of cli.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from media_pipeline.access import PermissionDenied
from media_pipeline.cli import console, err_console, fail, friendly_errors, main, require_s3
from media_pipeline.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

VISIBILITY = click.Choice(["public", "internal", "private"])


def app_errors(func: F) -> F:
    """friendly_errors plus the library's own refusals (permission, unknown id): one line,
    exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (PermissionDenied, LookupError) as exc:
            text = str(exc).strip().splitlines()
            fail(text[0] if text else type(exc).__name__)

    return friendly_errors(wrapper)  # type: ignore[return-value]


def _library(*, needs_s3: bool = False) -> Any:
    from media_pipeline.library import MediaLibrary

    settings = Settings.from_env()
    if needs_s3:
        require_s3(settings)
    return MediaLibrary(settings)


def _say(text: str | Text) -> None:
    """One line of output, never wrapped (scripts grep it)."""
    console.print(text if isinstance(text, Text) else Text(text), soft_wrap=True)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, default=str, indent=2))


def _rows(columns: list[str], rows: list[dict[str, Any]]) -> None:
    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text("" if row.get(c) is None else str(row.get(c))) for c in columns))
    console.print(table)


def _media_json(media: Any) -> dict[str, Any]:
    return {k: v for k, v in media.to_dict().items() if k != "phash"}


# -- upload --------------------------------------------------------------------------------------


def _files(paths: tuple[Path, ...]) -> Iterator[Path]:
    """The files given, folders expanded recursively (sorted; hidden files skipped)."""
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                rel = found.relative_to(path)
                if found.is_file() and not any(p.startswith(".") for p in rel.parts):
                    yield found
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")


@main.command("upload")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--namespace", "-n", required=True, help="The namespace to upload into.")
@click.option("--user", "-u", required=True, help="Who is uploading (needs editor).")
@click.option("--visibility", type=VISIBILITY, default=None,
              help="Default: the namespace's default visibility.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@app_errors
def upload(paths: tuple[Path, ...], namespace: str, user: str, visibility: str | None,
           as_json: bool) -> None:
    """Upload files (or every file in folders), validated by content. Exit 1 if any is refused
    (invalid content) or failed (e.g. a public upload into a bucket without ACLs)."""
    from media_pipeline.library import ValidationFailed
    from media_pipeline.storage.media_storage import StorageError

    files = list(_files(paths))
    library = _library(needs_s3=True)
    results: list[dict[str, Any]] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err_console, disable=as_json, transient=True) as progress:
        task = progress.add_task("uploading", total=len(files))
        for path in files:
            progress.update(task, description=f"uploading {path.name}")
            try:
                media = library.upload(namespace, path, path.name, user, visibility)
            except ValidationFailed as exc:
                results.append({"path": str(path), "result": "refused", "reason": exc.reason})
            except (ValueError, StorageError) as exc:  # this file only; a refused role stops all
                results.append({"path": str(path), "result": "failed",
                                "reason": str(exc).splitlines()[0] if str(exc) else repr(exc)})
            else:
                results.append({
                    "path": str(path),
                    "result": "deduplicated" if media.deduplicated else "stored",
                    "media_id": media.media_id, "key": media.key,
                    "content_type": media.content_type, "size": media.file_size,
                    "visibility": media.visibility})
            progress.advance(task)
    refused = [r for r in results if r["result"] in ("refused", "failed")]
    if as_json:
        _echo_json(results)
    else:
        for r in results:
            if r["result"] in ("refused", "failed"):
                _say(Text.assemble((f"{r['result']} ", "red"), f"{r['path']}: {r['reason']}"))
            else:
                _say(Text.assemble(
                    (f"{r['result']} ", "green"),
                    f"{r['path']} -> {r['media_id']} {r['key']} ({r['content_type']}, "
                    f"{r['size']} bytes, {r['visibility']})"))
    if refused:
        fail(f"{len(refused)} of {len(results)} files refused or failed")


@main.command("presign-upload")
@click.option("--namespace", "-n", required=True)
@click.option("--filename", required=True)
@click.option("--content-type", required=True)
@click.option("--size", required=True, type=int,
              help="The file's size in bytes (a POST admits up to it, a PUT exactly it).")
@click.option("--user", "-u", required=True, help="Who will upload (needs editor).")
@click.option("--expires", default=3600, show_default=True, help="Seconds.")
@click.option("--method", type=click.Choice(["post", "put"], case_sensitive=False),
              default="post", show_default=True,
              help="post: a browser form (policy pins key, type and size); put: one URL.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@app_errors
def presign_upload(namespace: str, filename: str, content_type: str, size: int, user: str,
                   expires: int, method: str, as_json: bool) -> None:
    """A presigned upload (form POST, or PUT) straight to S3 for one file."""
    result = _library().presign_upload(namespace, filename, content_type, size, user,
                                       expires=expires, method=method)
    if as_json or result["method"] == "POST":
        _echo_json(result)  # a form needs its fields: JSON is the only useful output
    else:
        click.echo(result["url"])
        # The URL alone on stdout (for scripts); how to use it on stderr.
        err_console.print(Text(f"PUT {result['key']} with headers {result['headers']} "
                               f"within {expires}s"), style="dim", soft_wrap=True)


@main.command("url")
@click.argument("media_id")
@click.option("--user", "-u", default=None, help="Who asks (omit for public files).")
@click.option("--expires", default=3600, show_default=True, help="Seconds (signed URLs).")
@click.option("--download", is_flag=True, help="A signed URL that downloads under the "
              "original name.")
@app_errors
def url(media_id: str, user: str | None, expires: int, download: bool) -> None:
    """A public URL for a public file, else a signed one for those who may see it."""
    click.echo(_library().url(media_id, user, expires=expires, download=download))


@main.command("visibility")
@click.argument("media_id")
@click.argument("visibility", type=VISIBILITY)
@click.option("--user", "-u", required=True)
@app_errors
def set_visibility(media_id: str, visibility: str, user: str) -> None:
    """Make a file public, internal or private (catalog and object ACL)."""
    media = _library(needs_s3=True).set_visibility(media_id, visibility, user)
    _say(f"{media.media_id} is now {media.visibility}")


# -- tags ----------------------------------------------------------------------------------------


@main.group("tags")
def tags() -> None:
    """Tags of a file: manual ones (namespaced) and AI ones with their confidence."""


def _print_tags(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _echo_json(rows)
    else:
        _rows(["tag", "source", "confidence", "created_by"], rows)


@tags.command("add")
@click.argument("media_id")
@click.argument("tag")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def tags_add(media_id: str, tag: str, user: str, as_json: bool) -> None:
    _print_tags(_library().add_tag(media_id, tag, user), as_json)


@tags.command("remove")
@click.argument("media_id")
@click.argument("tag")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def tags_remove(media_id: str, tag: str, user: str, as_json: bool) -> None:
    _print_tags(_library().remove_tag(media_id, tag, user), as_json)


@tags.command("list")
@click.argument("media_id")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def tags_list(media_id: str, user: str, as_json: bool) -> None:
    _print_tags(_library().tags(media_id, user), as_json)


# -- collections ---------------------------------------------------------------------------------


@main.group("collections")
def collections() -> None:
    """Ordered collections of files within a namespace."""


def _print_collection(coll: Any, as_json: bool) -> None:
    if as_json:
        out = asdict(coll)
        out["items"] = [{"position": i.position, "added_by": i.added_by,
                         "media": _media_json(i.media)} for i in coll.items]
        _echo_json(out)
        return
    _say(f"{coll.name} ({coll.collection_id}) in {coll.namespace}, "
                       f"{coll.visibility}, owner {coll.owner}: {len(coll.items)} items")
    _rows(["position", "media_id", "key", "content_type"],
          [{"position": i.position, "media_id": i.media.media_id, "key": i.media.key,
            "content_type": i.media.content_type} for i in coll.items])


@collections.command("create")
@click.argument("namespace")
@click.argument("name")
@click.option("--user", "-u", required=True)
@click.option("--visibility", type=VISIBILITY, default="private", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def collections_create(namespace: str, name: str, user: str, visibility: str,
                       as_json: bool) -> None:
    coll = _library().create_collection(namespace, name, user, visibility)
    if as_json:
        _echo_json(asdict(coll))
    else:
        click.echo(coll.collection_id)


@collections.command("add")
@click.argument("collection_id")
@click.argument("media_id")
@click.option("--user", "-u", required=True)
@click.option("--position", type=int, default=None, help="0-based; default: at the end.")
@click.option("--json", "as_json", is_flag=True)
@app_errors
def collections_add(collection_id: str, media_id: str, user: str, position: int | None,
                    as_json: bool) -> None:
    _print_collection(_library().add_to_collection(collection_id, media_id, user, position),
                      as_json)


@collections.command("remove")
@click.argument("collection_id")
@click.argument("media_id")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def collections_remove(collection_id: str, media_id: str, user: str, as_json: bool) -> None:
    _print_collection(_library().remove_from_collection(collection_id, media_id, user), as_json)


@collections.command("reorder")
@click.argument("collection_id")
@click.argument("media_ids", nargs=-1, required=True)
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def collections_reorder(collection_id: str, media_ids: tuple[str, ...], user: str,
                        as_json: bool) -> None:
    """Give every item's media id once, in the new order."""
    _print_collection(_library().reorder(collection_id, list(media_ids), user), as_json)


@collections.command("show")
@click.argument("collection_id")
@click.option("--user", "-u", default=None, help="Omit for a public collection.")
@click.option("--json", "as_json", is_flag=True)
@app_errors
def collections_show(collection_id: str, user: str | None, as_json: bool) -> None:
    _print_collection(_library().collection(collection_id, user), as_json)


@collections.command("list")
@click.argument("namespace")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def collections_list(namespace: str, user: str, as_json: bool) -> None:
    rows = _library().collections(namespace, user)
    if as_json:
        _echo_json(rows)
    else:
        _rows(["collection_id", "name", "visibility", "owner", "items"], rows)


# -- namespaces and members ----------------------------------------------------------------------


@main.group("namespaces")
def namespaces() -> None:
    """Namespaces: the first segment of an object's key, each with its members."""


@namespaces.command("create")
@click.argument("name")
@click.option("--user", "-u", required=True, help="Becomes the namespace's admin.")
@click.option("--default-visibility", type=VISIBILITY, default="private", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def namespaces_create(name: str, user: str, default_visibility: str, as_json: bool) -> None:
    info = _library().create_namespace(name, user, default_visibility=default_visibility)
    if as_json:
        _echo_json(info)
    else:
        _say(f"created namespace {name}; {user} is its admin")


@namespaces.command("list")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def namespaces_list(user: str, as_json: bool) -> None:
    rows = _library().namespaces(user)
    if as_json:
        _echo_json(rows)
    else:
        _rows(["namespace", "role", "default_visibility"], rows)


@main.group("members")
def members() -> None:
    """Who belongs to a namespace, as viewer, editor or admin."""


@members.command("add")
@click.argument("namespace")
@click.argument("user_id")
@click.argument("role", type=click.Choice(["viewer", "editor", "admin"]))
@click.option("--user", "-u", required=True, help="Who is adding (needs admin).")
@app_errors
def members_add(namespace: str, user_id: str, role: str, user: str) -> None:
    """Add USER_ID to NAMESPACE as ROLE (or change their role)."""
    _library().add_member(namespace, user_id, role, user)
    _say(f"{user_id} is {role} in {namespace}")


@members.command("remove")
@click.argument("namespace")
@click.argument("user_id")
@click.option("--user", "-u", required=True, help="Who is removing (needs admin).")
@app_errors
def members_remove(namespace: str, user_id: str, user: str) -> None:
    _library().remove_member(namespace, user_id, user)
    _say(f"{user_id} removed from {namespace}")


@members.command("list")
@click.argument("namespace")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@app_errors
def members_list(namespace: str, user: str, as_json: bool) -> None:
    rows = _library().members(namespace, user)
    if as_json:
        _echo_json(rows)
    else:
        _rows(["user_id", "role", "added_by", "added_at"], rows)


def _register_on_script_entry() -> None:
    """``python -m media_pipeline.cli`` runs cli.py as ``__main__``, a second copy of the group
    next to the imported ``media_pipeline.cli``: give that copy these commands too."""
    script = sys.modules.get("__main__")
    spec = getattr(script, "__spec__", None)
    group = getattr(script, "main", None)
    if (spec is not None and spec.name == "media_pipeline.cli" and isinstance(group, click.Group)
            and group is not main):
        for name, command in main.commands.items():
            group.commands.setdefault(name, command)


_register_on_script_entry()
