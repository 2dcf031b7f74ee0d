"""MediaLibrary: the API a web application calls (what the seed's ``MediaFile`` methods did).

Every public method takes the acting ``user`` and checks the user's role in the namespace first
(:mod:`media_pipeline.access`: viewer < editor < admin; ``MEDIA_PIPELINE_ADMINS`` are admin
everywhere). Every change is written together with its ``audit_log`` row in one catalog
transaction; when anything fails, nothing changes. The catalog is opened only for short steps, never
while a file is being read or uploaded, so the nightly pipeline is not kept waiting.

Who may do what (``-`` = refused; "owner" = the uploader or collection creator, still a member;
the same table is in docs/api.md and media_pipeline_tests/test_access.py tests every cell):

=================================================  =========  ==========  ======  ======  =====
action                                             anonymous  non-member  viewer  editor  admin
=================================================  =========  ==========  ======  ======  =====
create_namespace (creator becomes its admin) [1]   -          yes         yes     yes     yes
namespaces (own memberships)                       -          yes         yes     yes     yes
members                                            -          -           yes     yes     yes
add_member, remove_member                          -          -           -       -       yes
upload, presign_upload                             -          -           -       yes     yes
url of a public file                               yes        yes         yes     yes     yes
url, get, tags, get_references of an internal file -          -           yes     yes     yes
url, get, tags, get_references of a private file   -          -           owner   owner   yes
set_visibility                                     -          -           -       owner   yes
add_tag, remove_tag (public/internal file)         -          -           -       yes     yes
add_tag, remove_tag (private file)                 -          -           -       owner   yes
create_collection                                  -          -           -       yes     yes
collection (public)                                yes        yes         yes     yes     yes
collection (internal), collections                 -          -           yes     yes     yes
collection (private)                               -          -           owner   owner   yes
add_to_collection, remove_from_collection, reorder -          -           -       owner   yes
=================================================  =========  ==========  ======  ======  =====

[1] Only a global admin (``MEDIA_PIPELINE_ADMINS``) creates a namespace that already holds files
(in the catalog or the bucket) and ``default`` (where top-level keys land): nobody claims other
people's files by naming their namespace first.

"see" a file: public and internal files for every member, private files for their owner (while
still a member) and the namespace's admins. A collection follows the same rule with its own
visibility and owner, and shows only the items the user may see. A refusal (``-``) is
``PermissionDenied`` to someone who may see the file or collection, and ``UnknownMedia`` word for
word as for an unknown id to anyone else. Quarantined files never get a URL
(neither do files not yet validated: ``pending``); purged and missing files have no object to
serve; soft-deleted files still get URLs, as content may still point at them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NoReturn, TypeVar, cast

from media_pipeline import lifecycle
from media_pipeline.access import (
    SYSTEM_USER,
    PermissionDenied,
    Role,
    may_see,
    require_role,
    require_see,
)
from media_pipeline.catalog import Catalog, open_catalog
from media_pipeline.errors import (  # noqa: F401
    Conflict,
    InvalidInput,
    MediaUnavailable,
    Refused,
    UnknownMedia,
    ValidationFailed,
)
from media_pipeline.fingerprint.metadata import (
    ContentInfo,
    InspectLimits,
    allow_pillow_pixels,
    inspect_content,
)
from media_pipeline.fingerprint.sniff import SNIFF_BYTES, needs_content, sniff_mime
from media_pipeline.fingerprint.validate import check_extension, validate
from media_pipeline.kinds import MediaStatus, Visibility
from media_pipeline.records import MediaFile, media_id_for, stored_spelling
from media_pipeline.settings import Settings
from media_pipeline.storage.keys import (
    DEFAULT_NAMESPACE,
    make_key,
    safe_filename,
    validate_namespace,
)
from media_pipeline.storage.media_storage import AclNotSupported, S3MediaStorage, StorageError

if TYPE_CHECKING:
    from media_pipeline.references.index import ScanProgress, SourceScanOutcome

T = TypeVar("T")
log = logging.getLogger(__name__)

VISIBILITIES = tuple(Visibility)
CHUNK_SIZE = 1024 * 1024
SPOOL_MEMORY = 16 * 1024 * 1024
MAX_TAG_LENGTH = 100
MAX_NAME_LENGTH = 200
# Statuses whose object is there and validated: the only ones that get URLs.
SERVABLE = MediaStatus.servable()


@dataclass(frozen=True)
class References:
    """Where a file is used: ``referenced_in`` in the seed's shape ``{"webpage": ["123"]}``, and
    one row per reference (content, source, how it was found, the text around a mention)."""

    media_id: str
    referenced_in: dict[str, list[str]]
    rows: tuple[dict[str, Any], ...] = ()

    @property
    def reference_count(self) -> int:
        return sum(len(ids) for ids in self.referenced_in.values())


@dataclass(frozen=True)
class CollectionItem:
    """One file in a collection, at its 0-based position, with who added it."""

    position: int
    media: MediaFile
    added_by: str


@dataclass(frozen=True)
class Collection:
    """A named, ordered set of files in one namespace, with its own visibility and owner;
    ``items`` holds only the files the asking user may see."""

    collection_id: str
    namespace: str
    name: str
    visibility: str
    owner: str
    created_at: datetime
    items: tuple[CollectionItem, ...] = ()


@dataclass
class _Checked:
    """An upload's content, spooled and validated, ready to store."""

    spool: IO[bytes]
    size: int
    sha256: str
    content_type: str
    content: ContentInfo  # its CONTENT_COLUMNS go into the catalog row, as the reader's do


