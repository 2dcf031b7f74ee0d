"""S3MediaStorage: what the application API needs from S3 (the seed's Django ``S3MediaStorage``).

Uploads stream (multipart above ``MEDIA_PIPELINE_MULTIPART_THRESHOLD``) and never overwrite an
existing object (``If-None-Match: *``); downloads stream; URLs are SigV4-signed with a bounded
expiry; presigned POST policies pin the bucket, the key, the content type and the size; object
ACLs carry the visibility where the bucket allows ACLs. Which files may get which URL is decided
by the library (:mod:`media_pipeline.library`), not here.

Errors are :class:`StorageError` with a message naming the operation, bucket and key, never a
credential. botocore's own errors do not contain the secret key; we add nothing that could.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
import secrets
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from media_pipeline.errors import (  # noqa: F401
    AclNotSupported,
    ExpiryTooLong,
    InvalidInput,
    ObjectExists,
    ObjectNotFound,
    StorageError,
)
from media_pipeline.settings import Settings
from media_pipeline.storage.keys import UnsafeKey, make_key, safe_filename, validate_key
from media_pipeline.storage.s3 import (
    ACL_UNSUPPORTED_CODES,
    grants_are_public,
    is_not_found,
    make_client,
)

log = logging.getLogger(__name__)

VISIBILITIES = frozenset({"public", "internal", "private"})
SIGNED_METHODS = frozenset({"get_object", "head_object"})
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10_000
DOWNLOAD_CHUNK = 1024 * 1024
EXISTS_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
CONTENT_TYPE_PATTERN = re.compile(r"[A-Za-z0-9][\w.+-]*/[\w.+-]+(?:\s*;\s*[\w.+-]+=[\w.+\"-]+)*")
METADATA_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
SHA256_PATTERN = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class UploadResult:
    """What S3 stored. ``version_id`` is None when the bucket is not versioned."""

    key: str
    etag: str
    version_id: str | None
    size: int
    sha256: str
    content_type: str


def _acl_message(bucket: str, visibility: str | None = None) -> str:
    what = f"make an object {visibility}" if visibility else "set an object ACL"
    return (
        f"cannot {what}: bucket {bucket!r} has ACLs disabled (Object Ownership 'bucket owner "
        "enforced'), so object ACLs are refused. Serve public files through the CDN "
        "(AWS_S3_CUSTOM_DOMAIN) or a bucket policy on the public prefix instead, or enable "
        "ACLs on the bucket ('bucket owner preferred')."
    )


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def _read_up_to(fileobj: _Readable, size: int) -> bytes:
    """Exactly ``size`` bytes unless the stream ends first (read() may return less)."""
    chunks: list[bytes] = []
    have = 0
    while have < size:
        chunk = fileobj.read(size - have)
        if not chunk:
            break
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError("upload() needs a binary file object (open it with 'rb')")
        chunks.append(bytes(chunk))
        have += len(chunk)
    return b"".join(chunks)


class _Prepended:
    """A reader that returns ``head`` first, then the rest of ``fileobj``."""

    def __init__(self, head: bytes, fileobj: BinaryIO) -> None:
        self._head = memoryview(head)
        self._fileobj = fileobj

    def read(self, size: int) -> bytes:
        if self._head.nbytes:
            out = bytes(self._head[:size])
            self._head = self._head[len(out):]
            return out
        return self._fileobj.read(size)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


INLINE_PREFIXES = ("image/", "audio/", "video/")


def _check_content_type(content_type: str) -> str:
    if not isinstance(content_type, str) or not CONTENT_TYPE_PATTERN.fullmatch(content_type):
        raise InvalidInput(
            f"content type {content_type!r} is not a valid MIME type like 'image/png'")
    return content_type


def _check_visibility(visibility: str) -> str:
    if visibility not in VISIBILITIES:
        raise InvalidInput(
            f"visibility must be one of {', '.join(sorted(VISIBILITIES))}, got {visibility!r}")
    return visibility


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """User metadata travels as HTTP headers: ASCII, no control characters, 2 KB in all."""
    if not metadata:
        return {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not METADATA_KEY_PATTERN.fullmatch(name):
            raise InvalidInput(f"metadata name {name!r} must be letters, digits, '-' or '_'")
        if not isinstance(value, str) or not value.isascii() or not value.isprintable():
            raise InvalidInput(
                f"metadata value for {name!r} must be printable ASCII (it is sent as an HTTP "
                "header); keep other text in the catalog")
    if sum(len(k) + len(v) for k, v in metadata.items()) > 2048:
        raise InvalidInput("metadata is larger than S3's 2 KB limit")
    return dict(metadata)


def _ascii(text: str) -> str:
    """Accents dropped (é -> e), anything else outside a small safe set replaced by '_'."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9._ ()\[\]+,'-]", "_", folded)


