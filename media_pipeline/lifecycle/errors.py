"""What lifecycle actions raise when they cannot do what was asked (nothing was changed)."""

from __future__ import annotations


class UnknownMedia(LookupError):
    """No file with this media id in the catalog."""

    def __init__(self, media_id: str) -> None:
        super().__init__(f"no media file with id {media_id!r} in the catalog")
        self.media_id = media_id


class LifecycleError(ValueError):
    """The file is not in a state that allows the action (e.g. restoring a purged file)."""
