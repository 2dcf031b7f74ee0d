"""The application-facing lifecycle actions: references, delete, restore, auto soft-delete.

Each checks the user's role in the file's namespace first, then lets the catalog decide and
change in one transaction (with its audit row). None of them touches S3: a deleted file, even
a force-deleted one that is still referenced, stays in the bucket and its URLs keep working
until a purge, which only ever takes unreferenced files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from media_pipeline.access import SYSTEM_USER, Role, may_see, require_file_role, require_see
from media_pipeline.catalog.sql import aware, utc_now
from media_pipeline.errors import InvalidInput, UnknownMedia
from media_pipeline.records import stored_spelling
from media_pipeline.settings import Settings

if TYPE_CHECKING:
    from media_pipeline.catalog import Catalog

MAX_CONTENT_TYPE = 100
MAX_CONTENT_ID = 500


@dataclass(frozen=True)
class DeleteOutcome:
    """What :func:`delete` did. True when the file is (now or already) soft-deleted."""

    media_id: str
    deleted: bool
    refused: bool = False
    forced: bool = False
    already_deleted: bool = False
    references: dict[str, list[str]] = field(default_factory=dict)
    # References the actor may not read (the file is not theirs to see): counted, not listed.
    hidden_references: int = 0

    @property
    def reference_count(self) -> int:
        return sum(len(ids) for ids in self.references.values()) + self.hidden_references

    def __bool__(self) -> bool:
        return self.deleted or self.already_deleted


def _known(state: dict[str, Any] | None, media_id: str) -> dict[str, Any]:
    if state is None:
        raise UnknownMedia.of(media_id)
    return state


def _content(content_type: str, content_id: str) -> tuple[str, str]:
    content_type = (content_type or "").strip()
    content_id = (content_id or "").strip()
    if not content_type or not content_id:
        raise InvalidInput("a reference needs a content type and a content id, both non-empty")
    if len(content_type) > MAX_CONTENT_TYPE or len(content_id) > MAX_CONTENT_ID:
        raise InvalidInput(f"content type (max {MAX_CONTENT_TYPE} characters) or content id "
                         f"(max {MAX_CONTENT_ID}) too long")
    if any(ord(c) < 32 for c in content_type + content_id):
        raise InvalidInput("content type and content id must not contain control characters")
    return content_type, content_id


def _require_see(catalog: Catalog, settings: Settings, state: dict[str, Any], user: str,
                 action: str) -> None:
    require_see(catalog, settings, state["media_id"], state["namespace"], state["visibility"],
                state["owner"], user, action)


def _require_role(catalog: Catalog, settings: Settings, state: dict[str, Any], user: str,
                  needed: Role, action: str) -> None:
    require_file_role(catalog, settings, state["media_id"], state["namespace"],
                      state["visibility"], state["owner"], user, needed, action)


def _editor_who_sees(catalog: Catalog, settings: Settings, media_id: str, user: str,
                     action: str) -> Callable[[dict[str, Any] | None], None]:
    """The check of reference changes: editor in the file's namespace who may see the file.
    The role comes with the file's context (``catalog.lifecycle.file_context``), read in the
    action's own transaction."""
    def check(state: dict[str, Any] | None) -> None:
        state = _known(state, media_id)
        _require_see(catalog, settings, state, user, action)
        _require_role(catalog, settings, state, user, Role.EDITOR, action)
    return check


def references(catalog: Catalog, settings: Settings, media_id: str,
               user: str) -> dict[str, list[str]]:
    """Where the file is used, in the seed's shape ``{"webpage": ["123", "456"]}``; only for a
    user who may see the file."""
    media_id = canonical_id(media_id)
    state = _known(catalog.lifecycle.file_context(media_id, user, references=True,
                                                  deletion=False), media_id)
    _require_see(catalog, settings, state, user, "see where this file is used")
    refs: dict[str, list[str]] = state["refs"]
    return refs


def add_reference(
    catalog: Catalog, settings: Settings, media_id: str, content_type: str, content_id: str,
    user: str, *, now: datetime | None = None,
) -> bool:
    """Record that a piece of content uses the file (editor in its namespace who may see the
    file). False if the API had recorded it already. A purged file cannot be referenced any
    more. Both checks come before anything else is decided, so a refusal is the same whether
    or not the reference exists: it tells nothing about where a hidden file is used."""
    content_type, content_id = _content(content_type, content_id)
    media_id = canonical_id(media_id)
    # A purged file raises LifecycleError, decided inside the catalog's transaction.
    return catalog.references.add_reference(
        media_id, content_type, content_id, user, now=now,
        check=_editor_who_sees(catalog, settings, media_id, user, "add a reference"))


