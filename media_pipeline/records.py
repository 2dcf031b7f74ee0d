"""Plain records passed between stages: what the catalog hands out and what stages hand back.

Stages exchange these as Parquet fragments (see ``FINGERPRINT_COLUMNS``) so that heavy work never
holds the catalog; the committer merges a fragment in one short transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any


def media_id_for(bucket: str, key: str) -> str:
    """Deterministic id from (bucket, key): reruns and parallel workers agree without a lock.

    A UUID built from the MD5 of ``bucket NUL key``; must match the catalog's SQL
    ``md5(bucket || chr(0) || key)::UUID``.
    """
    digest = hashlib.md5(f"{bucket}\x00{key}".encode(), usedforsecurity=False).hexdigest()
    return str(uuid.UUID(hex=digest))


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
# committer (catalog.apply_fingerprints): a new field there is a new column's whole data path.
# These are not: the row's key, the version read (stored as fingerprinted_etag), and facts
# about the read itself.
NOT_STORED = ("media_id", "etag", "bytes_read", "error")
STORED_FINGERPRINT_COLUMNS = tuple(c for c in FINGERPRINT_COLUMNS if c not in NOT_STORED)
