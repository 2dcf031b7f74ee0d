"""Commands for applications and people: uploads, URLs, tags, collections, namespaces and
members. They call :class:`media_pipeline.library.MediaLibrary`, so the same roles, validation
and audit rules apply as for a web application."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from media_pipeline.cli.output import (
    dict_table,
    echo_json,
    err_console,
    fail,
    friendly_errors,
    library,
    say,
)
from media_pipeline.errors import InvalidInput, Refused, StorageError, ValidationFailed
from media_pipeline.kinds import Visibility

VISIBILITY = click.Choice([v.value for v in Visibility])


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


@click.command("upload")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--namespace", "-n", required=True, help="The namespace to upload into.")
@click.option("--user", "-u", required=True, help="Who is uploading (needs editor).")
@click.option("--visibility", type=VISIBILITY, default=None,
              help="Default: the namespace's default visibility.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@friendly_errors
def upload(paths: tuple[Path, ...], namespace: str, user: str, visibility: str | None,
           as_json: bool) -> None:
    """Upload files (or every file in folders), validated by content. Exit 1 if any is refused
    (invalid content) or failed (e.g. a public upload into a bucket without ACLs)."""
    files = list(_files(paths))
    lib = library(needs_s3=True)
    results: list[dict[str, Any]] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err_console, disable=as_json, transient=True) as progress:
        task = progress.add_task("uploading", total=len(files))
        for path in files:
            progress.update(task, description=f"uploading {path.name}")
            try:
                media = lib.upload(namespace, path, path.name, user, visibility)
            except ValidationFailed as exc:
                results.append({"path": str(path), "result": "refused", "reason": exc.reason})
            except (InvalidInput, Refused, StorageError) as exc:  # this file; a refusal stops all
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
        echo_json(results)
    else:
        for r in results:
            if r["result"] in ("refused", "failed"):
                say(Text.assemble((f"{r['result']} ", "red"), f"{r['path']}: {r['reason']}"))
            else:
                say(Text.assemble(
                    (f"{r['result']} ", "green"),
                    f"{r['path']} -> {r['media_id']} {r['key']} ({r['content_type']}, "
                    f"{r['size']} bytes, {r['visibility']})"))
    if refused:
        fail(f"{len(refused)} of {len(results)} files refused or failed")


@click.command("presign-upload")
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
@friendly_errors
def presign_upload(namespace: str, filename: str, content_type: str, size: int, user: str,
                   expires: int, method: str, as_json: bool) -> None:
    """A presigned upload (form POST, or PUT) straight to S3 for one file."""
    result = library().presign_upload(namespace, filename, content_type, size, user,
                                       expires=expires, method=method)
    if as_json or result["method"] == "POST":
        echo_json(result)  # a form needs its fields: JSON is the only useful output
    else:
        click.echo(result["url"])
        # The URL alone on stdout (for scripts); how to use it on stderr.
        err_console.print(Text(f"PUT {result['key']} with headers {result['headers']} "
                               f"within {expires}s"), style="dim", soft_wrap=True)


@click.command("url")
@click.argument("media_id")
@click.option("--user", "-u", default=None, help="Who asks (omit for public files).")
@click.option("--expires", default=3600, show_default=True, help="Seconds (signed URLs).")
@click.option("--download", is_flag=True, help="A signed URL that downloads under the "
              "original name.")
@friendly_errors
def url(media_id: str, user: str | None, expires: int, download: bool) -> None:
    """A public URL for a public file, else a signed one for those who may see it."""
    click.echo(library().url(media_id, user, expires=expires, download=download))


@click.command("visibility")
@click.argument("media_id")
@click.argument("visibility", type=VISIBILITY)
@click.option("--user", "-u", required=True)
@friendly_errors
def set_visibility(media_id: str, visibility: str, user: str) -> None:
    """Make a file public, internal or private (catalog and object ACL)."""
    media = library(needs_s3=True).set_visibility(media_id, visibility, user)
    say(f"{media.media_id} is now {media.visibility}")


# -- tags ----------------------------------------------------------------------------------------


@click.group("tags")
def tags() -> None:
    """Tags of a file: manual ones (namespaced) and AI ones with their confidence."""


def _print_tags(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        echo_json(rows)
    else:
        dict_table(["tag", "source", "confidence", "created_by"], rows)


@tags.command("add")
@click.argument("media_id")
@click.argument("tag")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def tags_add(media_id: str, tag: str, user: str, as_json: bool) -> None:
    _print_tags(library().add_tag(media_id, tag, user), as_json)


@tags.command("remove")
@click.argument("media_id")
@click.argument("tag")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def tags_remove(media_id: str, tag: str, user: str, as_json: bool) -> None:
    _print_tags(library().remove_tag(media_id, tag, user), as_json)


@tags.command("list")
@click.argument("media_id")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def tags_list(media_id: str, user: str, as_json: bool) -> None:
    _print_tags(library().tags(media_id, user), as_json)


# -- collections ---------------------------------------------------------------------------------


@click.group("collections")
def collections() -> None:
    """Ordered collections of files within a namespace."""


def _print_collection(coll: Any, as_json: bool) -> None:
    if as_json:
        out = asdict(coll)
        out["items"] = [{"position": i.position, "added_by": i.added_by,
                         "media": _media_json(i.media)} for i in coll.items]
        echo_json(out)
        return
    say(f"{coll.name} ({coll.collection_id}) in {coll.namespace}, "
                       f"{coll.visibility}, owner {coll.owner}: {len(coll.items)} items")
    dict_table(["position", "media_id", "key", "content_type"],
          [{"position": i.position, "media_id": i.media.media_id, "key": i.media.key,
            "content_type": i.media.content_type} for i in coll.items])


@collections.command("create")
@click.argument("namespace")
@click.argument("name")
@click.option("--user", "-u", required=True)
@click.option("--visibility", type=VISIBILITY,
              default=Visibility.PRIVATE.value, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def collections_create(namespace: str, name: str, user: str, visibility: str,
                       as_json: bool) -> None:
    coll = library().create_collection(namespace, name, user, visibility)
    if as_json:
        echo_json(asdict(coll))
    else:
        click.echo(coll.collection_id)


@collections.command("add")
@click.argument("collection_id")
@click.argument("media_id")
@click.option("--user", "-u", required=True)
@click.option("--position", type=int, default=None, help="0-based; default: at the end.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def collections_add(collection_id: str, media_id: str, user: str, position: int | None,
                    as_json: bool) -> None:
    _print_collection(library().add_to_collection(collection_id, media_id, user, position),
                      as_json)


@collections.command("remove")
@click.argument("collection_id")
@click.argument("media_id")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def collections_remove(collection_id: str, media_id: str, user: str, as_json: bool) -> None:
    _print_collection(library().remove_from_collection(collection_id, media_id, user), as_json)


@collections.command("reorder")
@click.argument("collection_id")
@click.argument("media_ids", nargs=-1, required=True)
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def collections_reorder(collection_id: str, media_ids: tuple[str, ...], user: str,
                        as_json: bool) -> None:
    """Give every item's media id once, in the new order."""
    _print_collection(library().reorder(collection_id, list(media_ids), user), as_json)


