"""Plain records: what the catalog hands out and what stages hand back.

Stages exchange these as Parquet fragments (see ``FINGERPRINT_COLUMNS``) so that heavy work never
holds the catalog; the committer merges a fragment in one short transaction. ``MediaFile`` is a
``media_files`` row as the application API hands it out; the catalog selects exactly its
columns (``MEDIA_FILE_COLUMNS``).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any


def media_id_for(bucket: str, key: str) -> str:
    """Deterministic id from (bucket, key): reruns and parallel workers agree without a lock.

    A UUID built from the MD5 of ``bucket NUL key``; must match the catalog's SQL
    ``md5(bucket || chr(0) || key)::UUID``.
    """
    digest = hashlib.md5(f"{bucket}\x00{key}".encode(), usedforsecurity=False).hexdigest()
    return str(uuid.UUID(hex=digest))


def stored_spelling(media_id: object) -> str | None:
    """A media id as the catalog writes it (lowercase, hyphens), whatever the caller's spelling
    (upper case, braces, ``urn:uuid:``); None when it is no UUID. Errors built from it read
    the same for a hidden file and an unknown id."""
    try:
        return str(uuid.UUID(str(media_id)))
    except ValueError:
        return None


@dataclass(frozen=True)
class PendingObject:
    """An object the catalog wants fingerprinted (new, or changed since its last fingerprint)."""

    media_id: str
    bucket: str
    key: str
    size: int
    etag: str


@dataclass
class FingerprintResult:
    """What one streaming read of an object established.

    ``status`` is ``active``, ``quarantined`` (with ``quarantine_reason``), ``missing`` (the
    object vanished between listing and reading) or ``error`` (to be retried). ``etag`` is the
    version that was read, so the committer can ignore a result for an object that changed again
    in the meantime.
    """

    media_id: str
    etag: str
    status: str
    file_hash: str | None = None
    hash_source: str | None = None  # "computed" | "s3-checksum"
    content_type: str | None = None
    declared_content_type: str | None = None
    phash: int | None = None
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    quarantine_reason: str | None = None
    bytes_read: int = 0
    error: str | None = None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


FINGERPRINT_COLUMNS = tuple(FingerprintResult.__dataclass_fields__)
# Every other FingerprintResult field is a media_files column of the same name, written by the
# committer (catalog.fingerprints.apply_fingerprints): a new field there is a new column's whole
# data path.
# These are not: the row's key, the version read (stored as fingerprinted_etag), and facts
# about the read itself.
NOT_STORED = ("media_id", "etag", "bytes_read", "error")
STORED_FINGERPRINT_COLUMNS = tuple(c for c in FINGERPRINT_COLUMNS if c not in NOT_STORED)


@dataclass(frozen=True)
class MediaFile:
    """One file as the catalog knows it: a ``media_files`` row as the application API hands it
    out. Every field is a column of that name (a new one, with a default, is selected by the
    catalog as it is) except those marked ``not_a_column``."""

    media_id: str
    namespace: str
    bucket: str
    key: str
    original_filename: str | None
    content_type: str | None
    file_size: int
    file_hash: str | None
    status: str
    visibility: str
    owner: str | None
    version_id: str | None = None
    etag: str | None = None
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
    phash: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    quarantine_reason: str | None = None
    is_deleted: bool = False
    reference_count: int = 0
    first_seen: datetime | None = None
    uploaded_at: datetime | None = None
    # Set by upload when it returned this existing file instead of storing the same content again.
    deduplicated: bool = field(default=False, metadata={"not_a_column": True})

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MediaFile:
        """The record from a catalog row (keys that are not fields are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """Every field, by name (``metadata`` stays a dict)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# The media_files columns a MediaFile is read from, in field order.
MEDIA_FILE_COLUMNS = tuple(f.name for f in fields(MediaFile)
                           if not f.metadata.get("not_a_column"))