def remove_reference(
    catalog: Catalog, settings: Settings, media_id: str, content_type: str, content_id: str,
    user: str, *, now: datetime | None = None,
) -> bool:
    """Remove an API reference (editor who may see the file, checked before the catalog is
    asked). False if the API had none; references a scan found are never removed here: they
    go when the content no longer uses the file."""
    content_type, content_id = _content(content_type, content_id)
    media_id = canonical_id(media_id)
    return catalog.references.remove_reference(
        media_id, content_type, content_id, user, now=now,
        check=_editor_who_sees(catalog, settings, media_id, user, "remove a reference"))


def canonical_id(media_id: str) -> str:
    """The id as the catalog writes it (:func:`records.stored_spelling`); a malformed id is
    unknown."""
    spelled = stored_spelling(media_id)
    if spelled is None:
        raise UnknownMedia.of(media_id)
    return spelled


def delete(
    catalog: Catalog, settings: Settings, media_id: str, user: str, *, force: bool = False,
    now: datetime | None = None,
) -> DeleteOutcome:
    """Soft-delete a file: refused (nothing changes) while anything references it, unless an
    admin forces it. Needs editor in the file's namespace; ``force`` needs admin."""
    media_id = canonical_id(media_id)
    seen: dict[str, Any] = {}

    def check(state: dict[str, Any]) -> None:
        if force:
            _require_role(catalog, settings, state, user, Role.ADMIN, "force-delete files")
        else:
            _require_role(catalog, settings, state, user, Role.EDITOR, "delete files")
        seen.update(state)

    # Unknown or purged: the catalog raises, deciding inside its transaction.
    outcome, refs = catalog.lifecycle.soft_delete(media_id, user, allow_referenced=force,
                                                  now=now, check=check)
    hidden = 0
    if refs and not may_see(catalog, settings, seen["namespace"], seen["visibility"],
                            seen["owner"], user):
        # Deleting is role-based, reading where a file is used is not: count only.
        hidden, refs = sum(len(ids) for ids in refs.values()), {}
    return DeleteOutcome(
        media_id=seen["media_id"],
        deleted=outcome == "deleted",
        refused=outcome == "refused",
        forced=outcome == "deleted" and bool(refs),
        already_deleted=outcome == "already",
        references=refs,
        hidden_references=hidden,
    )


def restore(catalog: Catalog, settings: Settings, media_id: str, user: str) -> None:
    """Undo a soft delete (editor): the file is active again (or quarantined/pending, as it was)
    and any purge mark for it is cancelled."""
    media_id = canonical_id(media_id)

    def check(state: dict[str, Any]) -> None:
        _require_role(catalog, settings, state, user, Role.EDITOR, "restore files")

    # Not deleted, purged, or a purge in flight: the catalog raises LifecycleError.
    catalog.lifecycle.restore_media(media_id, user, check=check)


@dataclass(frozen=True)
class AutoDeleteReport:
    deleted: dict[str, int]
    refused_reason: str | None = None

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def auto_soft_delete(
    catalog: Catalog, settings: Settings, now: datetime | None = None, *,
    enabled_sources: list[str] | None = None, run_id: str | None = None,
) -> AutoDeleteReport:
    """Soft-delete (as ``system``) active files unreferenced for ``settings.auto_delete_days``
    of their namespace; off when that is empty. Nothing is deleted while a source (configured
    in ``enabled_sources``, or ever scanned and not retired) is stale: its references may be
    missing."""
    if not settings.auto_delete_days:
        return AutoDeleteReport(deleted={})
    required = catalog.references.required_sources(enabled_sources or [])
    if required:
        stale = catalog.references.stale_sources(required)
        if stale:
            return AutoDeleteReport(
                deleted={}, refused_reason=f"stale content sources: {', '.join(stale)}")
    deleted = catalog.lifecycle.auto_soft_delete(dict(settings.auto_delete_days),
                                                 aware(now) or utc_now(), SYSTEM_USER, run_id)
    return AutoDeleteReport(deleted=deleted)