def _displayed_inline(content_type: str) -> bool:
    """Types a browser shows as media (or plain text), never runs as a document."""
    mime = content_type.split(";")[0].strip().lower()
    return mime.startswith(INLINE_PREFIXES) or mime in ("application/pdf", "text/plain")


def content_disposition(download_name: str) -> str:
    """``attachment`` with an ASCII fallback name and the RFC 6266 / 5987 UTF-8 name.

    The name goes through :func:`safe_filename` first, so quotes, CR/LF and path parts cannot
    reach the response header; a name with nothing usable becomes ``download``.
    """
    try:
        name = safe_filename(download_name)
    except UnsafeKey:
        name = "download"
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ascii_stem = _ascii(stem).strip(" .") or "download"
    ascii_ext = _ascii(ext)
    ascii_name = f"{ascii_stem}.{ascii_ext}" if ascii_ext else ascii_stem
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


class S3MediaStorage:
    """Uploads, downloads, URLs and ACLs for the media bucket of ``settings``."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._client = client if client is not None else make_client(settings)
        self._acls_enabled: bool | None = None
        self._acl_state_known = False
        signature = getattr(getattr(self._client, "meta", None), "config", None)
        version = getattr(signature, "signature_version", None)
        if version not in (None, "s3v4", "v4"):
            raise InvalidInput(
                f"the S3 client signs with {version!r}; presigned URLs must use SigV4: "
                "create it with botocore Config(signature_version='s3v4') or use make_client()")

    def __repr__(self) -> str:
        return (f"S3MediaStorage(bucket={self.bucket!r}, region={self.settings.region!r}, "
                f"endpoint={self.settings.endpoint_url!r})")

    @property
    def client(self) -> Any:
        return self._client

    # -- errors ----------------------------------------------------------------------------------

    def _error(self, exc: Exception, action: str, key: str | None = None) -> StorageError:
        where = f"{key!r} in bucket {self.bucket!r}" if key is not None else repr(self.bucket)
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", "Unknown"))
            message = err.get("Message") or ""
            if code in ACL_UNSUPPORTED_CODES:
                return AclNotSupported(_acl_message(self.bucket))
            if code in EXISTS_CODES:
                return ObjectExists(
                    f"{action} {where}: an object with this key already exists; "
                    "uploads never overwrite, choose another key")
            if is_not_found(exc):
                return ObjectNotFound(f"{action} {where}: no such object")
            return StorageError(f"{action} {where} failed: {code}: {message}".rstrip(": "))
        return StorageError(f"{action} {where} failed: {exc}")

    # -- upload ----------------------------------------------------------------------------------

    def upload(
        self,
        fileobj: BinaryIO,
        key: str,
        *,
        content_type: str,
        visibility: str = "private",
        sha256: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> UploadResult:
        """Stream ``fileobj`` to a NEW object ``key``.

        Up to the multipart threshold one PUT with the full-object ``ChecksumSHA256`` (S3 checks
        it, and the fingerprint stage reuses it as the file hash); above it a multipart upload in
        parts of at least 8 MiB with a CRC32 per part (a multipart SHA-256 is a hash of part
        hashes, and moto reports it without AWS's ``-N`` marker, so the fingerprint stage would
        take it for the content's hash). Memory holds at most the threshold or one part. Any
        failure, including an interrupted read or Ctrl-C, aborts the multipart upload so no
        parts linger. ``visibility``
        "public" sets the public-read ACL; "internal" and "private" send no ACL (private).
        With ``sha256`` given, content that does not match is refused before it is stored.
        Raises :class:`ObjectExists` when the key is taken, :class:`AclNotSupported` for a
        public upload into a bucket without ACLs, ``ValueError`` for bad arguments.
        """
        validate_key(key)
        _check_content_type(content_type)
        _check_visibility(visibility)
        user_metadata = _check_metadata(metadata)
        expected = None
        if sha256 is not None:
            if not isinstance(sha256, str) or not SHA256_PATTERN.fullmatch(sha256):
                raise InvalidInput("sha256 must be 64 hex digits")
            expected = sha256.lower()
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": user_metadata}
        if visibility == "public":
            self._require_acls(visibility)
            extra["ACL"] = "public-read"
        threshold = max(1, self.settings.multipart_threshold)
        head = _read_up_to(fileobj, threshold + 1)
        if len(head) <= threshold:
            return self._put_single(head, key, extra, expected, visibility)
        return self._put_multipart(_Prepended(head, fileobj), key, extra, expected, visibility)

    def _too_large(self, key: str, size: int) -> ValueError:
        return ValueError(
            f"upload of {key!r} refused: more than MAX_FILE_SIZE "
            f"({self.settings.max_file_size} bytes); read {size} bytes so far")

    def _mismatch(self, key: str, actual: str) -> StorageError:
        return StorageError(
            f"upload of {key!r} refused: the content's sha256 {actual} does not match the sha256 "
            "given; nothing was stored")

    def _put_single(
        self, body: bytes, key: str, extra: dict[str, Any], expected: str | None, visibility: str
    ) -> UploadResult:
        if len(body) > self.settings.max_file_size:
            raise self._too_large(key, len(body))
        digest = hashlib.sha256(body).digest()
        if expected is not None and digest.hex() != expected:
            raise self._mismatch(key, digest.hex())
        try:
            response = self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(digest), IfNoneMatch="*", **extra)
        except (ClientError, BotoCoreError) as exc:
            raise self._upload_error(exc, key, visibility) from exc
        return self._result(response, key, len(body), digest.hex(), extra["ContentType"])

    def _upload_error(self, exc: Exception, key: str, visibility: str) -> StorageError:
        error = self._error(exc, "upload of", key)
        if isinstance(error, AclNotSupported):
            return AclNotSupported(_acl_message(self.bucket, visibility))
        return error

    def _part_size(self) -> int:
        needed = math.ceil(self.settings.max_file_size / MAX_PARTS)
        return max(PART_SIZE, MIN_PART_SIZE, needed)

    def _put_multipart(
        self, reader: _Prepended, key: str, extra: dict[str, Any], expected: str | None,
        visibility: str,
    ) -> UploadResult:
        # Fail fast before sending megabytes; If-None-Match on completion closes the race.
        if self.exists(key):
            raise ObjectExists(
                f"upload of {key!r} in bucket {self.bucket!r}: an object with this key already "
                "exists; uploads never overwrite, choose another key")
        try:
            created = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32", **extra)
        except (ClientError, BotoCoreError) as exc:
            raise self._upload_error(exc, key, visibility) from exc
        upload_id = created["UploadId"]
        try:
            hasher = hashlib.sha256()
            parts: list[dict[str, Any]] = []
            size = 0
            part_size = self._part_size()
            while True:
                chunk = _read_up_to(reader, part_size)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.settings.max_file_size:
                    raise self._too_large(key, size)
                hasher.update(chunk)
                crc = _b64(zlib.crc32(chunk).to_bytes(4, "big"))
                number = len(parts) + 1
                part = self._client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    Body=chunk, ChecksumCRC32=crc)
                parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumCRC32": crc})
            actual = hasher.hexdigest()
            if expected is not None and actual != expected:
                raise self._mismatch(key, actual)
            response = self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts}, IfNoneMatch="*")
        except BaseException as exc:
            self._abort(key, upload_id)
            if isinstance(exc, ClientError | BotoCoreError):
                raise self._upload_error(exc, key, visibility) from exc
            raise
        return self._result(response, key, size, actual, extra["ContentType"])

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            # The original error matters more; a bucket lifecycle rule should expire leftovers.
            log.warning("could not abort multipart upload %s of %r: %s", upload_id, key, exc)

    @staticmethod
    def _result(
        response: dict[str, Any], key: str, size: int, sha256: str, content_type: str
    ) -> UploadResult:
        version = response.get("VersionId")
        return UploadResult(
            key=key,
            etag=str(response.get("ETag", "")).strip('"'),
            version_id=None if version in (None, "", "null") else str(version),
            size=size,
            sha256=sha256,
            content_type=content_type,
        )

    # -- reading, existence, deletion ------------------------------------------------------------

    def open(self, key: str) -> Any:
        """The object's streaming body (botocore ``StreamingBody``); close it when done."""
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "reading", key) from exc

    def download(self, key: str, fileobj: BinaryIO) -> int:
        """Stream the object into ``fileobj`` in 1 MiB chunks; returns the number of bytes."""
        body = self.open(key)
        total = 0
        try:
            for chunk in body.iter_chunks(DOWNLOAD_CHUNK):
                fileobj.write(chunk)
                total += len(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "downloading", key) from exc
        finally:
            body.close()
        return total

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise self._error(exc, "checking", key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "checking", key) from exc
        return True

    def has_objects_under(self, namespace: str) -> bool:
        """True when the bucket holds any object whose key starts with ``namespace/``."""
        try:
            response = self._client.list_objects_v2(Bucket=self.bucket, Prefix=f"{namespace}/",
                                                    MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "listing", f"{namespace}/") from exc
        return int(response.get("KeyCount", 0)) > 0

    def delete(self, key: str) -> None:
        """Delete the object (in a versioned bucket: add a delete marker). No error if absent."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "deleting", key) from exc

    # -- URLs ------------------------------------------------------------------------------------

    def _check_expiry(self, expires: int) -> int:
        if isinstance(expires, bool) or not isinstance(expires, int):
            raise InvalidInput(f"expires must be a whole number of seconds, got {expires!r}")
        if expires < 1:
            raise InvalidInput(f"expires must be at least 1 second, got {expires}")
        limit = self.settings.signed_url_max_expiry
        if expires > limit:
            raise ExpiryTooLong(
                f"expires={expires} s is longer than the allowed {limit} s "
                "(MEDIA_PIPELINE_SIGNED_URL_MAX_EXPIRY; SigV4 URLs last at most 7 days)")
        return expires

    def _presign(self, method: str, params: dict[str, Any], expires: int) -> str:
        try:
            url = self._client.generate_presigned_url(method, Params=params, ExpiresIn=expires)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "signing a URL for", params.get("Key")) from exc
        if "X-Amz-Algorithm=AWS4-HMAC-SHA256" not in url:
            raise StorageError("the S3 client did not sign with SigV4; use make_client()")
        return str(url)

    def generate_signed_url(
        self,
        key: str,
        expires: int = 3600,
        *,
        download_name: str | None = None,
        method: str = "get_object",
        content_type: str | None = None,
    ) -> str:
        """A SigV4 presigned GET (or HEAD) URL valid for ``expires`` seconds.

        ``download_name`` makes browsers save the file under that name
        (``response-content-disposition: attachment; filename*=UTF-8''…``). ``content_type``
        (the sniffed type the catalog checked) is what S3 answers with, whatever Content-Type
        the object was stored with; a type browsers would not simply display (anything but
        images, audio, video, PDF and plain text) is served as an attachment.
        Raises :class:`ExpiryTooLong` above ``settings.signed_url_max_expiry``.
        """
        self._check_expiry(expires)
        if method not in SIGNED_METHODS:
            raise InvalidInput(
                f"method must be one of {', '.join(sorted(SIGNED_METHODS))}; "
                "uploads use presigned_put() or presigned_post()")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type is not None:
            params["ResponseContentType"] = _check_content_type(content_type)
        if download_name is not None:
            params["ResponseContentDisposition"] = content_disposition(download_name)
        elif content_type is not None and not _displayed_inline(content_type):
            params["ResponseContentDisposition"] = "attachment"
        return self._presign(method, params, expires)

    def public_url(self, key: str) -> str:
        """The unsigned URL of ``key``: under AWS_S3_CUSTOM_DOMAIN when set, else the bucket's.

        ``custom_domain`` may be ``cdn.example.com``, ``https://cdn.example.com`` or include a
        path prefix (``https://example.com/media``). Without it: path-style on a custom endpoint
        (MinIO, the embedded server), virtual-hosted on AWS (path-style for bucket names with
        dots, which virtual-hosted HTTPS certificates do not cover).
        """
        quoted = quote(key, safe="/~")
        domain = self.settings.custom_domain
        if domain:
            base = domain if "://" in domain else f"https://{domain.lstrip('/')}"
            return f"{base.rstrip('/')}/{quoted}"
        endpoint = self.settings.endpoint_url
        if endpoint:
            return f"{endpoint.rstrip('/')}/{quote(self.bucket, safe='')}/{quoted}"
        host = f"s3.{self.settings.region}.amazonaws.com"
        if "." in self.bucket:
            return f"https://{host}/{self.bucket}/{quoted}"
        return f"https://{self.bucket}.{host}/{quoted}"

    def _bucket_acls_enabled(self) -> bool | None:
        """False when the bucket enforces owner (ACLs disabled), True when ACLs work, None
        when we cannot tell (no s3:GetBucketOwnershipControls, or a server without the API).
        Asked once per instance; if the setting changes later, S3's own
        AccessControlListNotSupported is still mapped to :class:`AclNotSupported`."""
        if not self._acl_state_known:
            try:
                rules = self._client.get_bucket_ownership_controls(Bucket=self.bucket)[
                    "OwnershipControls"]["Rules"]
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "OwnershipControlsNotFoundError":
                    self._acls_enabled = True  # a bucket from before April 2023: ACLs on
                else:
                    log.info("cannot read the ownership controls of bucket %r (%s); assuming "
                             "ACLs are enabled", self.bucket, code)
                    self._acls_enabled = None
            except BotoCoreError:
                return None  # a network problem: ask again next time
            else:
                self._acls_enabled = not any(
                    r.get("ObjectOwnership") == "BucketOwnerEnforced" for r in rules)
            self._acl_state_known = True
        return self._acls_enabled

    def _require_acls(self, visibility: str) -> None:
        """Refuse an ACL change up front on a bucket known to have ACLs disabled (AWS would
        refuse the request; some S3-compatible servers silently accept and ignore it)."""
        if self._bucket_acls_enabled() is False:
            raise AclNotSupported(_acl_message(self.bucket, visibility))

    def _pin_private_acl(self) -> bool:
        """Pin ``acl=private`` on presigned uploads unless the bucket has ACLs disabled: there a
        PUT/POST with any ACL but bucket-owner-full-control is refused, and objects are private
        by ownership anyway."""
        return self._bucket_acls_enabled() is not False

    def presigned_put(
        self,
        key: str,
        *,
        content_type: str,
        expires: int = 3600,
        content_length: int | None = None,
    ) -> dict[str, Any]:
        """A presigned PUT for a new object: ``{"url", "method": "PUT", "headers"}``.

        The client must send exactly ``headers``: Content-Type, ``If-None-Match: *`` (S3 refuses
        to overwrite an existing object) and ``x-amz-acl: private`` are signed, and so is
        Content-Length when ``content_length`` is given.
        """
        validate_key(key)
        _check_content_type(content_type)
        self._check_expiry(expires)
        params: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "ContentType": content_type, "IfNoneMatch": "*"}
        headers = {"Content-Type": content_type, "If-None-Match": "*"}
        if content_length is not None:
            if isinstance(content_length, bool) or not isinstance(content_length, int) or not (
                    1 <= content_length <= self.settings.max_file_size):
                raise InvalidInput(
                    f"content_length must be 1..{self.settings.max_file_size} (MAX_FILE_SIZE), "
                    f"got {content_length!r}")
            params["ContentLength"] = content_length
            headers["Content-Length"] = str(content_length)
        if self._pin_private_acl():
            params["ACL"] = "private"
            headers["x-amz-acl"] = "private"
        return {"url": self._presign("put_object", params, expires), "method": "PUT",
                "headers": headers}

    def presigned_post(
        self,
        namespace: str,
        *,
        filename: str,
        content_types: Sequence[str],
        max_size: int,
        expires: int = 3600,
    ) -> dict[str, Any]:
        """A browser form upload into ``namespace``: ``{"url", "fields", "key", "expires_at"}``.

        The key is ``make_key(namespace, filename, unique=<12 random hex>)``. The signed policy
        pins the bucket, the exact key (and ``starts-with $key namespace/``), the Content-Type
        (``eq``: a policy cannot express "one of", and ``starts-with image/`` would admit types
        nobody allowed, so presign once per declared type), ``content-length-range`` 1..max_size
        (max_size <= MAX_FILE_SIZE), the ACL private (omitted on buckets with ACLs disabled, where
        S3 refuses it; every form field must match a condition, so no ACL can be added), the
        SigV4 algorithm, credential and date, and the expiry. ``expires_at`` is the policy's
        expiration (ISO 8601, UTC).
        """
        if isinstance(content_types, str):
            content_types = [content_types]
        distinct = list(dict.fromkeys(content_types))
        if len(distinct) != 1:
            raise InvalidInput(
                "presigned_post needs exactly one content type: a POST policy can pin one "
                "Content-Type, so presign once per declared type")
        content_type = _check_content_type(distinct[0])
        if content_type not in self.settings.allowed_mime_types:
            raise InvalidInput(f"content type {content_type!r} is not in ALLOWED_FILE_TYPES")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or not (
                1 <= max_size <= self.settings.max_file_size):
            raise InvalidInput(
                f"max_size must be 1..{self.settings.max_file_size} (MAX_FILE_SIZE), "
                f"got {max_size!r}")
        self._check_expiry(expires)
        key = make_key(namespace, filename, unique=secrets.token_hex(6))
        fields: dict[str, Any] = {"Content-Type": content_type}
        conditions: list[Any] = [
            ["starts-with", "$key", namespace + "/"],
            ["eq", "$Content-Type", content_type],
            ["content-length-range", 1, max_size],
        ]
        if self._pin_private_acl():
            fields["acl"] = "private"
            conditions.append({"acl": "private"})
        try:
            post = self._client.generate_presigned_post(
                self.bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=expires)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "signing a POST policy for", key) from exc
        if post["fields"].get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
            raise StorageError("the S3 client did not sign with SigV4; use make_client()")
        return {"url": post["url"], "fields": post["fields"], "key": key,
                "expires_at": decode_policy(post["fields"]["policy"])["expiration"]}

    # -- ACLs ------------------------------------------------------------------------------------

    def set_visibility(self, key: str, visibility: str) -> None:
        """public -> public-read ACL; internal/private -> private ACL.

        Raises :class:`AclNotSupported` when the bucket has ACLs disabled (then the object's
        access is decided by the bucket policy only, and this call cannot change it).
        """
        _check_visibility(visibility)
        self._require_acls(visibility)
        acl = "public-read" if visibility == "public" else "private"
        try:
            self._client.put_object_acl(Bucket=self.bucket, Key=key, ACL=acl)
        except (ClientError, BotoCoreError) as exc:
            error = self._error(exc, "setting the ACL of", key)
            if isinstance(error, AclNotSupported):
                raise AclNotSupported(_acl_message(self.bucket, visibility)) from exc
            raise error from exc

    def object_acl_is_public(self, key: str) -> bool:
        """True when the object's ACL grants READ (or more) to everyone or any AWS user."""
        try:
            grants = self._client.get_object_acl(Bucket=self.bucket, Key=key).get("Grants", [])
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "reading the ACL of", key) from exc
        return grants_are_public(grants)


def decode_policy(policy: str) -> dict[str, Any]:
    """The JSON document inside a presigned POST's base64 ``policy`` field."""
    try:
        value = json.loads(base64.b64decode(policy, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"not a POST policy: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput("not a POST policy: not a JSON object")
    return value