@collections.command("show")
@click.argument("collection_id")
@click.option("--user", "-u", default=None, help="Omit for a public collection.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def collections_show(collection_id: str, user: str | None, as_json: bool) -> None:
    _print_collection(library().collection(collection_id, user), as_json)


@collections.command("list")
@click.argument("namespace")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def collections_list(namespace: str, user: str, as_json: bool) -> None:
    rows = library().collections(namespace, user)
    if as_json:
        echo_json(rows)
    else:
        dict_table(["collection_id", "name", "visibility", "owner", "items"], rows)


# -- namespaces and members ----------------------------------------------------------------------


@click.group("namespaces")
def namespaces() -> None:
    """Namespaces: the first segment of an object's key, each with its members."""


@namespaces.command("create")
@click.argument("name")
@click.option("--user", "-u", required=True, help="Becomes the namespace's admin.")
@click.option("--default-visibility", type=VISIBILITY,
              default=Visibility.PRIVATE.value, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def namespaces_create(name: str, user: str, default_visibility: str, as_json: bool) -> None:
    info = library().create_namespace(name, user, default_visibility=default_visibility)
    if as_json:
        echo_json(info)
    else:
        say(f"created namespace {name}; {user} is its admin")


@namespaces.command("list")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def namespaces_list(user: str, as_json: bool) -> None:
    rows = library().namespaces(user)
    if as_json:
        echo_json(rows)
    else:
        dict_table(["namespace", "role", "default_visibility"], rows)


@click.group("members")
def members() -> None:
    """Who belongs to a namespace, as viewer, editor or admin."""


@members.command("add")
@click.argument("namespace")
@click.argument("user_id")
@click.argument("role", type=click.Choice(["viewer", "editor", "admin"]))
@click.option("--user", "-u", required=True, help="Who is adding (needs admin).")
@friendly_errors
def members_add(namespace: str, user_id: str, role: str, user: str) -> None:
    """Add USER_ID to NAMESPACE as ROLE (or change their role)."""
    library().add_member(namespace, user_id, role, user)
    say(f"{user_id} is {role} in {namespace}")


@members.command("remove")
@click.argument("namespace")
@click.argument("user_id")
@click.option("--user", "-u", required=True, help="Who is removing (needs admin).")
@friendly_errors
def members_remove(namespace: str, user_id: str, user: str) -> None:
    library().remove_member(namespace, user_id, user)
    say(f"{user_id} removed from {namespace}")


@members.command("list")
@click.argument("namespace")
@click.option("--user", "-u", required=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def members_list(namespace: str, user: str, as_json: bool) -> None:
    rows = library().members(namespace, user)
    if as_json:
        echo_json(rows)
    else:
        dict_table(["user_id", "role", "added_by", "added_at"], rows)


COMMANDS = (upload, presign_upload, url, set_visibility, tags, collections, namespaces, members)
