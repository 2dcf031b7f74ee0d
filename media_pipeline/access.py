"""Who may do what: namespace roles, shared by the library API and the lifecycle.

Roles are ordered (viewer < editor < admin): a role allows everything the roles below it allow.
Operators listed in ``MEDIA_PIPELINE_ADMINS`` are admin in every namespace; the pipeline itself
acts as ``system``, which only the library's scheduled jobs use.

A file someone may not see does not exist for them: any refusal of an action on it is
:class:`UnknownMedia`, word for word what an id the catalog does not know gets (never a
:class:`PermissionDenied` naming its namespace or owner). Those who may see a file learn why
they may not change it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from media_pipeline.errors import InvalidInput, PermissionDenied, UnknownMedia
from media_pipeline.kinds import Visibility

if TYPE_CHECKING:
    from media_pipeline.catalog import Catalog
    from media_pipeline.settings import Settings

SYSTEM_USER = "system"


class Role(IntEnum):
    """A member's role in a namespace; each allows everything the roles below it allow."""

    VIEWER = 1
    EDITOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise InvalidInput(
                f"unknown role {name!r}: use viewer, editor or admin") from None

    def __str__(self) -> str:
        return self.name.lower()


def role_of(catalog: Catalog, settings: Settings, namespace: str, user: str) -> Role | None:
    """The user's effective role in ``namespace``: global admin, membership, or none."""
    if not user:
        return None
    if user in settings.admins:
        return Role.ADMIN
    name = catalog.application.member_role(namespace, user)
    return Role.parse(name) if name else None


def require_role(
    catalog: Catalog, settings: Settings, namespace: str, user: str, needed: Role, action: str
) -> Role:
    """Raise :class:`PermissionDenied` unless ``user`` has at least ``needed`` in ``namespace``."""
    role = role_of(catalog, settings, namespace, user)
    if role is None or role < needed:
        have = f"is {role}" if role else "is not a member"
        raise PermissionDenied(
            f"{user!r} may not {action} in namespace {namespace!r}: needs {needed}, {have}")
    return role


def may_see(catalog: Catalog, settings: Settings, namespace: str, visibility: str,
            owner: str | None, user: str | None) -> bool:
    """The visibility rule shared by files and collections: public for everyone, internal for
    members, private for the owner (still a member) and the namespace's admins."""
    if visibility == Visibility.PUBLIC and user is None:
        return True
    if not user:
        return False
    role = role_of(catalog, settings, namespace, user)
    if role is None:
        return visibility == Visibility.PUBLIC
    if visibility in (Visibility.PUBLIC, Visibility.INTERNAL):
        return True
    return role >= Role.ADMIN or (owner is not None and owner == user)


def require_see(catalog: Catalog, settings: Settings, media_id: str, namespace: str,
                visibility: str, owner: str | None, user: str | None, action: str) -> None:
    """Raise unless ``user`` may see the file (the visibility rule, and viewer at least): to
    someone who may not see it, :class:`UnknownMedia` as for an unknown id; every read of a
    file's data goes through this."""
    named = isinstance(user, str) and bool(user.strip())
    if not may_see(catalog, settings, namespace, visibility, owner, user if named else None):
        raise UnknownMedia.of(media_id)
    if not named:
        raise PermissionDenied("a user is required for this action")
    assert user is not None
    require_role(catalog, settings, namespace, user, Role.VIEWER, action)


def require_file_role(catalog: Catalog, settings: Settings, media_id: str, namespace: str,
                      visibility: str, owner: str | None, user: str, needed: Role,
                      action: str) -> Role:
    """:func:`require_role` for an action on one file: refused to someone who may not see
    the file, it is :class:`UnknownMedia`, as for an unknown id — except to the namespace's
    editors, who may delete and restore files they do not see and so know they exist."""
    role = role_of(catalog, settings, namespace, user)
    if role is None or role < needed:
        if (role is None or role < Role.EDITOR) and not may_see(
                catalog, settings, namespace, visibility, owner, user or None):
            raise UnknownMedia.of(media_id)
        have = f"is {role}" if role else "is not a member"
        raise PermissionDenied(
            f"{user!r} may not {action} in namespace {namespace!r}: needs {needed}, {have}")
    return role
