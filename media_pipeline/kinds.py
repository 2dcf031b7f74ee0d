"""The package's fixed vocabularies as ``StrEnum``s: what the catalog stores in its string
columns and what the code compares them with. A member is its value (``MediaStatus.ACTIVE ==
"active"``), so rows read from the catalog compare equal without conversion, and SQL built with
:func:`sql_in` or an f-string spells the same value.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MediaStatus", "PurgeVersions", "ScanState", "Visibility", "sql_in"]


class MediaStatus(StrEnum):
    """``media_files.status``: where a file is in its life."""

    PENDING = "pending"  # found, not fingerprinted and validated yet
    ACTIVE = "active"  # validated; served
    QUARANTINED = "quarantined"  # refused by validation; never served
    DELETED = "deleted"  # soft-deleted: still in S3 until a purge
    PURGED = "purged"  # deleted from S3 by a purge
    MISSING = "missing"  # no longer in the bucket, though nobody purged it

    @classmethod
    def servable(cls) -> frozenset[MediaStatus]:
        """Statuses whose object is there and validated: the only ones that get URLs."""
        return frozenset({cls.ACTIVE, cls.DELETED})

    @classmethod
    def gone(cls) -> frozenset[MediaStatus]:
        """Statuses with no object in the bucket."""
        return frozenset({cls.PURGED, cls.MISSING})


class Visibility(StrEnum):
    """Who may see a file or a collection (``visibility`` columns)."""

    PUBLIC = "public"  # anyone, with a plain URL
    INTERNAL = "internal"  # the namespace's members
    PRIVATE = "private"  # the owner (still a member) and the namespace's admins


class PurgeVersions(StrEnum):
    """What a purge deletes on a versioned bucket (``MEDIA_PIPELINE_PURGE_VERSIONS``)."""

    MARKER = "marker"  # a delete marker: ``unpurge`` can undo it while the version is kept
    ALL = "all"  # every version: permanent


class ScanState(StrEnum):
    """The verdict on a content source's scan (``source_scans.state``)."""

    TRUSTED = "trusted"  # read to the end, within the drift limits: applied
    ACCEPTED = "accepted"  # a drop an admin accepted: applied
    SUSPECT = "suspect"  # found far less than before: not applied, purges wait
    FAILED = "failed"  # not read to the end: not applied, purges wait


def sql_in(*values: StrEnum) -> str:
    """``('a', 'b')`` for SQL's ``IN``: the values of enum members (never user input)."""
    return "(" + ", ".join(f"'{v.value}'" for v in values) + ")"
