"""boto3 clients and the few S3 calls the pipeline makes.

Clients use SigV4, adaptive retries (throttling and 5xx are retried by botocore) and a connection
pool sized for concurrent reads. Every response carries botocore's ``RetryAttempts``; the
:class:`RetryCounter` adds them up so assets can report how often S3 pushed back.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader, create_loader

from media_pipeline.errors import ObjectGone  # noqa: F401
from media_pipeline.settings import Settings

NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion"})
PUBLIC_GRANTEES = frozenset({
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
})
ACL_UNSUPPORTED_CODES = frozenset(
    {"AccessControlListNotSupported", "InvalidBucketAclWithObjectOwnership"})
ACLS_DISABLED = "bucket has ACLs disabled: access depends on the bucket policy"


def grants_are_public(grants: list[dict[str, Any]]) -> bool:
    """True when an ACL grants READ (or more) to everyone or to any AWS user."""
    return any(g.get("Grantee", {}).get("URI") in PUBLIC_GRANTEES
               and g.get("Permission") in {"READ", "FULL_CONTROL"} for g in grants)


def bucket_acls_disabled(client: Any, bucket: str) -> bool | None:
    """True when the bucket enforces owner (ACLs disabled), False when ACLs work, None when
    we cannot tell (no permission, or a server without the API)."""
    try:
        rules = client.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "OwnershipControlsNotFoundError":
            return False  # a bucket from before April 2023: ACLs on
        return None
    return any(r.get("ObjectOwnership") == "BucketOwnerEnforced" for r in rules)


def close_public_access(client: Any, bucket: str, key: str,
                        version_id: str | None = None) -> str:
    """Make the object's ACL private if it grants public reads; never raises.

    Returns ``"not public"``, ``"closed"``, ``ACLS_DISABLED`` (the object's ACL cannot be
    changed there: only the bucket policy decides) or ``"failed: <code>"``. The ownership
    controls are read first because some S3-compatible servers accept ACL writes on a bucket
    with ACLs disabled and ignore them.
    """
    version = {"VersionId": version_id} if version_id else {}
    try:
        grants = client.get_object_acl(Bucket=bucket, Key=key, **version).get("Grants", [])
        if not grants_are_public(grants):
            return "not public"
        if bucket_acls_disabled(client, bucket):
            return ACLS_DISABLED
        client.put_object_acl(Bucket=bucket, Key=key, ACL="private", **version)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code") or "ClientError")
        return ACLS_DISABLED if code in ACL_UNSUPPORTED_CODES else f"failed: {code}"
    except BotoCoreError as exc:
        return f"failed: {type(exc).__name__}"
    return "closed"


@dataclass(frozen=True)
class S3Object:
    """One object version as listing or an inventory report describes it."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime | None
    storage_class: str | None = None
    version_id: str | None = None


class RetryCounter:
    """Thread-safe sum of botocore retry attempts seen in responses and errors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.retries = 0

    def add(self, response: Mapping[str, Any]) -> None:
        attempts = response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0
        if attempts:
            with self._lock:
                self.retries += attempts

    def add_error(self, exc: ClientError) -> None:
        self.add(exc.response)

    def add_retry(self) -> None:
        """A retry botocore does not see (e.g. reading a body again after it broke off)."""
        with self._lock:
            self.retries += 1


_LOADER: list[Loader] = []


def _shared_loader() -> Loader:
    """One botocore data loader per process: a new session would parse S3's service model
    again (~60 ms of CPU a client; a run makes a client per step and per check)."""
    if not _LOADER:
        _LOADER.append(create_loader())
    return _LOADER[0]


def make_client(settings: Settings, *, max_pool_connections: int | None = None) -> Any:
    """An S3 client for the configured endpoint (AWS, MinIO, R2 or the embedded server)."""
    pool = max_pool_connections or max(10, settings.fingerprint_workers + 4)
    config = Config(
        signature_version="s3v4",
        retries={"mode": "adaptive", "max_attempts": 8},
        max_pool_connections=pool,
        connect_timeout=10,
        read_timeout=120,
    )
    access_key = settings.access_key_id
    secret_key = settings.secret_access_key
    token = settings.session_token
    if settings.uses_embedded_s3:
        # The embedded server accepts any credentials; these keep boto3 from searching for some.
        access_key, secret_key, token = "embedded", "embedded-secret", None
    core = botocore.session.Session(
        profile=settings.profile_name if not access_key else None)
    core.register_component("data_loader", _shared_loader())
    return boto3.session.Session(botocore_session=core).client(
        "s3",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        config=config,
    )


def is_not_found(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in NOT_FOUND_CODES


def ensure_bucket(client: Any, bucket: str, region: str = "us-east-1") -> None:
    """Create the bucket if it does not exist (embedded server and tests)."""
    try:
        client.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if not is_not_found(exc) and exc.response["Error"]["Code"] != "NoSuchBucket":
            raise
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    client.create_bucket(**kwargs)


def _strip_etag(etag: str) -> str:
    return etag.strip('"')


def _to_object(bucket: str, item: Mapping[str, Any]) -> S3Object:
    return S3Object(
        bucket=bucket,
        key=item["Key"],
        size=int(item["Size"]),
        etag=_strip_etag(item.get("ETag", "")),
        last_modified=item.get("LastModified"),
        storage_class=item.get("StorageClass"),
    )


def _pages(
    client: Any, bucket: str, prefix: str, counter: RetryCounter | None
) -> Iterator[list[S3Object]]:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        if counter is not None:
            counter.add(page)
        yield [_to_object(bucket, item) for item in page.get("Contents", [])]


_DONE = object()


def list_objects(
    client: Any,
    bucket: str,
    prefix: str = "",
    *,
    workers: int = 8,
    counter: RetryCounter | None = None,
) -> Iterator[S3Object]:
    """Every current object under ``prefix``, listed in parallel by first-level prefix.

    ListObjectsV2 is sequential within one prefix (each page needs the previous token), so the
    top level is listed with a delimiter first and each common prefix gets its own paginator.
    Pages go through a bounded queue: memory holds a few pages, whatever the bucket size.
    """
    top = client.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
    if counter is not None:
        counter.add(top)
    if top.get("IsTruncated"):
        # Too many top-level entries to split cheaply: one sequential listing.
        for page in _pages(client, bucket, prefix, counter):
            yield from page
        return
    for item in top.get("Contents", []):
        yield _to_object(bucket, item)
    prefixes = [p["Prefix"] for p in top.get("CommonPrefixes", [])]
    if not prefixes:
        return

    pages: queue.Queue[Any] = queue.Queue(maxsize=4 * max(1, workers))
    stop = threading.Event()

    def produce(sub: str) -> None:
        try:
            for page in _pages(client, bucket, sub, counter):
                if stop.is_set():
                    return
                pages.put(page)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            pages.put(exc)
        finally:
            pages.put(_DONE)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(prefixes)))) as pool:
        for sub in prefixes:
            pool.submit(produce, sub)
        finished = 0
        try:
            while finished < len(prefixes):
                item = pages.get()
                if item is _DONE:
                    finished += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield from item
        finally:
            stop.set()
            # Unblock producers waiting on a full queue so the pool can shut down.
            while finished < len(prefixes):
                try:
                    if pages.get(timeout=0.1) is _DONE:
                        finished += 1
                except queue.Empty:
                    pass
