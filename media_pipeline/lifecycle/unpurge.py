"""Undo a purge while S3 still holds the object's last version (versioned buckets, ``marker``
purges): the delete markers above it are removed and the file is active again.

S3 goes first: if the catalog step then fails, the next inventory finds the object again and a
rerun says the file is not purged. Refused, changing nothing, when the bucket is not versioned,
the purge deleted every version, something was uploaded at the key since, or the hidden version
is not the one the purge took (expired by a lifecycle rule, say).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from media_pipeline.access import Role, require_file_role
from media_pipeline.catalog import Catalog
from media_pipeline.errors import LifecycleError, UnknownMedia
from media_pipeline.kinds import MediaStatus, PurgeVersions
from media_pipeline.lifecycle.actions import canonical_id
from media_pipeline.lifecycle.purge import _etag, _purge_lock
from media_pipeline.settings import Settings


def unpurge(settings: Settings, client: Any, media_id: str, user: str) -> dict[str, Any]:
    """Bring a purged file back (admins of its namespace); returns what was done."""
    media_id = canonical_id(media_id)  # one spelling: a hidden file's refusal is an unknown one's
    with _purge_lock(settings):
        with Catalog.open(settings.catalog_location) as catalog:
            state = catalog.lifecycle.media_state(media_id)
            if state is None:
                raise UnknownMedia.of(media_id)
            require_file_role(catalog, settings, str(state["media_id"]), state["namespace"],
                              state["visibility"], state["owner"], user, Role.ADMIN,
                              "unpurge files")
            if state["status"] != MediaStatus.PURGED:
                raise LifecycleError(f"media file {media_id} is not purged ({state['status']})")
            mark = catalog.lifecycle.last_purge(str(state["media_id"]))
        if mark is None:
            raise LifecycleError(f"no purge record for media file {media_id}")
        if mark["versions"] == PurgeVersions.ALL:
            raise LifecycleError("the purge deleted every version "
                                 "(MEDIA_PIPELINE_PURGE_VERSIONS=all): it was permanent")
        bucket, key = mark["bucket"], mark["key"]
        try:
            status = client.get_bucket_versioning(Bucket=bucket).get("Status")
            if status not in ("Enabled", "Suspended"):
                raise LifecycleError(f"bucket {bucket} is not versioned: the purge of {key} "
                                     "was permanent")
            found = _versions(client, bucket, key)  # newest first
            # the version the purge hid: by its version id, else (unrecorded) by its ETag
            at = next((i for i, e in enumerate(found) if not e["marker"] and (
                e["version_id"] == mark["version_id"] if mark["version_id"]
                else e["etag"] == _etag(mark["etag"]))), None)
            newer = [e for e in found[:len(found) if at is None else at] if not e["marker"]]
            if newer:  # even if deleted again since: restoring would hide or mix it up
                raise LifecycleError(f"a newer object was uploaded at {key} since the purge "
                                     f"(version {newer[0]['version_id']}); nothing was changed")
            if at is None or found[at]["etag"] != _etag(mark["etag"]):
                raise LifecycleError(f"the version of {key} the purge hid no longer exists "
                                     "(expired by a lifecycle rule?); nothing was changed")
            hidden = found[at]
            markers = [e["version_id"] for e in found[:at]]  # all delete markers
            for version in markers:
                client.delete_object(Bucket=bucket, Key=key, VersionId=version)
            head = client.head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise LifecycleError(f"S3 refused the unpurge of {key}: {exc}") from exc
        if _etag(head.get("ETag")) != _etag(mark["etag"]):
            raise LifecycleError(f"{key} came back with another ETag; check the bucket")
        details = {"key": key, "version_id": hidden["version_id"],
                   "removed_markers": markers, "purge_id": mark["purge_id"]}
        with Catalog.open(settings.catalog_location) as catalog:
            catalog.lifecycle.unpurge_media(str(state["media_id"]), user, hidden["version_id"],
                                            details)
    return details


def _versions(client: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """Versions and delete markers of exactly ``key``, newest first."""
    found: list[dict[str, Any]] = []
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for v in page.get("Versions", []):
            if v["Key"] == key:
                found.append({"version_id": v["VersionId"], "marker": False,
                              "etag": _etag(v.get("ETag")), "at": v["LastModified"],
                              "latest": v.get("IsLatest")})
        for v in page.get("DeleteMarkers", []):
            if v["Key"] == key:
                found.append({"version_id": v["VersionId"], "marker": True, "etag": "",
                              "at": v["LastModified"], "latest": v.get("IsLatest")})
    found.sort(key=lambda v: (not v["latest"], -v["at"].timestamp()))
    return found


def bucket_versioning(settings: Settings, client: Any) -> dict[str, Any]:
    """Whether purges can be undone: the bucket's versioning, the purge mode and the days a
    noncurrent version is kept (a lifecycle rule), as ``health`` reports them."""
    try:
        status = client.get_bucket_versioning(Bucket=settings.bucket).get("Status")
    except (ClientError, BotoCoreError) as exc:
        return {"versioning": None, "undo": False, "detail": f"cannot read versioning: {exc}"}
    days = None
    try:
        rules = client.get_bucket_lifecycle_configuration(Bucket=settings.bucket)["Rules"]
        days = min((r["NoncurrentVersionExpiration"]["NoncurrentDays"] for r in rules
                    if r.get("Status") == "Enabled" and "NoncurrentVersionExpiration" in r),
                   default=None)
    except (ClientError, BotoCoreError, KeyError):
        pass
    undo = status == "Enabled" and settings.purge_versions == PurgeVersions.MARKER
    if undo:
        window = f"for {days} days" if days is not None else "until old versions are removed"
        detail = f"bucket versioned: a purge can be undone with media-pipeline unpurge {window}"
    elif status == "Enabled":
        detail = ("bucket versioned, but MEDIA_PIPELINE_PURGE_VERSIONS=all deletes every "
                  "version: purges are permanent")
    else:
        detail = (f"bucket versioning {(status or 'never enabled').lower()}: purges are "
                  "permanent")
    return {"versioning": status, "undo": undo, "noncurrent_days": days, "detail": detail}