def upload_key(namespace: str, filename: str, user: str, sha256: str) -> str:
    """The key an upload is stored under. The uploader is part of it: the same name and bytes
    from someone who may not see the first copy land elsewhere and learn nothing about it."""
    unique = hashlib.sha256(f"{user}\0{sha256}".encode()).hexdigest()[:12]
    return make_key(namespace, filename, unique=unique)


def _check_visibility(visibility: str) -> str:
    if visibility not in VISIBILITIES:
        raise InvalidInput(f"visibility must be public, internal or private, got {visibility!r}")
    return visibility


def _check_user(user: str) -> str:
    if not isinstance(user, str) or not user.strip():
        raise PermissionDenied("a user is required for this action")
    return user


def _clean_name(value: str, what: str, limit: int) -> str:
    """A tag or collection name: trimmed, inner whitespace collapsed, no control characters."""
    name = " ".join(str(value).split())
    if not name:
        raise InvalidInput(f"{what} must not be empty")
    if len(name) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidInput(f"{what} must not contain control characters")
    return name


def _spelled_as_stored(media_id: str) -> str:
    """A media id as the catalog writes it, or as given when it is none."""
    return stored_spelling(media_id) or str(media_id)


def _check_media_id(media_id: str) -> str:
    """The id as the catalog writes it (:func:`records.stored_spelling`)."""
    spelled = stored_spelling(media_id)
    if spelled is None:
        raise UnknownMedia(f"{media_id!r} is not a media id")
    return spelled


def _format_size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


class MediaLibrary:
    """The application-facing API over the catalog and the bucket (see the module docstring)."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.storage = S3MediaStorage(settings, client=client)

    # -- plumbing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Catalog]:
        """The catalog for a check or a read."""
        with Catalog.open(self.settings.catalog_location) as catalog:
            yield catalog

    def _write(self, body: Callable[[Catalog], T]) -> T:
        """Run ``body`` as one catalog transaction, again from its start while it conflicts
        with another writer's (``Catalog.write``); the bodies change nothing outside the catalog
        but idempotent object settings (an ACL), so running one twice is running it once."""
        with self._writing() as catalog:
            return catalog.write(lambda: body(catalog))

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Catalog]:
        """The catalog for a change."""
        with open_catalog(self.settings) as catalog:
            yield catalog

    def _require(self, catalog: Catalog, namespace: str, user: str, role: Role,
                 action: str) -> Role:
        _check_user(user)
        return require_role(catalog, self.settings, namespace, user, role, action)

    def _namespace(self, catalog: Catalog, namespace: str) -> dict[str, Any]:
        info = catalog.application.namespace_info(namespace)
        if info is None:
            raise UnknownMedia(f"no namespace {namespace!r}: create it first")
        return info

    def _media(self, catalog: Catalog, media_id: str) -> MediaFile:
        media_id = _check_media_id(media_id)
        row = catalog.application.media_row(media_id)
        if row is None:
            raise UnknownMedia.of(media_id)
        return MediaFile.from_row(row)

    def _file(self, catalog: Catalog, media_id: str, user: str | None,
              columns: tuple[str, ...] = ()) -> dict[str, Any]:
        """What checks and small changes need of a file, in one query (``file_context``: the
        user's role comes with it; ``columns``: more of the row); the whole row is
        :meth:`_media`."""
        media_id = _check_media_id(media_id)
        media = catalog.lifecycle.file_context(media_id, user, columns=columns)
        if media is None:
            raise UnknownMedia.of(media_id)
        return media

    def _require_see_file(self, catalog: Catalog, media: dict[str, Any], user: str | None,
                          action: str) -> None:
        """Raise unless ``user`` may see the file; to someone who may not, it does not exist
        (:class:`UnknownMedia`, as for an unknown id)."""
        require_see(catalog, self.settings, media["media_id"], media["namespace"],
                    media["visibility"], media["owner"], user, action)

    def _collection(self, catalog: Catalog, collection_id: str,
                    user: str | None = None) -> dict[str, Any]:
        """The collection's row; with ``user``, only if they may see it: to someone who may
        not, it does not exist (the same error as an unknown id)."""
        try:
            uuid.UUID(str(collection_id))
        except ValueError:
            raise UnknownMedia(f"{collection_id!r} is not a collection id") from None
        row = catalog.application.collection_row(str(collection_id))
        if row is None or (user is not None and not self._may_see(
                catalog, row["namespace"], row["visibility"], row["owner"], user)):
            raise UnknownMedia(f"no collection {collection_id}")
        return row

    def _may_see(self, catalog: Catalog, namespace: str, visibility: str, owner: str | None,
                 user: str | None) -> bool:
        """The visibility rule shared by files and collections (:func:`access.may_see`)."""
        return may_see(catalog, self.settings, namespace, visibility, owner, user)

    def _require_see(self, catalog: Catalog, media: MediaFile, user: str, action: str) -> None:
        require_see(catalog, self.settings, media.media_id, media.namespace, media.visibility,
                    media.owner, user, action)

    def _require_owner_or_admin(self, catalog: Catalog, namespace: str, owner: str | None,
                                user: str, action: str) -> None:
        role = self._require(catalog, namespace, user, Role.EDITOR, action)
        if role < Role.ADMIN and owner != user:
            raise PermissionDenied(
                f"{user!r} may not {action}: only its owner ({owner or 'nobody'}) or an admin "
                f"of {namespace!r} may")

    # -- namespaces and members ------------------------------------------------------------------

    def create_namespace(self, name: str, user: str, *,
                         default_visibility: str = Visibility.PRIVATE.value) -> dict[str, Any]:
        """A new namespace; ``user`` becomes its first admin."""
        _check_user(user)
        if user == SYSTEM_USER:
            raise PermissionDenied("the system user does not create namespaces")
        validate_namespace(name)
        _check_visibility(default_visibility)
        admin = user in self.settings.admins
        # Objects already under the prefix belong to the global admins until one of them hands
        # the namespace over; asked before taking the catalog, and failing closed.
        in_bucket = False
        if not admin and name != DEFAULT_NAMESPACE:
            try:
                in_bucket = self.storage.has_objects_under(name)
            except StorageError as exc:
                raise PermissionDenied(
                    f"cannot tell whether namespace {name!r} already holds files ({exc}): only "
                    "a global admin (MEDIA_PIPELINE_ADMINS) can create it now") from None
        def body(catalog: Catalog) -> Any:
            if catalog.application.namespace_info(name) is not None:
                raise Conflict(f"namespace {name!r} already exists")
            claimed = (name == DEFAULT_NAMESPACE or in_bucket
                       or catalog.application.namespace_has_objects(name))
            if claimed and not admin:
                raise PermissionDenied(
                    f"namespace {name!r} already holds files: only a global admin "
                    "(MEDIA_PIPELINE_ADMINS) can create it and add its members")
            catalog.application.insert_namespace(name, default_visibility, user)
            catalog.application.record_audit(
                user, "namespace.create", None,
                {"namespace": name, "default_visibility": default_visibility})
            info = catalog.application.namespace_info(name)
            return info

        info = self._write(body)
        assert info is not None
        return info

    def add_member(self, namespace: str, user_id: str, role: str | Role, user: str) -> None:
        """Make ``user_id`` a member with ``role`` (or change the role). Admin only."""
        new_role = role if isinstance(role, Role) else Role.parse(role)
        member = str(user_id or "").strip()
        if not member:
            raise InvalidInput("the member's user id must not be empty")
        def body(catalog: Catalog) -> None:
            self._namespace(catalog, namespace)
            self._require(catalog, namespace, user, Role.ADMIN, "add members")
            before = catalog.application.upsert_member(namespace, member, str(new_role), user)
            if (before == "admin" and new_role < Role.ADMIN
                    and catalog.application.admin_count(namespace) == 0):
                raise Conflict(f"{member!r} is the last admin of {namespace!r}: add another "
                                 "admin first")
            catalog.application.record_audit(user, "member.add", None, {
                "namespace": namespace, "user_id": member, "role": str(new_role),
                "previous_role": before})

        self._write(body)

    def remove_member(self, namespace: str, user_id: str, user: str) -> None:
        """End ``user_id``'s membership. Admin only; the last admin cannot be removed."""
        def body(catalog: Catalog) -> None:
            self._namespace(catalog, namespace)
            self._require(catalog, namespace, user, Role.ADMIN, "remove members")
            before = catalog.application.delete_member(namespace, user_id)
            if before is None:
                raise UnknownMedia(f"{user_id!r} is not a member of {namespace!r}")
            if before == "admin" and catalog.application.admin_count(namespace) == 0:
                raise Conflict(f"{user_id!r} is the last admin of {namespace!r}: add another "
                                 "admin first")
            catalog.application.record_audit(
                user, "member.remove", None,
                {"namespace": namespace, "user_id": user_id, "role": before})

        self._write(body)

    def members(self, namespace: str, user: str) -> list[dict[str, Any]]:
        with self._reading() as catalog:
            self._namespace(catalog, namespace)
            self._require(catalog, namespace, user, Role.VIEWER, "list members")
            return catalog.application.list_members(namespace)

    def namespaces(self, user: str) -> list[dict[str, Any]]:
        """The namespaces ``user`` belongs to, with the role (global admins: all, as admin)."""
        _check_user(user)
        with self._reading() as catalog:
            if user in self.settings.admins:
                return [{**n, "role": "admin"} for n in catalog.application.list_namespaces(None)]
            return catalog.application.list_namespaces(user)

    # -- uploads ---------------------------------------------------------------------------------

    def upload(self, namespace: str, file: BinaryIO | str | os.PathLike[str], filename: str,
               user: str, visibility: str | None = None) -> MediaFile:
        """Validate the content, store it and register it; returns the catalog record.

        Refused content raises :class:`ValidationFailed` and nothing is stored (an
        ``upload.refused`` audit row says who tried what). The same content already active in
        the namespace, in a file the uploader may see, is not stored twice: that file is
        returned (``upload.deduplicated``). A copy the uploader may not see is never returned
        nor hinted at: the uploader gets their own file.
        """
        if visibility is not None:
            _check_visibility(visibility)
        filename = os.path.basename(str(filename).replace("\\", "/"))
        if not filename:
            raise InvalidInput("a file name is required")
        safe_filename(filename)  # a name that cannot become a key fails before any work
        with self._reading() as catalog:
            info = self._namespace(catalog, namespace)
            admin = self._require(catalog, namespace, user, Role.EDITOR, "upload") >= Role.ADMIN
        chosen = visibility or str(info["default_visibility"])

        with contextlib.ExitStack() as stack:
            if isinstance(file, (str, os.PathLike)):
                path = Path(file)
                size_hint = path.stat().st_size
                source: BinaryIO = stack.enter_context(path.open("rb"))
            else:
                source, size_hint = file, None
            checked, reason = self._spool_and_check(source, filename, size_hint, stack)
            if checked is None:
                self._refuse(namespace, filename, user, reason or "unreadable")

            key = upload_key(namespace, filename, user, checked.sha256)
            media_id = media_id_for(self.settings.bucket, key)
            with self._reading() as catalog:
                existing = catalog.application.active_by_hash(namespace, checked.sha256, user,
                                                              admin)
                previous = catalog.application.media_row(media_id)
            if existing is not None:
                return self._deduplicated(existing, filename, user)
            if previous is not None and previous["status"] not in MediaStatus.gone():
                # Same name and content as a file that is still here (deleted or quarantined):
                # writing the key again would change that file's object under it.
                raise Conflict(
                    f"{filename}: the same file is already at {key} (status "
                    f"{previous['status']}); restore it instead of uploading it again")
            checked.spool.seek(0)
            result = self.storage.upload(
                cast(BinaryIO, checked.spool), key, content_type=checked.content_type,
                visibility=chosen, sha256=checked.sha256)
            return self._register(namespace, filename, user, chosen, key, media_id, checked,
                                  result, admin)

    def _spool_and_check(self, source: BinaryIO, filename: str, size_hint: int | None,
                         stack: contextlib.ExitStack) -> tuple[_Checked | None, str | None]:
        """Read the content once into a bounded spool while hashing it, then apply the
        pipeline's own rules; returns (content, None) or (None, reason)."""
        limit = self.settings.max_file_size
        if size_hint is not None and size_hint > limit:
            return None, f"size {_format_size(size_hint)} over the {_format_size(limit)} limit"
        # Closed by the caller's ExitStack: the spool outlives this method until it is uploaded.
        spool: IO[bytes] = stack.enter_context(
            SpooledTemporaryFile(max_size=SPOOL_MEMORY))  # noqa: SIM115
        hasher = hashlib.sha256()
        size = 0
        while chunk := source.read(CHUNK_SIZE):
            size += len(chunk)
            if size > limit:
                return None, (f"size over the {_format_size(limit)} limit (stopped reading "
                              f"after {_format_size(size)})")
            hasher.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        head = spool.read(SNIFF_BYTES)
        mime = sniff_mime(head, key=filename)
        allow_pillow_pixels(self.settings.max_image_pixels)
        spool.seek(0)
        content = (inspect_content(spool, mime,
                                   limits=InspectLimits.from_settings(self.settings))
                   if size and needs_content(mime) else None) or ContentInfo()
        # The same facts the pipeline's reader gives validate (VALIDATION_FACTS).
        reason = validate(key=filename, size=size, content_type=mime, settings=self.settings,
                          **content.validation_facts())
        if reason is not None:
            return None, reason
        return _Checked(spool=spool, size=size, sha256=hasher.hexdigest(), content_type=mime,
                        content=content), None

    def _refuse(self, namespace: str, filename: str, user: str, reason: str) -> NoReturn:
        def body(catalog: Catalog) -> None:
            catalog.application.record_audit(user, "upload.refused", None,
                                             {"namespace": namespace, "filename": filename,
                                              "reason": reason})

        self._write(body)
        log.info("upload refused: %s in %s: %s", filename, namespace, reason)
        raise ValidationFailed(reason, filename)

    def _deduplicated(self, existing: dict[str, Any], filename: str, user: str) -> MediaFile:
        media = replace(MediaFile.from_row(existing), deduplicated=True)
        def body(catalog: Catalog) -> None:
            catalog.application.record_audit(user, "upload.deduplicated", media.media_id,
                                             {"filename": filename, "key": media.key})

        self._write(body)
        return media

    def _register(self, namespace: str, filename: str, user: str, visibility: str, key: str,
                  media_id: str, checked: _Checked, result: Any, admin: bool) -> MediaFile:
        """Register the stored object; if that fails, delete the object again (no orphan)."""
        now = datetime.now(UTC)
        etag = str(result.etag).strip('"')
        row = {
            "media_id": media_id, "namespace": namespace, "bucket": self.settings.bucket,
            "key": key, "version_id": result.version_id, "file_size": checked.size, "etag": etag,
            # Just after the PUT finished, so never before S3's own LastModified: an inventory
            # report taken before the upload does not call the file missing.
            "last_modified": now, "storage_class": "STANDARD",
            "original_filename": filename, "content_type": checked.content_type,
            "declared_content_type": checked.content_type, "file_hash": checked.sha256,
            "hash_source": "computed", "status": MediaStatus.ACTIVE.value,
            "visibility": visibility,
            "owner": user, "fingerprinted_etag": etag, "fingerprinted_at": now,
            "first_seen": now, "last_seen": now, "uploaded_at": now,
            # What inspecting the content found, the columns the reader stores too.
            **checked.content.columns(),
        }
        def body(catalog: Catalog) -> dict[str, Any] | None:
            # Checked again in the transaction: a concurrent upload of the same content.
            existing = catalog.application.active_by_hash(namespace, checked.sha256, user, admin)
            if existing is not None and existing["key"] == key:
                # Our own object: a pipeline run listed and catalogued it between the PUT and
                # now. Registered all the same (owner, visibility, the upload's audit line).
                existing = None
            if existing is None:
                catalog.application.register_upload(row)
                catalog.application.record_audit(user, "upload", media_id, {
                    "key": key, "filename": filename, "size": checked.size,
                    "sha256": checked.sha256, "content_type": checked.content_type,
                    "visibility": visibility})
            return existing

        try:
            existing = self._write(body)
        except BaseException:
            self._delete_quietly(key)
            raise
        if existing is None:  # read after the commit: the transaction stays short
            with self._reading() as catalog:
                media = catalog.application.media_row(media_id)
        else:
            media = existing
        assert media is not None
        if existing is not None and existing["key"] != key:
            self._delete_quietly(key)
            return self._deduplicated(existing, filename, user)
        return MediaFile.from_row(media)

    def _delete_quietly(self, key: str) -> None:
        try:
            self.storage.delete(key)
        except Exception as exc:  # the original error matters more; say what is left behind
            log.error("could not delete s3://%s/%s after a failed upload: %s",
                      self.settings.bucket, key, type(exc).__name__)

    def presign_upload(self, namespace: str, filename: str, content_type: str, size: int,
                       user: str, *, expires: int = 3600,
                       method: str = "POST") -> dict[str, Any]:
        """A presigned upload for a browser to send one file directly to S3 (editor).

        ``POST`` (default): ``{"url", "method": "POST", "fields", "key", "media_id",
        "expires_in"}``, a form upload whose signed policy pins the key (inside the namespace),
        the Content-Type and a content-length-range of 1..``size``. ``PUT``: ``{"url",
        "method": "PUT", "headers", ...}``; the client must send exactly ``headers`` (the signed
        Content-Type and Content-Length).

        The type must be allowed and agree with the name's extension, the size within
        ``MAX_FILE_SIZE``. The new-object sensor validates the content once it arrives.
        """
        method = method.upper()
        if method not in ("POST", "PUT"):
            raise InvalidInput(f"method must be POST or PUT, got {method!r}")
        filename = os.path.basename(str(filename).replace("\\", "/"))
        if not filename:
            raise InvalidInput("a file name is required")
        safe_filename(filename)
        mime = content_type.split(";")[0].strip().lower()
        if mime not in self.settings.allowed_mime_types:
            raise InvalidInput(f"type {mime} not allowed")
        mismatch = check_extension(filename, mime)
        if mismatch:
            raise InvalidInput(mismatch)
        if not isinstance(size, int) or size <= 0:
            raise InvalidInput("size must be a positive number of bytes")
        if size > self.settings.max_file_size:
            raise InvalidInput(f"size {_format_size(size)} over the "
                             f"{_format_size(self.settings.max_file_size)} limit")
        def body(catalog: Catalog) -> Any:
            self._namespace(catalog, namespace)
            self._require(catalog, namespace, user, Role.EDITOR, "upload")
            if method == "POST":
                post = self.storage.presigned_post(namespace, filename=filename,
                                                   content_types=[mime], max_size=size,
                                                   expires=expires)
                key = post["key"]
                signed = {"url": post["url"], "method": "POST", "fields": post["fields"],
                          "expires_at": post["expires_at"]}
            else:
                key = make_key(namespace, filename, unique=uuid.uuid4().hex[:12])
                signed = self.storage.presigned_put(key, content_type=mime, expires=expires,
                                                    content_length=size)
            media_id = media_id_for(self.settings.bucket, key)
            catalog.application.record_audit(user, "upload.presigned", media_id,
                                             {"key": key, "content_type": mime, "size": size,
                                              "expires": expires, "method": method})
            return key, signed, media_id

        key, signed, media_id = self._write(body)
        return {**signed, "key": key, "media_id": media_id, "expires_in": expires}

    # -- reading ---------------------------------------------------------------------------------

    def get(self, media_id: str, user: str) -> MediaFile:
        """The catalog record of a file the user may see."""
        with self._reading() as catalog:
            media = self._media(catalog, media_id)
            self._require_see(catalog, media, user, "see this file")
            return media

    def url(self, media_id: str, user: str | None, *, expires: int = 3600,
            download: bool = False) -> str:
        """A public URL (public files, for anyone) or a signed one (for those who may see it)."""
        with self._reading() as catalog:
            media = self._file(catalog, media_id, user, columns=(
                "quarantine_reason", "original_filename", "content_type"))
            # Who asks is checked first: a file's status and reason are its data too.
            if media["visibility"] != Visibility.PUBLIC:
                self._require_see_file(catalog, media, user, "get a URL for this file")
            status = media["status"]
            if status == MediaStatus.QUARANTINED:
                raise MediaUnavailable(
                    f"{media_id} is quarantined ({media['quarantine_reason']}): it gets no URL")
            if status in MediaStatus.gone():
                raise MediaUnavailable(f"{media_id} is {status}: there is no object to serve")
            if status not in SERVABLE:
                raise MediaUnavailable(f"{media_id} is {status}: not validated yet")
            if media["visibility"] == Visibility.PUBLIC and not download:
                return str(self.storage.public_url(media["key"]))
        key = str(media["key"])
        name = (media["original_filename"] or key.rsplit("/", 1)[-1]) if download else None
        # The type the catalog checked, not whatever Content-Type S3 stored with the object.
        return str(self.storage.generate_signed_url(key, expires, download_name=name,
                                                    content_type=media["content_type"]))

    def set_visibility(self, media_id: str, visibility: str, user: str) -> MediaFile:
        """Change who may see a file: the catalog and the object's ACL together.

        Where the bucket has ACLs disabled (Object Ownership "bucket owner enforced"), making a
        file public is refused and nothing changes; internal and private are recorded, since the
        object stays as private as the bucket makes it.
        """
        _check_visibility(visibility)
        def body(catalog: Catalog) -> Any:
            media = self._media(catalog, media_id)
            self._require_see(catalog, media, user, "change this file's visibility")
            self._require_owner_or_admin(catalog, media.namespace, media.owner, user,
                                         "change this file's visibility")
            if media.status not in SERVABLE and visibility == Visibility.PUBLIC:
                raise MediaUnavailable(f"{media_id} is {media.status}: it cannot be made public")
            catalog.application.update_visibility(media.media_id, visibility)
            catalog.application.record_audit(user, "visibility.set", media.media_id,
                                             {"from": media.visibility, "to": visibility})
            if media.status not in MediaStatus.gone():
                try:
                    self.storage.set_visibility(media.key, visibility)
                except AclNotSupported as exc:
                    if visibility == Visibility.PUBLIC:
                        raise MediaUnavailable(
                            f"cannot make {media_id} public: the bucket does not support object "
                            f"ACLs ({exc})") from None
                    log.info("bucket has no object ACLs; %s recorded as %s", media_id,
                             visibility)
            updated = catalog.application.media_row(media.media_id)
            return updated

        updated = self._write(body)
        assert updated is not None
        return MediaFile.from_row(updated)

    # -- tags ------------------------------------------------------------------------------------

    def add_tag(self, media_id: str, tag: str, user: str) -> list[dict[str, Any]]:
        """A manual tag (namespaced: one spelling per namespace, case-insensitive)."""
        name = _clean_name(tag, "tag", MAX_TAG_LENGTH)
        def body(catalog: Catalog) -> Any:
            media = self._file(catalog, media_id, user)
            self._require_see_file(catalog, media, user, "tag this file")
            self._require(catalog, media["namespace"], user, Role.EDITOR, "tag files")
            spelling = catalog.application.ensure_tag(media["namespace"], name, user)
            added = catalog.application.add_media_tag(media["media_id"], spelling, user)
            catalog.application.record_audit(user, "tag.add", media["media_id"],
                                             {"tag": spelling, "already_tagged": not added})
            return catalog.application.media_tag_rows(media["media_id"])

        return self._write(body)

    def remove_tag(self, media_id: str, tag: str, user: str) -> list[dict[str, Any]]:
        """Remove a tag, manual or AI; removing one the file does not have is an error."""
        name = _clean_name(tag, "tag", MAX_TAG_LENGTH)
        def body(catalog: Catalog) -> Any:
            media = self._file(catalog, media_id, user)
            self._require_see_file(catalog, media, user, "untag this file")
            self._require(catalog, media["namespace"], user, Role.EDITOR, "untag files")
            if catalog.application.remove_media_tag(media["media_id"], name) == 0:
                raise UnknownMedia(f"{media_id} has no tag {name!r}")
            catalog.application.record_audit(user, "tag.remove", media["media_id"],
                                             {"tag": name})
            return catalog.application.media_tag_rows(media["media_id"])

        return self._write(body)

    def tags(self, media_id: str, user: str) -> list[dict[str, Any]]:
        """Manual tags first, then AI tags with their confidence."""
        with self._reading() as catalog:
            media = self._media(catalog, media_id)
            self._require_see(catalog, media, user, "see this file's tags")
            return catalog.application.media_tag_rows(media.media_id)

    # -- collections -----------------------------------------------------------------------------

    def create_collection(self, namespace: str, name: str, user: str,
                          visibility: str = Visibility.PRIVATE.value) -> Collection:
        title = _clean_name(name, "collection name", MAX_NAME_LENGTH)
        _check_visibility(visibility)
        def body(catalog: Catalog) -> Any:
            self._namespace(catalog, namespace)
            self._require(catalog, namespace, user, Role.EDITOR, "create collections")
            if catalog.application.collection_named(namespace, title) is not None:
                raise Conflict(f"namespace {namespace!r} already has a collection {title!r}")
            collection_id = catalog.application.insert_collection(namespace, title, visibility,
                                                                  user)
            catalog.application.record_audit(user, "collection.create", None, {
                "collection_id": collection_id, "namespace": namespace, "name": title,
                "visibility": visibility})
            row = catalog.application.collection_row(collection_id)
            return row

        row = self._write(body)
        assert row is not None
        return Collection(**row_fields(row))

    def add_to_collection(self, collection_id: str, media_id: str, user: str,
                          position: int | None = None) -> Collection:
        """Insert the file at ``position`` (0-based; default: at the end)."""
        def body(catalog: Catalog) -> None:
            coll = self._collection(catalog, collection_id, _check_user(user))
            self._require_owner_or_admin(catalog, coll["namespace"], coll["owner"], user,
                                         "change this collection")
            media = self._media(catalog, media_id)
            self._require_see(catalog, media, user, "add this file to a collection")
            if media.namespace != coll["namespace"]:
                raise InvalidInput(f"{media_id} is in namespace {media.namespace!r}, the "
                                 f"collection in {coll['namespace']!r}")
            if media.status in MediaStatus.gone():
                raise MediaUnavailable(f"{media_id} is {media.status}")
            ids = catalog.application.collection_item_ids(coll["collection_id"])
            if media.media_id in ids:
                raise Conflict(f"{media_id} is already in the collection")
            at = len(ids) if position is None else max(0, min(int(position), len(ids)))
            ids.insert(at, media.media_id)
            catalog.application.write_collection_order(coll["collection_id"], ids,
                                                       added=(media.media_id, user))
            catalog.application.record_audit(
                user, "collection.add", media.media_id,
                {"collection_id": coll["collection_id"], "position": at})

        self._write(body)
        return self.collection(collection_id, user)

    def remove_from_collection(self, collection_id: str, media_id: str, user: str) -> Collection:
        def body(catalog: Catalog) -> None:
            coll = self._collection(catalog, collection_id, _check_user(user))
            self._require_owner_or_admin(catalog, coll["namespace"], coll["owner"], user,
                                         "change this collection")
            # an item the user may not see is not in the collection for them
            visible = self._visible_items(catalog, coll, user)
            item = _spelled_as_stored(media_id)
            if item not in visible or not catalog.application.delete_collection_item(
                    coll["collection_id"], item):
                raise UnknownMedia(f"{media_id} is not in collection {collection_id}")
            remaining = catalog.application.collection_item_ids(coll["collection_id"])
            catalog.application.write_collection_order(coll["collection_id"], remaining)
            catalog.application.record_audit(user, "collection.remove", str(media_id),
                                             {"collection_id": coll["collection_id"]})

        self._write(body)
        return self.collection(collection_id, user)

    def reorder(self, collection_id: str, media_ids: list[str], user: str) -> Collection:
        """Put the items in this order; ``media_ids`` must list each item exactly once."""
        def body(catalog: Catalog) -> None:
            coll = self._collection(catalog, collection_id, _check_user(user))
            self._require_owner_or_admin(catalog, coll["namespace"], coll["owner"], user,
                                         "change this collection")
            current = catalog.application.collection_item_ids(coll["collection_id"])
            visible = self._visible_items(catalog, coll, user)
            wanted = [_spelled_as_stored(m) for m in media_ids]
            if sorted(wanted) != sorted(visible):
                raise InvalidInput("reorder must list every item of the collection exactly once "
                                 f"({len(visible)} items, {len(wanted)} given)")
            # items the user may not see keep their places; the others take the new order
            order = iter(wanted)
            catalog.application.write_collection_order(
                coll["collection_id"], [next(order) if m in visible else m for m in current])
            catalog.application.record_audit(
                user, "collection.reorder", None,
                {"collection_id": coll["collection_id"], "order": wanted})

        self._write(body)
        return self.collection(collection_id, user)

    def collection(self, collection_id: str, user: str | None) -> Collection:
        """The collection with the items ``user`` may see, in order."""
        with self._reading() as catalog:
            # may_see: anyone for a public collection, else members (viewer at least)
            coll = self._collection(catalog, collection_id, user or None)
            if coll["visibility"] != Visibility.PUBLIC and not user:
                raise UnknownMedia(f"no collection {collection_id}")
            items = tuple(
                CollectionItem(position=i["position"], media=MediaFile.from_row(i["media"]),
                               added_by=i["added_by"])
                for i in catalog.application.collection_media(coll["collection_id"])
                if self._may_see(catalog, coll["namespace"], i["media"]["visibility"],
                                 i["media"]["owner"], user)
                and i["media"]["status"] not in MediaStatus.gone() | {MediaStatus.QUARANTINED})
        return Collection(**row_fields(coll), items=items)

    def _visible_items(self, catalog: Catalog, coll: dict[str, Any], user: str) -> set[str]:
        """The collection's items ``user`` may see (whatever their status)."""
        return {m for m, visibility, owner in
                catalog.application.collection_item_access(coll["collection_id"])
                if self._may_see(catalog, coll["namespace"], visibility, owner, user)}

    def collections(self, namespace: str, user: str) -> list[dict[str, Any]]:
        """The namespace's collections the user may see (with their item counts)."""
        with self._reading() as catalog:
            self._namespace(catalog, namespace)
            self._require(catalog, namespace, user, Role.VIEWER, "list collections")
            out = []
            for c in catalog.application.collections_in(namespace):
                if not self._may_see(catalog, namespace, c["visibility"], c["owner"], user):
                    continue
                # the items collection() would show this user: none they may not see
                access = c.pop("item_access")
                c["items"] = sum(
                    1 for visibility, owner, status in access
                    if status not in MediaStatus.gone() | {MediaStatus.QUARANTINED}
                    and self._may_see(catalog, namespace, visibility, owner, user))
                out.append(c)
            return out

    # -- references and lifecycle (media_pipeline.lifecycle does the work) -------------------

    def add_reference(self, media_id: str, content_type: str, content_id: str,
                      user: str) -> bool:
        """Record that content uses the file (editor). False if the API had it already."""
        with self._writing() as catalog:
            return lifecycle.add_reference(catalog, self.settings, media_id, content_type,
                                           content_id, _check_user(user))

    def remove_reference(self, media_id: str, content_type: str, content_id: str,
                         user: str) -> bool:
        """Remove an API reference (editor). References found by scans go when the content
        stops using the file."""
        with self._writing() as catalog:
            return lifecycle.remove_reference(catalog, self.settings, media_id, content_type,
                                              content_id, _check_user(user))

    def get_references(self, media_id: str, user: str) -> dict[str, list[str]]:
        """Where the file is used: ``{"webpage": ["123", "456"], "blog_post": ["789"]}``, for
        a user who may see the file."""
        with self._reading() as catalog:
            return lifecycle.references(catalog, self.settings, media_id, _check_user(user))

    def delete(self, media_id: str, user: str, *, force: bool = False) -> bool:
        """Soft-delete; False (and nothing changes) while the file is referenced. ``force``
        deletes a referenced file anyway and needs admin; the object stays in S3 (its URLs
        keep working) until a purge, which never removes a referenced file."""
        with self._writing() as catalog:
            return lifecycle.delete(catalog, self.settings, media_id, _check_user(user),
                                    force=force).deleted

    def delete_outcome(self, media_id: str, user: str, *,
                       force: bool = False) -> lifecycle.DeleteOutcome:
        """Like :meth:`delete`, with the references that refused it."""
        with self._writing() as catalog:
            return lifecycle.delete(catalog, self.settings, media_id, _check_user(user),
                                    force=force)

    def restore(self, media_id: str, user: str) -> None:
        """Undo a soft delete (editor); cancels a pending purge of the file."""
        with self._writing() as catalog:
            lifecycle.restore(catalog, self.settings, media_id, _check_user(user))

    def reference_details(self, media_id: str, user: str) -> References:
        """Where the file is used and how each reference was found, for a user who may see the
        file. Read from the live catalog, read-only: never waits for a running pipeline."""
        _check_user(user)
        with Catalog.open(self.settings.catalog_location, read_only=True) as catalog:
            found = lifecycle.references(catalog, self.settings, media_id, user)
            rows = catalog.references.reference_rows(media_id)
        return References(media_id=media_id, referenced_in=found, rows=tuple(rows))

    def unpurge(self, media_id: str, user: str) -> dict[str, Any]:
        """Bring a purged file back while a versioned bucket still holds it (admin of its
        namespace); returns the key, the version restored and the delete markers removed."""
        return lifecycle.unpurge(self.settings, self.storage.client, media_id, _check_user(user))

    def accept_scan_drop(self, source: str, user: str, *,
                         progress: ScanProgress | None = None) -> SourceScanOutcome:
        """Rescan ``source`` and apply it even though it finds far less than its baseline (a
        global admin): the drop the guard held back is real. Audited
        (``references.scan_drop_accepted``) with the numbers; the outcome's ``state`` is
        ``accepted``, or ``trusted`` when the rescan is back to normal."""
        from media_pipeline.references.index import scan_sources

        _check_user(user)
        if user not in self.settings.admins:
            raise PermissionDenied(f"{user} may not accept a scan drop: only admins "
                                   "(MEDIA_PIPELINE_ADMINS) may")
        [outcome] = scan_sources(self.settings, [source], progress=progress, accepted_by=user)
        return outcome

    def retire_source(self, name: str, user: str, reason: str | None = None) -> dict[str, Any]:
        """Forget a content source whose content is gone (a global admin): its scanned
        references go and purges stop waiting for it. Refused while it is configured and
        enabled."""
        _check_user(user)
        if user not in self.settings.admins:
            raise PermissionDenied(f"{user} may not retire a content source: only admins "
                                   "(MEDIA_PIPELINE_ADMINS) may")
        if name in lifecycle.enabled_source_names(self.settings):
            raise Conflict(f"content source {name} is configured and enabled in "
                           f"{self.settings.content_sources}; remove it (or set enabled: "
                           "false) before retiring it")
        disabled = name in lifecycle.disabled_source_names(self.settings)
        with self._writing() as catalog:
            # Refused: never scanned (and not configured), or retired already
            return catalog.references.retire_source(name, user, reason, configured=disabled)


def row_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The catalog's collection row as :class:`Collection` arguments."""
    names = {f.name for f in fields(Collection)} - {"items"}
    return {k: v for k, v in row.items() if k in names}
